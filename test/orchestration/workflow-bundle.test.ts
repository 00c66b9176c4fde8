import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { workflowBundle } from '../../infra/worker.ts';
import { tempDir } from './harness.ts';

/**
 * The workflow bundle is built by a child process (infra/bundle-workflows.mjs), so webpack's memory never stays in a
 * worker, and cached on disk with the stamp of the sources it was built from.
 */
describe('workflow bundle', () => {
  it('is built in a child process into the cache directory and read back from there', async () => {
    const cacheDir = tempDir('mmsweep-bundle-cache-');
    const file = path.join(cacheDir, 'workflow-bundle.json');
    expect(existsSync(file)).toBe(false);
    const bundle = await workflowBundle(cacheDir);
    const cached = JSON.parse(readFileSync(file, 'utf8')) as { code: string; stamp: number };
    expect(cached.code).toBe(bundle.code);
    expect(Number.isFinite(cached.stamp) && cached.stamp > 0).toBe(true);
    expect(bundle.code).toContain('studyWorkflow');
    expect(bundle.sourceMap.length).toBeGreaterThan(0);
  }, 120_000);
});

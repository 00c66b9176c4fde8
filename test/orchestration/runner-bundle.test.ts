import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledRunnerCommand, runnerBundle, runnerBundleStaleness } from '../../activities/runner-bundle.ts';
import { repoRoot } from './harness.ts';

/**
 * The trial runner bundle (activities/runner-bundle.ts): built once, reused while its inputs and outputs match the
 * manifest, rebuilt when a source changes (even keeping its size and mtime), when a bundle file is damaged and
 * when the manifest is unreadable. A small entry with one dependency stands in for the runner; the last test runs
 * the real runner bundle.
 */
// Inside the project: bundles resolve their external packages from its node_modules.
const scratch = path.join(repoRoot, '.mmsweep', `test-runner-bundle-${process.pid}`);
const sourceDir = path.join(scratch, 'src');
const cacheDir = path.join(scratch, 'cache');
const entry = path.join(sourceDir, 'entry.ts');
const dep = path.join(sourceDir, 'dep.ts');

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function runBundle(file: string): string {
  const out = spawnSync(process.execPath, [file], { encoding: 'utf8' });
  expect(out.stderr).toBe('');
  expect(out.status).toBe(0);
  return out.stdout.trim();
}

describe('runner bundle cache', () => {
  mkdirSync(sourceDir, { recursive: true });
  writeFileSync(dep, "export const version: string = 'v1';\n");
  writeFileSync(entry, "import { version } from './dep.ts';\nconsole.log(`entry ${version}`);\n");
  const options = { cacheDir, entry };

  it('builds once and reuses the bundle while nothing changed', async () => {
    const first = await runnerBundle(options);
    expect(first.built).toBe(true);
    expect(runBundle(first.entry)).toBe('entry v1');
    const second = await runnerBundle(options);
    expect(second).toEqual({ ...first, built: false });
    expect(await runnerBundleStaleness(options)).toBeNull();
  });

  it('rebuilds when a source changes, even with the same size and modification time', async () => {
    const before = await runnerBundle(options);
    const stats = statSync(dep);
    writeFileSync(dep, "export const version: string = 'v2';\n"); // same length as v1
    utimesSync(dep, stats.atime, stats.mtime);
    expect(statSync(dep).size).toBe(stats.size);
    expect(await runnerBundleStaleness(options)).toMatch(/dep\.ts changed/);
    const after = await runnerBundle(options);
    expect(after.built).toBe(true);
    expect(after.key).not.toBe(before.key);
    expect(runBundle(after.entry)).toBe('entry v2');
  });

  it('picks up a file that a changed source starts importing', async () => {
    const extra = path.join(sourceDir, 'extra.ts');
    writeFileSync(extra, "export const extra = 'x1';\n");
    writeFileSync(entry, "import { version } from './dep.ts';\nimport { extra } from './extra.ts';\nconsole.log(`entry ${version} ${extra}`);\n");
    const withExtra = await runnerBundle(options);
    expect(withExtra.built).toBe(true);
    expect(runBundle(withExtra.entry)).toBe('entry v2 x1');
    writeFileSync(extra, "export const extra = 'x2';\n");
    const changed = await runnerBundle(options);
    expect(changed.built).toBe(true);
    expect(runBundle(changed.entry)).toBe('entry v2 x2');
  });

  it('refuses a damaged bundle file and rebuilds it', async () => {
    const good = await runnerBundle(options);
    appendFileSync(good.entry, '\nthrow new Error("damaged bundle ran");\n');
    expect(await runnerBundleStaleness(options)).toMatch(/bundle file runner\.js is missing or damaged/);
    const rebuilt = await runnerBundle(options);
    expect(rebuilt.built).toBe(true);
    expect(rebuilt.key).toBe(good.key);
    expect(runBundle(rebuilt.entry)).toBe('entry v2 x2');
    rmSync(rebuilt.entry);
    const again = await runnerBundle(options);
    expect(again.built).toBe(true);
    expect(runBundle(again.entry)).toBe('entry v2 x2');
  });

  it('rebuilds when the manifest is unreadable', async () => {
    writeFileSync(path.join(cacheDir, 'manifest.json'), '{"key": "../../etc", "inputs": ');
    expect(await runnerBundleStaleness(options)).toBe('no bundle yet');
    const rebuilt = await runnerBundle(options);
    expect(rebuilt.built).toBe(true);
    expect(path.dirname(rebuilt.entry)).toBe(path.join(cacheDir, rebuilt.key));
    expect(runBundle(rebuilt.entry)).toBe('entry v2 x2');
  });

  it('names the input when a build fails, and runs no old bundle', async () => {
    writeFileSync(dep, 'export const version: string = ;\n');
    await expect(bundledRunnerCommand(options)).rejects.toThrow(/cannot build the trial runner bundle.*dep\.ts/s);
    writeFileSync(dep, "export const version: string = 'v3';\n");
    expect(runBundle((await runnerBundle(options)).entry)).toBe('entry v3 x2');
  });
});

describe('the real runner bundle', () => {
  it('runs `mmsweep train` like the CLI: a noop trial, and exit code 2 for an invalid spec', async () => {
    const command = await bundledRunnerCommand({ cacheDir: path.join(scratch, 'real') });
    const spec = path.join(scratch, 'noop.json');
    writeFileSync(spec, JSON.stringify({ kind: 'noop', sleepMs: 0, epochs: 2 }));
    const ok = spawnSync(command[0]!, [...command.slice(1), '--spec', spec, '--json'], { encoding: 'utf8', cwd: repoRoot });
    expect(ok.status).toBe(0);
    const result = JSON.parse(ok.stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ epochs: 2, backend: 'none', diverged: false });
    writeFileSync(spec, JSON.stringify({ kind: 'noop', sleepMs: -1, epochs: 2 }));
    const bad = spawnSync(command[0]!, [...command.slice(1), '--spec', spec], { encoding: 'utf8', cwd: repoRoot });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/sleepMs/);
    expect(readFileSync(path.join(scratch, 'real', 'manifest.json'), 'utf8')).toContain('src/cli/runner.ts');
  });
});

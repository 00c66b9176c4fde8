import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BIN = new URL('../../bin/mmsweep.js', import.meta.url).pathname;

async function doctor(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, 'doctor', ...args], { env: { ...process.env, MMSWEEP_BACKEND: '' } });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('mmsweep doctor', () => {
  it('--json reports the chosen backend, versions, cores and a verdict for every backend', async () => {
    const { stdout, code } = await doctor('--json', '--backend', 'wasm');
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.request).toBe('wasm');
    expect(report.chosen).toMatchObject({ name: 'wasm', version: 'tfjs 4.22.0, tfjs-backend-wasm 4.22.0' });
    expect(report.tfjsVersion).toBe('4.22.0');
    expect(report.nodeVersion).toBe(process.version);
    expect(report.cores).toBeGreaterThan(0);
    expect(report.backends.map((b: { name: string }) => b.name)).toEqual(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
    for (const b of report.backends as { name: string; ok: boolean; reason?: string }[]) {
      // Every unusable backend carries its reason; usable ones none.
      if (b.ok) expect(b.reason, b.name).toBeUndefined();
      else expect(b.reason, b.name).toMatch(/is not installed|not built|failed|used no GPU/);
    }
    expect(report.backends.find((b: { name: string }) => b.name === 'wasm').ok).toBe(true);
  });

  it('prints a readable report, and rejects an unknown backend naming the choices', async () => {
    const ok = await doctor('--backend', 'cpu');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^backend   cpu$/m);
    expect(ok.stdout).toMatch(/^ {2}✓ cpu +used$/m);
    expect(ok.stdout).toMatch(/^ {2}✓ wasm +available, not used \(request was 'cpu'\)$/m);
    const bad = await doctor('--backend', 'gpu');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--backend 'gpu' is not a backend; use one of auto, tensorflow-gpu, tensorflow, wasm, cpu/);
  });
});

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { backendNotice } from '../../src/backend/notice.ts';

/**
 * `mmsweep train` (and `mmsweep run`, through the same backendNotice) say which backend trains, and when the
 * native backend is missing, how much faster it would be and the command that installs it.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tinyTrial = ['train', '--dataset', 'cmnist', '--lr', '0.05', '--seed', '1', '--subset', '64', '--subset-val', '32', '--subset-test', '32', '--max-epochs', '1', '--batch-size', '32', '--width', '0.25', '--json'];

function train(extraNodeArgs: string[], args: string[] = tinyTrial) {
  return spawnSync(process.execPath, [...extraNodeArgs, path.join(repoRoot, 'bin', 'mmsweep.js'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, MMSWEEP_BACKEND: '' },
  });
}

describe('backend notice', () => {
  const missing = { ok: false, reason: '@tensorflow/tfjs-node is not installed: its own install script …' };

  it('names the backend and, when auto fell back to wasm for want of the native one, the gain and the command', () => {
    const lines = backendNotice({
      name: 'wasm',
      device: 'wasm simd, 1 thread',
      attempts: [{ name: 'tensorflow-gpu', ...missing }, { name: 'tensorflow', ...missing }, { name: 'wasm', ok: true }],
    });
    expect(lines[0]).toBe('backend wasm (wasm simd, 1 thread)');
    // 348.2 / 116.8 train samples per CPU-second (bench train after issue 14's step work, AMD EPYC) = 2.98…
    expect(lines[1]).toMatch(/is not installed; it trains ≈ 3\.0× faster than wasm \(measured: .*samples per CPU-second.*\)\. Install it with: npx mmsweep setup native$/);
  });

  it('says nothing more when native trains, or when wasm was asked for', () => {
    expect(backendNotice({ name: 'tensorflow', device: 'libtensorflow', attempts: [{ name: 'tensorflow-gpu', ...missing }, { name: 'tensorflow', ok: true }] })).toHaveLength(1);
    expect(backendNotice({ name: 'wasm', device: 'wasm', attempts: [{ name: 'wasm', ok: true }] })).toHaveLength(1);
  });

  it('mmsweep train on a machine without the native backend (simulated) says so and how to install it', () => {
    const out = train(['--import', path.join(repoRoot, 'test', 'fixtures', 'hide-native.mjs')]);
    expect(out.status).toBe(0);
    expect(out.stderr).toMatch(/mmsweep train: backend wasm \(wasm/);
    expect(out.stderr).toMatch(/the native backend \(tensorflow\) is not installed; it trains ≈ 3\.0× faster than wasm .*npx mmsweep setup native/);
    expect(JSON.parse(out.stdout.trim().split('\n').at(-1)!).backend).toBe('wasm');
  });

  it('mmsweep train names the native backend when it is installed', (context) => {
    const check = spawnSync(process.execPath, ['-e', "require.resolve('@tensorflow/tfjs-node')"], { cwd: repoRoot });
    if (check.status !== 0) context.skip('@tensorflow/tfjs-node is not installed (npm run setup:native)');
    const out = train([]);
    expect(out.status).toBe(0);
    expect(out.stderr).toMatch(/mmsweep train: backend tensorflow \(libtensorflow/);
    expect(out.stderr).not.toMatch(/setup native/);
  });
});

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GpuListError, parseGpuIds, resolveSlots, slotEnvironment } from '../../activities/gpu-slots.ts';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

describe('--gpus and slots', () => {
  it('accepts repeated ids (several trials per GPU), indices and UUIDs; one slot per id', () => {
    const gpus = parseGpuIds('0,0,0,0,1,1,1,1');
    expect(gpus).toEqual(['0', '0', '0', '0', '1', '1', '1', '1']);
    expect(resolveSlots(gpus, undefined)).toBe(8);
    expect(resolveSlots(gpus, 8)).toBe(8);
    expect(parseGpuIds(' 3 , GPU-8f2a1c3e-52b1-4d2e-9a4b-0c1d2e3f4a5b,MIG-GPU-8f2a1c3e/1/0')).toEqual([
      '3',
      'GPU-8f2a1c3e-52b1-4d2e-9a4b-0c1d2e3f4a5b',
      'MIG-GPU-8f2a1c3e/1/0',
    ]);
    expect(resolveSlots([], undefined)).toBe(1);
    expect(resolveSlots([], 4)).toBe(4);
  });

  it('rejects what CUDA_VISIBLE_DEVICES would misread, naming the bad id', () => {
    for (const [text, bad] of [['', 'no GPU id given'], ['0,,1', "'' is not a GPU id"], ['0,a', "'a' is not a GPU id"], ['-1', "'-1' is not a GPU id"], ['0;1', "'0;1' is not a GPU id"], ['1.5', "'1.5' is not a GPU id"], ['0,1,', "'' is not a GPU id"]] as const) {
      expect(() => parseGpuIds(text), text).toThrow(GpuListError);
      expect(() => parseGpuIds(text), text).toThrow(bad);
    }
    expect(() => resolveSlots(['0', '1'], 3)).toThrow('--gpus lists 2 ids but --slots is 3');
  });

  it('maps slot i to the i-th id with PCI bus order and memory growth, explicit settings winning', () => {
    const gpus = parseGpuIds('0,0,1,1');
    const env = gpus.map((_, slot) => slotEnvironment(gpus, slot, { PATH: '/bin' }));
    expect(env.map((e) => e.CUDA_VISIBLE_DEVICES)).toEqual(['0', '0', '1', '1']);
    expect(env[2]).toEqual({ PATH: '/bin', CUDA_VISIBLE_DEVICES: '1', CUDA_DEVICE_ORDER: 'PCI_BUS_ID', TF_FORCE_GPU_ALLOW_GROWTH: 'true' });
    // The worker's own CUDA_VISIBLE_DEVICES never leaks into a slot; an explicit allow-growth choice is kept.
    expect(slotEnvironment(gpus, 3, { CUDA_VISIBLE_DEVICES: '5', TF_FORCE_GPU_ALLOW_GROWTH: 'false' })).toMatchObject({ CUDA_VISIBLE_DEVICES: '1', TF_FORCE_GPU_ALLOW_GROWTH: 'false' });
    // CPU workers: the environment is passed through untouched.
    expect(slotEnvironment([], 0, { PATH: '/bin' })).toEqual({ PATH: '/bin' });
    expect(() => slotEnvironment(gpus, 4, {})).toThrow('slot 4 has no GPU');
  });

  it('mmsweep worker exits 2 on a bad --gpus or --slots, before connecting anywhere', () => {
    for (const args of [['--gpus', '0,,1'], ['--gpus', 'x'], ['--gpus', '0,1', '--slots', '3'], ['--slots', '0']]) {
      const result = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'mmsweep.js'), 'worker', '--queue', 'gpu', ...args], {
        encoding: 'utf8',
        // An unreachable Temporal: reaching it would hang or fail differently, not exit 2.
        env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
        timeout: 60_000,
      });
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/^mmsweep: --(gpus|slots) /);
    }
  });
});

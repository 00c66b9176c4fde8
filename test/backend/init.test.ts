import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BACKEND_ENV_VAR,
  BackendUnavailableError,
  currentBackend,
  describeBackends,
  effectiveRequest,
  initBackend,
} from '../../src/backend/index.ts';
import { gpuPackageState } from '../../src/backend/gpu.ts';
import { createCmnistNet } from '../../src/nn/cmnist.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';

// Whether the optional native packages load here decides what `auto` must pick (tfjs-node exists only after
// `npm run setup:native`). tensorflow-gpu counts only where a GPU computes: never on a machine without the NVIDIA
// driver (its /proc entry), whatever is built; it is not imported here (one native TensorFlow per process).
const gpuDir = () => {
  try {
    return path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu/package.json'));
  } catch {
    return null;
  }
};
const loads = (pkg: string) =>
  import(pkg).then(
    () => true,
    () => false,
  );
const native = { 'tensorflow-gpu': existsSync('/proc/driver/nvidia/version') && gpuPackageState(gpuDir()).kind === 'built', tensorflow: await loads('@tensorflow/tfjs-node') };
const PACKAGE = { 'tensorflow-gpu': '@tensorflow/tfjs-node-gpu', tensorflow: '@tensorflow/tfjs-node' } as const;
const missingNative = (['tensorflow-gpu', 'tensorflow'] as const).find((name) => !native[name]);

afterEach(() => {
  delete process.env[BACKEND_ENV_VAR];
});

describe('initBackend', () => {
  it('auto takes the first backend that loads and explains why each earlier one was skipped', async () => {
    const info = await initBackend('auto');
    const expected = native['tensorflow-gpu'] ? 'tensorflow-gpu' : native.tensorflow ? 'tensorflow' : 'wasm';
    expect(info.name).toBe(expected);
    expect(tf.getBackend()).toBe(expected.startsWith('tensorflow') ? 'tensorflow' : 'wasm');
    const order = ['tensorflow-gpu', 'tensorflow', 'wasm'];
    expect(info.attempts.map((a) => a.name)).toEqual(order.slice(0, order.indexOf(expected) + 1));
    for (const attempt of info.attempts.slice(0, -1)) {
      expect(attempt.ok).toBe(false);
      const pkg = PACKAGE[attempt.name as keyof typeof PACKAGE].replace(/[/-]/g, '\\$&');
      // Not installed, installed without its binding (npm skipped the install script), or built but no GPU used.
      expect(attempt.reason).toMatch(new RegExp(`${pkg} (is not installed: .*(CUDA|setup:native)|is installed but not built \\(npm skipped its install script\\): .*setup native --gpu|is built but TensorFlow used no GPU: )`));
    }
    expect(info.attempts.at(-1)).toEqual({ name: expected, ok: true });
    if (expected === 'wasm') expect(info.device).toMatch(/wasm.*Conv2DBackpropFilter/);
    expect(info.version).toMatch(/^tfjs 4\.22\.0, tfjs-(backend-wasm|node) 4\.22\.0/);
    expect(currentBackend()).toBe(info);
  });

  it('wasm reports its version, device and our training kernels', async () => {
    const info = await initBackend('wasm');
    expect(info).toMatchObject({ name: 'wasm', attempts: [{ name: 'wasm', ok: true }] });
    expect(info.version).toBe('tfjs 4.22.0, tfjs-backend-wasm 4.22.0');
    expect(info.device).toMatch(/^wasm( simd)?, 1 thread on .*; training kernels: Conv2DBackpropFilter, /);
  });

  it('is idempotent: the same request returns the recorded info without re-probing', async () => {
    const first = await initBackend('cpu');
    const second = await initBackend('cpu');
    expect(second).toBe(first);
    expect(tf.getBackend()).toBe('cpu');
    expect(first.attempts).toEqual([{ name: 'cpu', ok: true }]);
  });

  it.skipIf(!missingNative)('a forced backend that cannot load fails, naming it, the cause and the fix', async () => {
    const name = missingNative!;
    const error = await initBackend(name).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    if (name === 'tensorflow') {
      expect((error as Error).message).toContain(`backend '${name}' is unavailable: ${PACKAGE[name]} is not installed`);
      expect((error as Error).message).toContain(`npm install ${PACKAGE[name]}@4.22.0`);
    } else {
      // Absent, unbuilt (npm skipped its install script) or built on a machine where no GPU computes: each names its fix.
      expect((error as Error).message).toMatch(
        /^backend 'tensorflow-gpu' is unavailable: @tensorflow\/tfjs-node-gpu (is not installed: build it with `mmsweep setup native --gpu`|is installed but not built .*`mmsweep setup native --gpu`|is built but TensorFlow used no GPU: .*(NVIDIA driver|setup native --gpu|nvidia-smi|mmsweep doctor))/,
      );
    }
  });

  it(`${BACKEND_ENV_VAR} replaces 'auto' but not an explicit request, and is validated`, async () => {
    process.env[BACKEND_ENV_VAR] = 'cpu';
    expect(effectiveRequest('auto')).toBe('cpu');
    expect(effectiveRequest('wasm')).toBe('wasm');
    expect((await initBackend('auto')).name).toBe('cpu');
    process.env[BACKEND_ENV_VAR] = 'gpu';
    expect(() => effectiveRequest('auto')).toThrow(/MMSWEEP_BACKEND='gpu' is not a backend; use one of auto, tensorflow-gpu/);
  });

  it('describeBackends probes every backend and leaves the chosen one active', async () => {
    const report = await describeBackends('wasm');
    expect(report.backends.map((b) => b.name)).toEqual(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']);
    expect(report.backends.find((b) => b.name === 'wasm')!.ok).toBe(true);
    expect(report.backends.find((b) => b.name === 'cpu')!.ok).toBe(true);
    expect(report.chosen.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(report.cores).toBeGreaterThan(0);
    expect(report.nodeVersion).toBe(process.version);
  });
});

describe('training the CMNIST MMTM network', () => {
  /** Three SGD-with-momentum steps from the same initial weights and data; returns the losses and final weights. */
  async function train(backend: 'wasm' | 'cpu') {
    await initBackend(backend);
    const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 3, fidelity: FIDELITY_PROFILES.code });
    const batch = 4;
    const x0 = tf.randomUniform([batch, 28, 28, 3], 0, 1, 'float32', 11);
    const x1 = tf.randomUniform([batch, 28, 28, 1], 0, 1, 'float32', 12);
    const labels = tf.oneHot(tf.tensor1d([3, 1, 4, 1], 'int32'), 10);
    const optimizer = tf.train.momentum(0.05, 0.9);
    const losses: number[] = [];
    const dataIds: number[] = [];
    for (let step = 0; step < 3; step++) {
      const cost = optimizer.minimize(
        () => {
          const out = net.forward([x0, x1], { mode: 'regular', training: true, regularTrainingStep: true });
          return tf.add(
            tf.losses.softmaxCrossEntropy(labels, out.branchLogits[0]),
            tf.losses.softmaxCrossEntropy(labels, out.branchLogits[1]),
          ) as tf.Scalar;
        },
        true,
        net.trainableVariables as tf.Variable[],
      )!;
      losses.push(cost.dataSync()[0]!);
      cost.dispose();
      dataIds.push(tf.backend().numDataIds());
    }
    const weights = net.trainableVariables.map((v) => Array.from(v.dataSync()));
    optimizer.dispose();
    tf.dispose([x0, x1, labels]);
    net.dispose();
    return { losses, weights, dataIds };
  }

  it('trains on wasm with the same losses and weights as on cpu, within float noise', async () => {
    const wasm = await train('wasm');
    const cpu = await train('cpu');
    expect(wasm.losses[1]).not.toBe(wasm.losses[0]);
    // Kernel temporaries are freed: once the optimizer's slots exist, a step leaves the heap's tensor count as it was.
    expect(wasm.dataIds[2]).toBe(wasm.dataIds[1]);
    for (let i = 0; i < 3; i++) expect(Math.abs(wasm.losses[i]! - cpu.losses[i]!)).toBeLessThan(1e-4);
    let moved = 0;
    wasm.weights.forEach((w, v) => {
      const c = cpu.weights[v]!;
      for (let i = 0; i < w.length; i++) {
        expect(Math.abs(w[i]! - c[i]!), `variable ${v} element ${i}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(c[i]!)));
      }
      moved += w.length;
    });
    expect(moved).toBeGreaterThan(100_000);
  });
});

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from '../../src/backend/index.ts';
import { I3dBranch } from '../../src/nn/i3d.ts';
import { conv3dSame, maxPool3dSame, Unit3d, type Triple } from '../../src/nn/layers3d.ts';
import { uniformValues } from '../../src/nn/random.ts';
import { convRef, finiteDifferences, poolRef, seeded, sizeOf } from '../backend/reference.ts';

/**
 * Every 3-D gradient an I3D training step takes, on each backend we train with (cpu, wasm with our kernels, and
 * tensorflow when tfjs-node loads), against central finite differences of float64 reference forwards:
 * the I3D convolutions (7×7×7 stride 2, 3×3×3 stride 1 and 2, 1×1×1; TF 'same' padding, odd and even sizes — the
 * wasm stock kernels are wrong for strides > 1, src/backend replaces them), the max-pools, and a whole Unit3D
 * (conv → BatchNorm in training mode → ReLU). Then a small I3D branch's loss and gradients agree across backends.
 */

const BACKENDS: BackendName[] = ['cpu', 'wasm', 'tensorflow'];
const available = new Map<BackendName, string | null>();

beforeAll(async () => {
  for (const name of BACKENDS) {
    try {
      await initBackend(name);
      available.set(name, null);
    } catch (error) {
      available.set(name, (error as Error).message);
    }
  }
});

async function use(name: BackendName, skip: () => void): Promise<void> {
  const reason = available.get(name);
  if (reason) {
    console.log(`skipping ${name}: ${reason}`);
    skip();
  }
  await initBackend(name);
}

interface Case {
  name: string;
  inputs: Record<string, { shape: number[]; values: Float64Array }>;
  tfForward?: (t: Record<string, tf.Tensor>) => tf.Tensor;
  /** Gradients of Σ f ⊙ r with respect to the inputs, in their order (default: tf.grads of tfForward). */
  gradients?: (values: Record<string, Float64Array>, weights: Float64Array) => Float32Array[];
  refForward: (v: Record<string, Float64Array>) => Float64Array;
}

let nextSeed = 1;
const input = (shape: number[], lo = -1, hi = 1) => ({ shape, values: seeded(sizeOf(shape), nextSeed++, lo, hi) });

function convCase(x: number[], w: number[], stride: Triple): Case {
  return {
    name: `conv3d x[${x}] w[${w}] stride ${stride} same`,
    inputs: { x: input(x), w: input(w) },
    // The convolution I3D's Unit3d runs (tf.conv3d 'same', or explicit padding + 'valid' on tensorflow for strides > 1).
    tfForward: (t) => conv3dSame(t.x as tf.Tensor5D, t.w as tf.Tensor5D, stride),
    refForward: (v) => convRef(v.x!, x, v.w!, w, stride, 'same').out,
  };
}

function poolCase(x: number[], kernel: Triple, stride: Triple): Case {
  // I3D pools non-negative maps (ReLU outputs).
  return {
    name: `maxPool3d x[${x}] ${kernel}/${stride} same`,
    inputs: { x: input(x, 0, 2) },
    tfForward: (t) => maxPool3dSame(t.x as tf.Tensor5D, kernel, stride),
    refForward: (v) => poolRef('max', v.x!, x, kernel, stride, 'same').out,
  };
}

/** Unit3D = conv (no bias) → BN with batch statistics (eps 1e-3) → ReLU, in float64. */
function unitRef(x: Float64Array, xShape: number[], w: Float64Array, wShape: number[], stride: Triple, gamma: Float64Array, beta: Float64Array): Float64Array {
  const y = convRef(x, xShape, w, wShape, stride, 'same').out;
  const C = wShape[4]!;
  const n = y.length / C;
  const out = new Float64Array(y.length);
  for (let c = 0; c < C; c++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += y[i * C + c]!;
    mean /= n;
    let variance = 0;
    for (let i = 0; i < n; i++) variance += (y[i * C + c]! - mean) ** 2;
    variance /= n;
    const scale = gamma[c]! / Math.sqrt(variance + 1e-3);
    for (let i = 0; i < n; i++) out[i * C + c] = Math.max(0, (y[i * C + c]! - mean) * scale + beta[c]!);
  }
  return out;
}

function unitCase(x: number[], kernel: Triple, stride: Triple, cin: number, cout: number): Case {
  const wShape = [...kernel, cin, cout];
  return {
    name: `Unit3D x[${x}] ${kernel}/${stride} → ${cout} (conv, BN training, ReLU)`,
    inputs: { x: input(x), w: input(wShape), gamma: input([cout], 0.5, 1.5), beta: input([cout], -0.2, 0.2) },
    // Differentiates the layer itself: its variables take the case's values; x is a variable too.
    gradients: (values, weights) => {
      const unit = new Unit3d({ seed: 0, prefix: 'u' }, { inChannels: cin, outChannels: cout, kernel, stride, batchNorm: true });
      const xVar = tf.variable(tf.tensor(Float32Array.from(values.x!), x));
      tf.tidy(() => {
        unit.weight.variable.assign(tf.tensor(Float32Array.from(values.w!), wShape));
        unit.bn!.gamma.variable.assign(tf.tensor(Float32Array.from(values.gamma!), [cout]));
        unit.bn!.beta.variable.assign(tf.tensor(Float32Array.from(values.beta!), [cout]));
      });
      const order = [xVar, unit.weight.variable, unit.bn!.gamma.variable, unit.bn!.beta.variable];
      const grads = tf.tidy(() => {
        const r = tf.tensor1d(Float32Array.from(weights));
        const { value, grads: g } = tf.variableGrads(() => tf.sum(tf.mul(tf.reshape(unit.apply(xVar as tf.Tensor as tf.Tensor5D, true), [-1]), r)) as tf.Scalar, order);
        value.dispose();
        return order.map((v) => g[v.name]!.dataSync() as Float32Array);
      });
      xVar.dispose();
      unit.dispose();
      return grads;
    },
    refForward: (v) => unitRef(v.x!, x, v.w!, wShape, stride, v.gamma!, v.beta!),
  };
}

const CASES: Case[] = [
  convCase([1, 7, 9, 9, 2], [7, 7, 7, 2, 3], [2, 2, 2]), // Conv3d_1a, odd sizes
  convCase([1, 6, 8, 8, 3], [7, 7, 7, 3, 2], [2, 2, 2]), // even sizes (asymmetric TF padding)
  convCase([1, 5, 6, 6, 2], [7, 7, 7, 2, 2], [2, 2, 2]), // depth 5: aborts libtensorflow's stock 'same' filter gradient
  convCase([2, 4, 5, 5, 3], [3, 3, 3, 3, 4], [1, 1, 1]), // inception 3×3×3
  convCase([1, 5, 6, 7, 2], [3, 3, 3, 2, 2], [2, 2, 2]), // stride 2, mixed parities
  convCase([2, 3, 4, 4, 5], [1, 1, 1, 5, 3], [1, 1, 1]), // 1×1×1
  poolCase([1, 4, 7, 7, 2], [1, 3, 3], [1, 2, 2]), // MaxPool3d_2a/3a
  poolCase([1, 5, 5, 6, 2], [3, 3, 3], [2, 2, 2]), // MaxPool3d_4a
  poolCase([1, 4, 4, 4, 2], [2, 2, 2], [2, 2, 2]), // MaxPool3d_5a
  poolCase([1, 3, 4, 4, 2], [3, 3, 3], [1, 1, 1]), // inception branch 3
  unitCase([2, 4, 6, 6, 2], [3, 3, 3], [2, 2, 2], 2, 3),
  unitCase([1, 5, 7, 7, 3], [7, 7, 7], [2, 2, 2], 3, 2),
];

function gradients(c: Case, weights: Float64Array): Float32Array[] {
  if (c.gradients) return c.gradients(Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, v.values])), weights);
  return tf.tidy(() => {
    const names = Object.keys(c.inputs);
    const tensors = names.map((k) => tf.tensor(Float32Array.from(c.inputs[k]!.values), c.inputs[k]!.shape));
    const r = tf.tensor1d(Float32Array.from(weights));
    const loss = (...args: tf.Tensor[]) => tf.sum(tf.mul(tf.reshape(c.tfForward!(Object.fromEntries(names.map((k, i) => [k, args[i]!]))), [-1]), r));
    return tf.grads(loss)(tensors).map((g) => g.dataSync() as Float32Array);
  });
}

describe.each(BACKENDS)('3-D gradients on %s vs finite differences', (backend) => {
  it.for(CASES.map((c) => [c.name, c] as const))('%s', async ([, c], ctx) => {
    await use(backend, () => ctx.skip());
    const values = Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, v.values]));
    const reference = c.refForward(values);
    const weights = seeded(reference.length, 99);
    const refLoss = () => {
      const out = c.refForward(values);
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i]! * weights[i]!;
      return s;
    };
    const grads = gradients(c, weights);
    Object.keys(c.inputs).forEach((k, i) => {
      const fd = finiteDifferences(values[k]!, refLoss);
      let scale = 1;
      let worst = 0;
      let magnitude = 0;
      for (let j = 0; j < fd.length; j++) {
        scale = Math.max(scale, Math.abs(fd[j]!));
        magnitude = Math.max(magnitude, Math.abs(fd[j]!));
        worst = Math.max(worst, Math.abs(grads[i]![j]! - fd[j]!));
      }
      expect(magnitude, `${c.name}: d/d${k} is not all zero`).toBeGreaterThan(1e-3);
      expect(worst / scale, `${c.name}: d/d${k} on ${backend}`).toBeLessThan(2e-4);
    });
  });
});

describe.each(BACKENDS)('max-pool gradient at exact ties on %s', (backend) => {
  it("goes to the window's first maximum only (PyTorch's rule), also in 'same' windows at the border", async (ctx) => {
    await use(backend, () => ctx.skip());
    // One row of 5: windows of 3 with stride 1 ('same'): [·,3,3] [3,3,1] [3,1,3] [1,3,2] [3,2,·].
    const x = tf.tensor5d([3, 3, 1, 3, 2], [1, 1, 1, 5, 1]);
    const dy = tf.tensor5d([1, 10, 100, 1000, 10000], [1, 1, 1, 5, 1]);
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(maxPool3dSame(t as tf.Tensor5D, [1, 1, 3], [1, 1, 1]), dy)))(x);
    // First maxima: window 0 → x0, 1 → x0, 2 → x1, 3 → x3, 4 → x3. (The stock kernels give 11, 111, 0, 11100, 0 on
    // tensorflow — every tie, 11,222 in all for dy summing to 11,111 — and 0, 11, 0, 11100, 0 on cpu — the last tie.)
    expect(Array.from(dx.dataSync())).toEqual([11, 100, 0, 11000, 0]);
    tf.dispose([x, dy, dx]);
  });
});

describe('a small I3D branch: loss and every gradient agree across backends', () => {
  function lossAndGrads(): { loss: number; grads: Float32Array[] } {
    const branch = new I3dBranch({ seed: 2, prefix: 'branch0' }, { inChannels: 3, numClasses: 5, width: 1 / 16, dropout: 0.5 });
    const x = tf.tensor(uniformValues(9, 'clip', 2 * 9 * 18 * 17 * 3, 1), [2, 9, 18, 17, 3]);
    const labels = tf.oneHot(tf.tensor1d([1, 3], 'int32'), 5);
    const variables = branch.parameters.map((p) => p.variable);
    const { value, grads } = tf.variableGrads(() => {
      let a: tf.Tensor = x;
      for (let p = 1; p <= branch.stageCount; p++) a = branch.stage(p, a, true);
      return tf.losses.softmaxCrossEntropy(labels, branch.finish(a).logits) as tf.Scalar;
    }, variables);
    const result = { loss: value.dataSync()[0]!, grads: variables.map((v) => grads[v.name]!.dataSync() as Float32Array) };
    tf.dispose([value, ...Object.values(grads), x, labels]);
    branch.dispose();
    return result;
  }

  it('cpu, wasm and tensorflow', async (ctx) => {
    await initBackend('cpu');
    const reference = lossAndGrads();
    let compared = 0;
    for (const backend of ['wasm', 'tensorflow'] as const) {
      if (available.get(backend)) {
        console.log(`skipping ${backend}: ${available.get(backend)}`);
        continue;
      }
      await initBackend(backend);
      const other = lossAndGrads();
      expect(other.loss, backend).toBeCloseTo(reference.loss, 4);
      reference.grads.forEach((r, i) => {
        const o = other.grads[i]!;
        let diff = 0;
        let norm = 0;
        for (let j = 0; j < r.length; j++) {
          diff += (r[j]! - o[j]!) ** 2;
          norm += r[j]! ** 2;
        }
        // Relative 5e-3: the BatchNorm γ/β gradients of this batch-2, width-1/16 branch are sums whose terms cancel
        // (norms 0.03–0.15 from O(1) terms), so float32 summation order alone moves them by up to 7.6e-4 (wasm) and
        // 1.5e-3 (libtensorflow with oneDNN, which picks kernels by CPU) against the cpu backend. A wrong kernel
        // (stride, padding, layout) is off by O(1).
        expect(Math.sqrt(diff), `${backend} gradient ${i}`).toBeLessThanOrEqual(5e-3 * Math.sqrt(norm) + 1e-6);
      });
      compared++;
    }
    if (compared === 0) ctx.skip();
    // Every parameter receives a gradient (no disconnected layer).
    expect(reference.grads.every((g) => g.some((v) => v !== 0))).toBe(true);
  });
});

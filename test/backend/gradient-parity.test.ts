import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { cpuKernelFixes, registerCpuKernelFixes, stockCpuKernels } from '../../src/backend/cpu-kernels.ts';
import { installedWasmKernels, registerWasmTrainingKernels, wasmTrainingKernels } from '../../src/backend/wasm-kernels.ts';
import {
  convRef,
  finiteDifferences,
  matMulRef,
  poolRef,
  seeded,
  sizeOf,
  type Padding,
} from './reference.ts';

/**
 * Gradient parity of every kernel a training step of this project's networks runs on wasm: the gradient of
 * L = Σ f(inputs) ⊙ r (r a fixed random weighting) computed on wasm must match the cpu backend and central finite
 * differences of a float64 reference forward. Tolerances are relative to the gradient's largest magnitude.
 */

interface Input {
  shape: number[];
  values: Float64Array;
}

interface GradCase {
  name: string;
  inputs: Record<string, Input>;
  wrt: string[];
  tfForward: (t: Record<string, tf.Tensor>) => tf.Tensor;
  refForward: (v: Record<string, Float64Array>) => Float64Array;
}

const TOLERANCE = 1e-4;

function gradientsOn(backend: string, c: GradCase, weights: Float64Array): { output: Float32Array; grads: Float32Array[] } {
  if (!tf.setBackend(backend)) throw new Error(`backend ${backend} did not start`);
  return tf.tidy(() => {
    const tensors: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(c.inputs)) tensors[k] = tf.tensor(Float32Array.from(v.values), v.shape);
    const r = tf.tensor1d(Float32Array.from(weights));
    const loss = (...args: tf.Tensor[]) => {
      const bound = { ...tensors };
      c.wrt.forEach((k, i) => (bound[k] = args[i]!));
      return tf.sum(tf.mul(tf.reshape(c.tfForward(bound), [-1]), r));
    };
    const output = c.tfForward(tensors).dataSync() as Float32Array;
    const grads = tf.grads(loss)(c.wrt.map((k) => tensors[k]!));
    return { output, grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function checkCase(c: GradCase): void {
  const values = Object.fromEntries(Object.entries(c.inputs).map(([k, v]) => [k, v.values]));
  const reference = c.refForward(values);
  const weights = seeded(reference.length, 99);
  const refLoss = () => {
    const out = c.refForward(values);
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i]! * weights[i]!;
    return s;
  };
  const wasm = gradientsOn('wasm', c, weights);
  const cpu = gradientsOn('cpu', c, weights);
  const forwardTolerance = 1e-4 * Math.max(1, maxAbs(reference));
  expect(maxAbsDiff(wasm.output, reference), `${c.name}: wasm forward vs float64`).toBeLessThan(forwardTolerance);
  expect(maxAbsDiff(cpu.output, reference), `${c.name}: cpu forward vs float64`).toBeLessThan(forwardTolerance);
  c.wrt.forEach((k, i) => {
    const fd = finiteDifferences(values[k]!, refLoss);
    const scale = Math.max(1, maxAbs(fd));
    // A gradient that is identically zero would make every comparison vacuous.
    expect(maxAbs(fd), `${c.name}: d/d${k} is not all zero`).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(wasm.grads[i]!, fd) / scale, `${c.name}: d/d${k} wasm vs finite differences`).toBeLessThan(TOLERANCE);
    expect(maxAbsDiff(wasm.grads[i]!, cpu.grads[i]!) / scale, `${c.name}: d/d${k} wasm vs cpu`).toBeLessThan(TOLERANCE);
    expect(maxAbsDiff(cpu.grads[i]!, fd) / scale, `${c.name}: d/d${k} cpu vs finite differences`).toBeLessThan(TOLERANCE);
  });
}

let seed = 1;
function input(shape: number[], lo = -1, hi = 1): Input {
  return { shape, values: seeded(sizeOf(shape), seed++, lo, hi) };
}

type Pad2 = 'same' | 'valid' | [[number, number], [number, number]];
function tfPad(p: Pad2): 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]] {
  return typeof p === 'string' ? p : [[0, 0], p[0], p[1], [0, 0]];
}

function convCase(xShape: number[], wShape: number[], strides: [number, number], pad: Pad2): GradCase {
  return {
    name: `conv2d x${xShape} w${wShape} s${strides} ${JSON.stringify(pad)}`,
    inputs: { x: input(xShape), w: input(wShape) },
    wrt: ['x', 'w'],
    tfForward: (t) => tf.conv2d(t.x as tf.Tensor4D, t.w as tf.Tensor4D, strides, tfPad(pad)),
    refForward: (v) => convRef(v.x!, xShape, v.w!, wShape, strides, pad as Padding).out,
  };
}

function conv3dCase(xShape: number[], wShape: number[], strides: [number, number, number], pad: 'same' | 'valid'): GradCase {
  return {
    name: `conv3d x${xShape} w${wShape} s${strides} ${pad}`,
    inputs: { x: input(xShape), w: input(wShape) },
    wrt: ['x', 'w'],
    tfForward: (t) => tf.conv3d(t.x as tf.Tensor5D, t.w as tf.Tensor5D, strides, pad),
    refForward: (v) => convRef(v.x!, xShape, v.w!, wShape, strides, pad).out,
  };
}

function poolCase(
  kind: 'max' | 'avg',
  xShape: number[],
  window: number,
  stride: number,
  pad: 'same' | 'valid' | number,
  range: [number, number] = [-1, 1],
): GradCase {
  const refPad: Padding = typeof pad === 'number' ? [[pad, pad], [pad, pad]] : pad;
  return {
    name: `${kind}Pool x${xShape} ${window}/${stride} pad ${pad} values in [${range}]`,
    inputs: { x: input(xShape, ...range) },
    wrt: ['x'],
    tfForward: (t) => (kind === 'max' ? tf.maxPool : tf.avgPool)(t.x as tf.Tensor4D, window, stride, pad),
    refForward: (v) => poolRef(kind, v.x!, xShape, [window, window], [stride, stride], refPad).out,
  };
}

function pool3dCase(kind: 'max' | 'avg', xShape: number[], window: [number, number, number], stride: [number, number, number], pad: 'same' | 'valid', range: [number, number] = [-1, 1]): GradCase {
  return {
    name: `${kind}Pool3d x${xShape} ${window}/${stride} ${pad} values in [${range}]`,
    inputs: { x: input(xShape, ...range) },
    wrt: ['x'],
    tfForward: (t) => (kind === 'max' ? tf.maxPool3d : tf.avgPool3d)(t.x as tf.Tensor5D, window, stride, pad),
    refForward: (v) => poolRef(kind, v.x!, xShape, window, stride, pad).out,
  };
}

const relu = (a: Float64Array) => a.map((v) => Math.max(0, v));

beforeAll(async () => {
  registerWasmTrainingKernels();
  registerCpuKernelFixes();
  expect(await tf.setBackend('wasm')).toBe(true);
  expect(await tf.setBackend('cpu')).toBe(true);
});

describe('wasm training kernels', () => {
  it('are installed in place of the missing and the faulty stock kernels', () => {
    const ours = { ...wasmTrainingKernels.required, ...wasmTrainingKernels.fixes, ...wasmTrainingKernels.speed };
    for (const [name, fn] of Object.entries(ours)) {
      expect(tf.getKernel(name, 'wasm')?.kernelFunc, name).toBe(fn);
    }
    expect(installedWasmKernels().sort()).toEqual(Object.keys(ours).sort());
    for (const [name, fn] of Object.entries(cpuKernelFixes)) expect(tf.getKernel(name, 'cpu')?.kernelFunc, name).toBe(fn);
  });
});

describe('cpu Conv2DBackpropFilter', () => {
  it('is bit-identical to the stock cpu kernel it replaces (same sums, same order)', () => {
    const stock = stockCpuKernels.get('Conv2DBackpropFilter');
    expect(stock).toBeDefined();
    tf.setBackend('cpu');
    type Shape4 = [number, number, number, number];
    const configs: [Shape4, Shape4, number | [number, number], 'same' | 'valid' | number][] = [
      [[3, 9, 9, 3], [3, 3, 3, 5], 1, 'same'],
      [[2, 9, 8, 2], [3, 3, 2, 4], 2, 'same'],
      [[2, 10, 10, 2], [5, 5, 2, 3], [2, 1], 2],
      [[2, 8, 8, 3], [2, 2, 3, 4], 2, 'valid'],
    ];
    for (const [xShape, wShape, strides, pad] of configs) {
      tf.tidy(() => {
        const x = tf.tensor(Float32Array.from(seeded(sizeOf(xShape), seed++)), xShape) as tf.Tensor4D;
        const w = tf.zeros(wShape) as tf.Tensor4D;
        const y = tf.conv2d(x, w, strides, pad);
        const dy = tf.tensor(Float32Array.from(seeded(y.size, seed++)), y.shape);
        const attrs = { strides, pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: wShape };
        const ours = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
        const reference = stock!.kernelFunc({ inputs: { x, dy }, backend: tf.backend(), attrs: attrs as unknown as tf.NamedAttrMap }) as tf.TensorInfo;
        const referenceValues = tf.backend().readSync(reference.dataId) as Float32Array;
        expect(Array.from(ours.dataSync())).toEqual(Array.from(referenceValues));
        tf.backend().disposeData(reference.dataId);
      });
    }
  });
});

describe('convolution gradients (Conv2DBackpropInput, Conv2DBackpropFilter)', () => {
  const cases = [
    convCase([2, 7, 7, 3], [3, 3, 3, 4], [1, 1], 'same'),
    convCase([2, 7, 7, 3], [3, 3, 3, 4], [2, 2], 'same'),
    convCase([2, 8, 8, 3], [3, 3, 3, 4], [2, 2], 'valid'),
    convCase([2, 6, 6, 2], [3, 3, 2, 3], [1, 1], 'valid'),
    convCase([2, 9, 9, 2], [5, 5, 2, 3], [1, 1], [[2, 2], [2, 2]]),
    convCase([2, 9, 9, 2], [3, 3, 2, 3], [2, 2], [[1, 1], [1, 1]]),
    convCase([1, 10, 9, 2], [3, 2, 2, 3], [2, 3], [[1, 0], [0, 2]]),
    convCase([2, 6, 6, 1], [5, 5, 1, 4], [1, 1], [[2, 2], [2, 2]]),
    convCase([2, 5, 5, 2], [1, 1, 2, 3], [2, 2], 'valid'),
    convCase([1, 11, 11, 2], [7, 7, 2, 3], [2, 2], [[3, 3], [3, 3]]),
    // Cin ≥ 16: the filter gradient runs as a dilated convolution, the input gradient as a flipped-filter one.
    convCase([2, 6, 6, 16], [3, 3, 16, 5], [1, 1], 'same'),
    convCase([2, 6, 6, 16], [3, 3, 16, 5], [2, 2], 'same'),
    convCase([2, 7, 7, 16], [3, 3, 16, 4], [2, 2], [[1, 1], [1, 1]]),
    convCase([2, 7, 7, 16], [3, 3, 16, 4], [2, 2], 'valid'),
    convCase([1, 8, 8, 16], [3, 3, 16, 3], [2, 2], 'valid'),
    convCase([1, 7, 8, 16], [3, 3, 16, 2], [2, 2], 'valid'),
    convCase([1, 6, 5, 8], [2, 3, 8, 3], [1, 1], [[0, 1], [2, 0]]),
  ];
  for (const c of cases) it(c.name, () => checkCase(c));

  it('fused conv2d + bias + relu, numeric padding (the form src/nn uses)', () => {
    checkCase({
      name: 'fused conv2d relu',
      inputs: { x: input([2, 7, 7, 3]), w: input([3, 3, 3, 4]), b: input([4], -0.2, 0.2) },
      wrt: ['x', 'w', 'b'],
      tfForward: (t) =>
        tf.fused.conv2d({ x: t.x as tf.Tensor4D, filter: t.w as tf.Tensor4D, bias: t.b, strides: 2, pad: 1, activation: 'relu' }),
      refForward: (v) => {
        const { out } = convRef(v.x!, [2, 7, 7, 3], v.w!, [3, 3, 3, 4], [2, 2], [[1, 1], [1, 1]]);
        return relu(out.map((o, i) => o + v.b![i % 4]!));
      },
    });
  });
});

describe('3-D convolution gradients (Conv3DBackpropInputV2, Conv3DBackpropFilterV2)', () => {
  const cases = [
    conv3dCase([1, 4, 5, 5, 2], [3, 3, 3, 2, 3], [1, 1, 1], 'same'),
    conv3dCase([1, 5, 6, 6, 2], [3, 3, 3, 2, 2], [2, 2, 2], 'same'),
    conv3dCase([2, 4, 6, 6, 1], [1, 3, 3, 1, 2], [1, 2, 2], 'valid'),
    conv3dCase([1, 3, 7, 7, 2], [1, 7, 7, 2, 2], [1, 2, 2], 'same'),
  ];
  for (const c of cases) it(c.name, () => checkCase(c));
});

describe('pooling gradients (MaxPoolGrad, AvgPoolGrad, MaxPool3DGrad, AvgPool3DGrad)', () => {
  const cases = [
    poolCase('max', [2, 7, 7, 3], 3, 2, 'same'),
    poolCase('max', [2, 6, 6, 2], 3, 2, 'same', [-2, -1]),
    poolCase('max', [2, 7, 7, 2], 3, 2, 1, [-2, -1]),
    poolCase('max', [2, 6, 6, 3], 2, 2, 'valid'),
    poolCase('max', [1, 8, 8, 2], 3, 1, 'valid'),
    poolCase('avg', [2, 6, 6, 3], 2, 2, 'valid'),
    poolCase('avg', [2, 7, 7, 2], 3, 2, 'same'),
    poolCase('avg', [2, 7, 7, 4], 7, 1, 'valid'),
    pool3dCase('max', [1, 4, 5, 5, 2], [3, 3, 3], [2, 2, 2], 'same'),
    pool3dCase('max', [1, 4, 5, 5, 2], [3, 3, 3], [2, 2, 2], 'same', [-2, -1]),
    pool3dCase('max', [1, 4, 6, 6, 2], [1, 3, 3], [1, 2, 2], 'valid'),
    pool3dCase('avg', [1, 4, 4, 4, 2], [2, 2, 2], [2, 2, 2], 'valid'),
    pool3dCase('avg', [1, 3, 5, 5, 2], [3, 3, 3], [2, 2, 2], 'same'),
  ];
  for (const c of cases) it(c.name, () => checkCase(c));

  it('max-pool 3×3/2 after an explicit −∞ pad (the form src/nn uses)', () => {
    const shape = [2, 8, 8, 3];
    checkCase({
      name: 'padded maxPool',
      inputs: { x: input(shape) },
      wrt: ['x'],
      tfForward: (t) => tf.maxPool(tf.pad(t.x as tf.Tensor4D, [[0, 0], [1, 1], [1, 1], [0, 0]], -Infinity), 3, 2, 'valid'),
      refForward: (v) => poolRef('max', v.x!, shape, [3, 3], [2, 2], [[1, 1], [1, 1]]).out,
    });
  });
});

describe('dense, normalisation, activation and loss gradients', () => {
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    it(`matMul transposeA=${ta} transposeB=${tb}`, () => {
      const aShape = ta ? [4, 3] : [3, 4];
      const bShape = tb ? [5, 4] : [4, 5];
      checkCase({
        name: `matMul ${ta} ${tb}`,
        inputs: { a: input(aShape), b: input(bShape) },
        wrt: ['a', 'b'],
        tfForward: (t) => tf.matMul(t.a as tf.Tensor2D, t.b as tf.Tensor2D, ta, tb),
        refForward: (v) => matMulRef(v.a!, aShape, v.b!, bShape, ta, tb),
      });
    });
  }

  it('fused matMul + bias + relu (Linear layers)', () => {
    checkCase({
      name: 'fused matMul',
      inputs: { a: input([6, 5]), b: input([5, 4]), bias: input([4], -0.2, 0.2) },
      wrt: ['a', 'b', 'bias'],
      tfForward: (t) => tf.fused.matMul({ a: t.a as tf.Tensor2D, b: t.b as tf.Tensor2D, bias: t.bias, activation: 'relu' }),
      refForward: (v) => relu(matMulRef(v.a!, [6, 5], v.b!, [5, 4], false, false).map((o, i) => o + v.bias![i % 4]!)),
    });
  });

  it('training-mode batch norm from moments (input BatchNorm)', () => {
    const shape = [4, 3, 3, 2];
    const eps = 1e-5;
    checkCase({
      name: 'batch norm',
      inputs: { x: input(shape), gamma: input([2], 0.5, 1.5), beta: input([2]) },
      wrt: ['x', 'gamma', 'beta'],
      tfForward: (t) => {
        const { mean, variance } = tf.moments(t.x!, [0, 1, 2]);
        return tf.add(tf.mul(tf.sub(t.x!, mean), tf.mul(t.gamma!, tf.rsqrt(tf.add(variance, eps)))), t.beta!);
      },
      refForward: (v) => {
        const C = 2;
        const n = v.x!.length / C;
        const out = new Float64Array(v.x!.length);
        for (let c = 0; c < C; c++) {
          let mean = 0;
          for (let i = c; i < v.x!.length; i += C) mean += v.x![i]!;
          mean /= n;
          let variance = 0;
          for (let i = c; i < v.x!.length; i += C) variance += (v.x![i]! - mean) ** 2;
          variance /= n;
          for (let i = c; i < v.x!.length; i += C) out[i] = ((v.x![i]! - mean) / Math.sqrt(variance + eps)) * v.gamma![c]! + v.beta![c]!;
        }
        return out;
      },
    });
  });

  it('tf.batchNorm with given statistics (FusedBatchNorm)', () => {
    const shape = [3, 2, 2, 3];
    const eps = 1e-3;
    checkCase({
      name: 'fused batch norm',
      inputs: { x: input(shape), mean: input([3]), variance: input([3], 0.5, 2), offset: input([3]), scale: input([3], 0.5, 1.5) },
      wrt: ['x', 'mean', 'variance', 'offset', 'scale'],
      tfForward: (t) => tf.batchNorm(t.x!, t.mean!, t.variance!, t.offset!, t.scale!, eps),
      refForward: (v) =>
        v.x!.map((x, i) => ((x - v.mean![i % 3]!) / Math.sqrt(v.variance![i % 3]! + eps)) * v.scale![i % 3]! + v.offset![i % 3]!),
    });
  });

  it('sigmoid gate broadcast over space (MMTM excitation)', () => {
    checkCase({
      name: 'gated features',
      inputs: { x: input([2, 3, 3, 4]), w: input([2, 4], -3, 3) },
      wrt: ['x', 'w'],
      tfForward: (t) => tf.mul(t.x!, tf.reshape(tf.sigmoid(t.w!), [2, 1, 1, 4])),
      refForward: (v) => v.x!.map((x, i) => x / (1 + Math.exp(-v.w![Math.floor(i / 36) * 4 + (i % 4)]!))),
    });
  });

  it('relu and spatial mean (squeeze, global average pool)', () => {
    checkCase({
      name: 'relu + mean',
      inputs: { x: input([2, 3, 3, 4]) },
      wrt: ['x'],
      tfForward: (t) => tf.mean(tf.relu(t.x!), [1, 2]),
      refForward: (v) => {
        const out = new Float64Array(8);
        v.x!.forEach((x, i) => (out[Math.floor(i / 36) * 4 + (i % 4)]! += Math.max(0, x) / 9));
        return out;
      },
    });
  });

  it('softmax cross-entropy (mean over the batch)', () => {
    const labels = [2, 0, 4, 1];
    checkCase({
      name: 'softmax CE',
      inputs: { logits: input([4, 5], -3, 3) },
      wrt: ['logits'],
      tfForward: (t) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, 'int32'), 5), t.logits!),
      refForward: (v) => {
        let total = 0;
        labels.forEach((label, b) => {
          const row = Array.from(v.logits!.subarray(b * 5, b * 5 + 5));
          const max = Math.max(...row);
          const logSum = Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0)) + max;
          total += logSum - row[label]!;
        });
        return Float64Array.of(total / labels.length);
      },
    });
  });
});

describe('Slice, Sum and MaxPoolGrad replacements (wasm and cpu) against independent references', () => {
  function onBoth<T>(fn: () => T): { wasm: T; cpu: T } {
    tf.setBackend('wasm');
    const wasm = fn();
    tf.setBackend('cpu');
    return { wasm, cpu: fn() };
  }

  it('Slice: contiguous runs, short runs (stock path), int32, rank 2–5', () => {
    const cases: [number[], number[], number[], 'float32' | 'int32'][] = [
      [[4, 10, 10, 8], [1, 1, 1, 0], [2, 8, 8, 8], 'float32'],
      [[3, 30, 30, 4], [0, 1, 2, 0], [3, 28, 27, 4], 'float32'],
      [[3, 6, 6, 2], [0, 1, 1, 1], [3, 4, 4, 1], 'float32'],
      [[40, 50], [3, 7], [30, 40], 'int32'],
      [[2, 3, 8, 8, 4], [1, 0, 2, 0, 0], [1, 3, 4, 8, 4], 'float32'],
      [[64, 32], [5, 0], [-1, 32], 'float32'],
    ];
    for (const [shape, begin, size, dtype] of cases) {
      const values = Array.from(seeded(sizeOf(shape), seed++, -100, 100), (v) => (dtype === 'int32' ? Math.round(v) + 0 : v)); // + 0: no −0 in int32 data
      const { wasm, cpu } = onBoth(() => tf.tidy(() => Array.from(tf.slice(tf.tensor(values, shape, dtype), begin, size).dataSync())));
      // Reference: every output index mapped to its source index by hand.
      const outShape = size.map((n, d) => (n === -1 ? shape[d]! - begin[d]! : n));
      const reference: number[] = [];
      const index = outShape.map(() => 0);
      for (let i = 0; i < sizeOf(outShape); i++) {
        let source = 0;
        for (let d = 0; d < shape.length; d++) source = source * shape[d]! + begin[d]! + index[d]!;
        reference.push(dtype === 'int32' ? values[source]! : Math.fround(values[source]!));
        for (let d = outShape.length - 1; d >= 0 && ++index[d]! === outShape[d]; d--) index[d] = 0;
      }
      expect(reference.length).toBeGreaterThan(0);
      expect(wasm, `wasm slice ${shape} ${begin} ${size}`).toEqual(reference);
      expect(cpu, `cpu slice ${shape} ${begin} ${size}`).toEqual(reference);
    }
  });

  it('Sum over leading axes (matmul path), other axes and small tensors (stock path)', () => {
    const cases: [number[], number[], boolean][] = [
      [[16, 8, 8, 5], [0, 1, 2], false],
      [[16, 8, 8, 5], [0, 1, 2], true],
      [[300, 7], [0], false],
      [[16, 8, 8, 5], [1, 2], false],
      [[4, 3, 5], [0, 1], false],
      [[16, 8, 8, 5], [0, 1, 2, 3], false],
    ];
    for (const [shape, axes, keepDims] of cases) {
      const values = Array.from(seeded(sizeOf(shape), seed++));
      const { wasm, cpu } = onBoth(() =>
        tf.tidy(() => {
          const out = tf.sum(tf.tensor(values, shape), axes, keepDims);
          return { shape: out.shape, values: Array.from(out.dataSync()) };
        }),
      );
      expect(wasm.shape, `sum ${shape} over ${axes}`).toEqual(cpu.shape);
      // Float32 summation-order noise grows with the number of terms (up to 5,120 here, each in [−1, 1]).
      expect(maxAbsDiff(wasm.values, cpu.values), `sum ${shape} over ${axes}`).toBeLessThan(1e-3);
    }
  });

  it('MaxPoolGrad sends the gradient of tied maxima to the first one in window order, as the stock cpu kernel', () => {
    const stock = stockCpuKernels.get('MaxPoolGrad');
    expect(stock).toBeDefined();
    const shape = [2, 9, 9, 3];
    // Values in {0, 1}: nearly every window holds ties (as after a ReLU, where many values are exactly 0).
    const values = Array.from(seeded(sizeOf(shape), seed++), (v) => (v > 0.3 ? 1 : 0));
    for (const pad of ['valid', 'same', 1] as const) {
      const { wasm, cpu } = onBoth(() =>
        tf.tidy(() => {
          const x = tf.tensor4d(values, shape as [number, number, number, number]);
          const weights = tf.range(1, 1 + 2 * 5 * 5 * 3).reshape([2, 5, 5, 3]);
          const loss = (a: tf.Tensor) => {
            const pooled = tf.maxPool(a as tf.Tensor4D, 3, 2, pad);
            return tf.sum(tf.mul(pooled, pad === 'valid' ? tf.slice(weights, 0, [2, 4, 4, 3]) : weights));
          };
          return Array.from(tf.grad(loss)(x).dataSync());
        }),
      );
      const reference = tf.tidy(() => {
        const x = tf.tensor4d(values, shape as [number, number, number, number]);
        const y = tf.maxPool(x, 3, 2, pad);
        const weights = tf.range(1, 1 + 2 * 5 * 5 * 3).reshape([2, 5, 5, 3]);
        const dy = pad === 'valid' ? tf.slice(weights, 0, [2, 4, 4, 3]) : weights;
        const attrs = { filterSize: 3, strides: 2, pad } as unknown as tf.NamedAttrMap;
        const dx = stock!.kernelFunc({ inputs: { dy, input: x, output: y }, backend: tf.backend(), attrs }) as tf.TensorInfo;
        const result = Array.from(tf.backend().readSync(dx.dataId) as Float32Array);
        tf.backend().disposeData(dx.dataId);
        return result;
      });
      expect(wasm, `wasm, pad ${pad}`).toEqual(reference);
      expect(cpu, `cpu, pad ${pad}`).toEqual(reference);
      expect(wasm.filter((v) => v !== 0).length).toBeGreaterThan(20);
    }
  });
});

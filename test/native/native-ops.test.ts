import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { FlatLayout, nativeChannelGate, nativeConvPoolReluInference, reluGradient, sigmoid, softmaxCrossEntropy, sumsOfSquares } from '../../src/backend/native-ops.ts';
import { BatchNorm, broadcastOverSpatial, Conv2d, conv2dSymmetric, disposeParameters, Linear, maxPool2d, normThenConv, relu } from '../../src/nn/layers.ts';
import { Sgd } from '../../src/train/sgd.ts';
import { sgdAgainstReference } from '../train/sgd-reference.ts';

/**
 * The native training step's own ops (src/backend/native-ops.ts) against independent computations: the first-max
 * max-pool gradient by hand and against the JS loop the other backends run, the conv + bias + ReLU gradient against
 * tfjs's fused-conv gradient, ReluGrad against dy·step(y). Skipped, with the reason printed, where native is absent.
 */

let nativeMissing: string | null = null;
try {
  await initBackend('tensorflow');
} catch (error) {
  nativeMissing = (error as Error).message;
  console.log(`[test/native] skipped: the native backend is not available here: ${nativeMissing}`);
}

afterEach(async () => {
  vi.restoreAllMocks();
  if (!nativeMissing) await tf.setBackend('tensorflow');
});

/** Deterministic values in plain JS (backend RNG kernels differ). */
function values(n: number, seed: number, map: (u: number) => number): Float32Array {
  let a = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return map(a / 4294967296);
  });
}

function gradOf(f: (x: tf.Tensor) => tf.Tensor, x: Float32Array, shape: number[], dy: Float32Array): { y: Float32Array; dx: Float32Array } {
  return tf.tidy(() => {
    const input = tf.tensor(x, shape);
    const y = f(input);
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), tf.tensor(dy, y.shape))))(input);
    return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array };
  });
}

describe.skipIf(nativeMissing !== null)('native ops of the training step', () => {
  it('max-pool 3/2/1 sends each window’s gradient to its first maximum (hand-computed on a map full of ties)', () => {
    // 5×5 map, three values only: every window holds several maxima. dy = distinct powers of two, so each dx value
    // names exactly the windows whose gradient it received.
    const x = Float32Array.from([
      0, 2, 2, 0, 1,
      2, 0, 2, 1, 1,
      1, 2, 0, 2, 0,
      0, 0, 1, 1, 2,
      2, 1, 2, 0, 2,
    ]);
    const dy = Float32Array.from({ length: 9 }, (_, i) => 2 ** i);
    // Independent reference: windows start at −1, 1, 3 (pad 1, never a maximum), scanned row by row, first maximum wins.
    const expected = new Float32Array(25);
    for (let oh = 0; oh < 3; oh++) {
      for (let ow = 0; ow < 3; ow++) {
        let best = -Infinity;
        let at = -1;
        for (let r = 2 * oh - 1; r <= 2 * oh + 1; r++) {
          for (let c = 2 * ow - 1; c <= 2 * ow + 1; c++) {
            if (r < 0 || c < 0 || r > 4 || c > 4) continue;
            if (x[r * 5 + c]! > best) {
              best = x[r * 5 + c]!;
              at = r * 5 + c;
            }
          }
        }
        expected[at]! += dy[oh * 3 + ow]!;
      }
    }
    // Windows (0,0) and (0,1) both hold several 2s and the first is (0,1) in both; window (1,0)'s first 2 is (1,0).
    expect(expected[1]).toBe(1 + 2);
    expect(expected[5]).toBe(8);
    const native = gradOf((t) => maxPool2d(t as tf.Tensor4D, 3, 2, 1), x, [1, 5, 5, 1], dy);
    expect(Array.from(native.dx)).toEqual(Array.from(expected));
  });

  it('max-pool gradient is bit-identical to the JS loop of the other backends on a ReLU map with many ties, without warnings', async () => {
    const shape = [3, 12, 12, 5];
    const n = 3 * 12 * 12 * 5;
    // ReLU of values on a 1/8 grid: a third zeros, many equal positives, as after conv1 on MNIST's flat background.
    const x = values(n, 7, (u) => Math.max(0, Math.round((u - 0.35) * 16) / 8));
    const dy = values(3 * 6 * 6 * 5, 8, (u) => u - 0.5);
    const warn = vi.spyOn(console, 'warn');
    const native = gradOf((t) => maxPool2d(t as tf.Tensor4D, 3, 2, 1), x, shape, dy);
    // tfjs-node warns on every int64 output it wraps; the argmax never reaches it.
    expect(warn).not.toHaveBeenCalled();
    await tf.setBackend('cpu');
    const cpu = gradOf((t) => maxPool2d(t as tf.Tensor4D, 3, 2, 1), x, shape, dy);
    expect(native.y).toEqual(cpu.y);
    expect(native.dx).toEqual(cpu.dx);
    expect(native.dx.some((v) => v !== 0)).toBe(true);
  });

  it('ReluGrad equals dy·step(y) exactly, zeros of y included', async () => {
    const y = values(4000, 3, (u) => Math.max(0, u - 0.3));
    const dy = values(4000, 4, (u) => u - 0.5);
    // dy·0 is −0 for negative dy, ReluGrad gives +0: equal values, which is what the test compares.
    const plain = (a: Float32Array) => Array.from(a, (v) => v + 0);
    const native = tf.tidy(() => reluGradient(tf.tensor(dy), tf.tensor(y)).dataSync() as Float32Array);
    expect(y.some((v) => v === 0)).toBe(true);
    const expected = dy.map((d, i) => (y[i]! > 0 ? d : 0));
    expect(plain(native)).toEqual(plain(expected));
    await tf.setBackend('cpu');
    const portable = tf.tidy(() => reluGradient(tf.tensor(dy), tf.tensor(y)).dataSync() as Float32Array);
    expect(plain(portable)).toEqual(plain(expected));
  });

  it('a cast to the own dtype shares the tensor (no TF op) and stays valid after the source is freed; real casts still convert', () => {
    const x = tf.tensor1d([1.5, -2.25, 3]);
    const same = tf.cast(x, 'float32');
    const converted = tf.cast(x, 'int32');
    x.dispose();
    expect(Array.from(same.dataSync())).toEqual([1.5, -2.25, 3]);
    expect(converted.dtype).toBe('int32');
    expect(Array.from(converted.dataSync())).toEqual([1, -2, 3]);
    tf.dispose([same, converted]);
    const before = tf.memory();
    tf.tidy(() => {
      tf.mean(tf.cast(tf.ones([4, 4]), 'float32'));
    });
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
  });

  it('a reshape to the own shape shares the tensor (no TF op) and stays valid after the source is freed; real reshapes still run', () => {
    // Count TensorFlow ops through a stand-in binding (the addon's own methods cannot be spied on).
    const backend = tf.backend() as unknown as { binding: object };
    const real = backend.binding;
    let ops = 0;
    const binding = real as { executeOp: (...args: unknown[]) => unknown };
    // The addon's properties are read-only: a stand-in inheriting from it shadows executeOp (as bench/step-profile.ts).
    backend.binding = Object.create(real, {
      executeOp: {
        value: (...args: unknown[]) => {
          ops++;
          return binding.executeOp(...args);
        },
      },
    }) as object;
    const x = tf.tensor2d([1.5, -2.25, 3, 4], [2, 2]);
    let same: tf.Tensor;
    let flat: tf.Tensor;
    let inferred: tf.Tensor;
    try {
      same = tf.reshape(x, [2, 2]);
      expect(ops).toBe(0);
      flat = tf.reshape(x, [4]);
      inferred = tf.reshape(x, [-1, 2]);
      expect(ops).toBe(2);
    } finally {
      backend.binding = real;
    }
    x.dispose();
    expect(same.shape).toEqual([2, 2]);
    expect(Array.from(same.dataSync())).toEqual([1.5, -2.25, 3, 4]);
    expect(flat.shape).toEqual([4]);
    expect(inferred.shape).toEqual([2, 2]);
    expect(Array.from(inferred.dataSync())).toEqual([1.5, -2.25, 3, 4]);
    tf.dispose([same, flat, inferred]);
    const before = tf.memory();
    tf.tidy(() => {
      tf.reshape(tf.reshape(tf.ones([3, 4]), [3, 4]), [12]);
    });
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers);
  });

  it('sums of squares (L2Loss, doubled) equal Sum(Square(t)) natively bit for bit, and a float64 sum within float32 rounding on every backend', async () => {
    const shapes = [[7], [64], [3, 3, 32, 64], [5, 5, 3, 32], [1000, 1001]];
    const data = shapes.map((shape, i) => values(shape.reduce((a, b) => a * b, 1), 30 + i, (u) => (u - 0.5) / 10));
    const compute = () => tf.tidy(() => Array.from(sumsOfSquares(data.map((d, i) => tf.tensor(d, shapes[i]))).dataSync()));
    const native = compute();
    const stock = tf.tidy(() => data.map((d, i) => tf.sum(tf.square(tf.tensor(d, shapes[i]))).dataSync()[0]!));
    expect(native).toEqual(stock);
    await tf.setBackend('cpu');
    const portable = compute();
    data.forEach((d, i) => {
      const exact = d.reduce((a, v) => a + v * v, 0);
      expect(Math.abs(native[i]! - exact) / exact).toBeLessThan(1e-5);
      expect(Math.abs(portable[i]! - exact) / exact).toBeLessThan(1e-5);
    });
  });

  for (const activation of ['relu', 'linear'] as const) it(`Linear (${activation}) natively 2-D MatMul + BiasAdd: output and gradients equal a float64 computation by hand within float32 rounding (portable path too); forward bit-identical to tfjs's fused matMul`, async () => {
    const [n, fin, fout] = [5, 12, 7];
    const x = values(n * fin, 21, (u) => u - 0.5);
    const r = values(n * fout, 22, (u) => u - 0.5);
    const run = () => {
      const linear = new Linear({ seed: 3, prefix: 'fc' }, fin, fout);
      const [w, b] = [linear.weight.variable, linear.bias.variable];
      const out = tf.tidy(() => {
        const xs = tf.tensor2d(x, [n, fin]);
        const upstream = tf.tensor2d(r, [n, fout]);
        const y = linear.apply(xs, activation);
        const grads = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
          tf.sum(tf.mul(linear.apply(a as tf.Tensor2D, activation), upstream)),
        )([xs, w, b]);
        // The weights are `linear.apply`'s own; the gradient wrt c, d goes through them only if passed: use stock.
        const stockY = tf.fused.matMul({ a: xs, b: w as tf.Tensor2D, bias: b, activation });
        return { y: y.dataSync(), stockY: stockY.dataSync(), dx: grads[0]!.dataSync() };
      });
      const weightGrads = tf.tidy(() => {
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(linear.apply(tf.tensor2d(x, [n, fin]), activation), tf.tensor2d(r, [n, fout]))), [w, b]);
        return [grads[w.name]!.dataSync(), grads[b.name]!.dataSync()];
      });
      const weights = { w: w.dataSync(), b: b.dataSync() };
      disposeParameters(linear.parameters);
      return { ...out, dw: weightGrads[0]!, db: weightGrads[1]!, ...weights };
    };
    for (const backend of ['tensorflow', 'cpu']) {
      await tf.setBackend(backend);
      const got = run();
      expect(got.y, `${backend} forward = tfjs's fused matMul`).toEqual(got.stockY);
      // Float64 reference; each value's tolerance scales with the sum of the magnitudes of its terms.
      const ref = { y: [] as number[], dz: [] as number[], dx: [] as number[], dw: [] as number[], db: [] as number[] };
      const mag = { y: [] as number[], dx: [] as number[], dw: [] as number[], db: [] as number[] };
      for (let i = 0; i < n; i++) {
        for (let o = 0; o < fout; o++) {
          let z = got.b[o]!;
          let m = Math.abs(z);
          for (let k = 0; k < fin; k++) {
            z += x[i * fin + k]! * got.w[k * fout + o]!;
            m += Math.abs(x[i * fin + k]! * got.w[k * fout + o]!);
          }
          ref.y.push(activation === 'relu' ? Math.max(0, z) : z);
          mag.y.push(m);
          ref.dz.push(activation === 'relu' && z <= 0 ? 0 : r[i * fout + o]!);
        }
      }
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < fin; k++) {
          let s = 0;
          let m = 0;
          for (let o = 0; o < fout; o++) {
            s += ref.dz[i * fout + o]! * got.w[k * fout + o]!;
            m += Math.abs(ref.dz[i * fout + o]! * got.w[k * fout + o]!);
          }
          ref.dx.push(s);
          mag.dx.push(m);
        }
      }
      for (let k = 0; k < fin; k++) {
        for (let o = 0; o < fout; o++) {
          let s = 0;
          let m = 0;
          for (let i = 0; i < n; i++) {
            s += x[i * fin + k]! * ref.dz[i * fout + o]!;
            m += Math.abs(x[i * fin + k]! * ref.dz[i * fout + o]!);
          }
          ref.dw.push(s);
          mag.dw.push(m);
        }
      }
      for (let o = 0; o < fout; o++) {
        let s = 0;
        let m = 0;
        for (let i = 0; i < n; i++) {
          s += ref.dz[i * fout + o]!;
          m += Math.abs(ref.dz[i * fout + o]!);
        }
        ref.db.push(s);
        mag.db.push(m);
      }
      expect(ref.y.some((v) => v === 0)).toBe(activation === 'relu');
      for (const key of ['y', 'dx', 'dw', 'db'] as const) {
        got[key].forEach((v, i) => expect(Math.abs(v - ref[key][i]!), `${backend} ${key}[${i}]`).toBeLessThanOrEqual(2e-6 * mag[key][i]! + 1e-12));
      }
    }
  });

  /**
   * Float64 convolution with PyTorch's symmetric zero padding (NHWC, kernel kh×kw×Cin×Cout), optional bias and ReLU,
   * and its gradients for the upstream gradient r; with each value, the sum of the magnitudes of its terms.
   */
  function convReference(
    x: ArrayLike<number>,
    [n, h, w, ci]: number[],
    f: Float32Array,
    [kh, kw, , co]: number[],
    bias: Float32Array | null,
    stride: number,
    p: number,
    relu: boolean,
    r: Float32Array,
  ) {
    const oh = Math.floor((h! + 2 * p - kh!) / stride) + 1;
    const ow = Math.floor((w! + 2 * p - kw!) / stride) + 1;
    const size = n! * oh * ow * co!;
    const out = { y: new Float64Array(size), dx: new Float64Array(x.length), dw: new Float64Array(f.length), db: new Float64Array(co!) };
    const mag = { y: new Float64Array(size), dx: new Float64Array(x.length), dw: new Float64Array(f.length), db: new Float64Array(co!) };
    const xi = (b: number, i: number, j: number, c: number) => ((b * h! + i) * w! + j) * ci! + c;
    const fi = (i: number, j: number, c: number, o: number) => ((i * kw! + j) * ci! + c) * co! + o;
    for (let b = 0; b < n!; b++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          for (let o = 0; o < co!; o++) {
            const at = ((b * oh + oy) * ow + ox) * co! + o;
            let z = bias ? bias[o]! : 0;
            let m = Math.abs(z);
            for (let ky = 0; ky < kh!; ky++) {
              const iy = oy * stride - p + ky;
              if (iy < 0 || iy >= h!) continue;
              for (let kx = 0; kx < kw!; kx++) {
                const ix = ox * stride - p + kx;
                if (ix < 0 || ix >= w!) continue;
                for (let c = 0; c < ci!; c++) {
                  const t = x[xi(b, iy, ix, c)]! * f[fi(ky, kx, c, o)]!;
                  z += t;
                  m += Math.abs(t);
                }
              }
            }
            out.y[at] = relu ? Math.max(0, z) : z;
            mag.y[at] = m;
            const dz = relu && z <= 0 ? 0 : r[at]!;
            out.db[o] += dz;
            mag.db[o] += Math.abs(dz);
            for (let ky = 0; ky < kh!; ky++) {
              const iy = oy * stride - p + ky;
              if (iy < 0 || iy >= h!) continue;
              for (let kx = 0; kx < kw!; kx++) {
                const ix = ox * stride - p + kx;
                if (ix < 0 || ix >= w!) continue;
                for (let c = 0; c < ci!; c++) {
                  const [xv, fv] = [x[xi(b, iy, ix, c)]!, f[fi(ky, kx, c, o)]!];
                  out.dx[xi(b, iy, ix, c)] += dz * fv;
                  mag.dx[xi(b, iy, ix, c)] += Math.abs(dz * fv);
                  out.dw[fi(ky, kx, c, o)] += dz * xv;
                  mag.dw[fi(ky, kx, c, o)] += Math.abs(dz * xv);
                }
              }
            }
          }
        }
      }
    }
    return { out, mag, shape: [n!, oh, ow, co!] };
  }

  // CMNIST's conv1 (linear, then the pool), conv2/conv4, conv3 (stride 2: EXPLICIT padding natively) on odd and even
  // sizes; ResNet-18's stem, strided 3×3 and 1×1 downsample (no bias).
  for (const [kernel, stride, padding, size, withBias, activation] of [
    [5, 1, 2, 9, true, 'linear'],
    [3, 1, 1, 9, true, 'relu'],
    [3, 2, 1, 9, true, 'relu'],
    [3, 2, 1, 8, true, 'relu'],
    [7, 2, 3, 11, false, 'linear'],
    [3, 2, 1, 8, false, 'linear'],
    [1, 2, 0, 8, false, 'linear'],
  ] as const) {
    it(`conv ${kernel}×${kernel} stride ${stride} pad ${padding} on ${size}², ${withBias ? 'bias' : 'no bias'}, ${activation}: output and gradients equal a float64 computation by hand within float32 rounding, natively and on cpu`, async () => {
      const xShape = [4, size, size, 3];
      const wShape = [kernel, kernel, 3, 6];
      const x = values(4 * size * size * 3, 15, (u) => u - 0.5);
      const w = values(kernel * kernel * 18, 16, (u) => (u - 0.5) / 2);
      const b = withBias ? values(6, 17, (u) => (u - 0.5) / 4) : null;
      const oSize = Math.floor((size + 2 * padding - kernel) / stride) + 1;
      const r = values(4 * oSize * oSize * 6, 18, (u) => u - 0.5);
      const ref = convReference(x, xShape, w, wShape, b, stride, padding, activation === 'relu', r);
      for (const backend of ['tensorflow', 'cpu']) {
        await tf.setBackend(backend);
        const got = tf.tidy(() => {
          const inputs = [tf.tensor4d(x, xShape as [number, number, number, number]), tf.tensor4d(w, wShape as [number, number, number, number]), ...(b ? [tf.tensor1d(b)] : [])];
          const f = (xs: tf.Tensor, ws: tf.Tensor, bs?: tf.Tensor) => conv2dSymmetric(xs as tf.Tensor4D, ws as tf.Tensor4D, bs, stride, padding, activation);
          const y = f(inputs[0]!, inputs[1]!, inputs[2]);
          const upstream = tf.tensor(r, y.shape);
          const grads = tf.grads((...t: tf.Tensor[]) => tf.sum(tf.mul(f(t[0]!, t[1]!, t[2]), upstream)))(inputs);
          return { y: y.dataSync(), shape: y.shape, dx: grads[0]!.dataSync(), dw: grads[1]!.dataSync(), db: b ? grads[2]!.dataSync() : new Float32Array(6) };
        });
        expect(got.shape).toEqual(ref.shape);
        if (activation === 'relu') expect(ref.out.y.some((v) => v === 0)).toBe(true);
        for (const key of ['y', 'dx', 'dw', 'db'] as const) {
          if (key === 'db' && !b) continue;
          got[key].forEach((v, i) =>
            expect(Math.abs(v - ref.out[key][i]!), `${backend} ${key}[${i}]`).toBeLessThanOrEqual(2e-6 * ref.mag[key][i]! + 1e-12),
          );
        }
      }
    });
  }

  // CMNIST's input norm + conv1 (5×5, pad 2), and a strided variant (EXPLICIT padding in the filter gradients).
  for (const [kernel, stride, padding, size] of [
    [5, 1, 2, 9],
    [3, 2, 1, 8],
  ] as const) {
    it(`conv(norm(x)) in training, conv ${kernel}×${kernel} stride ${stride} pad ${padding} (natively without the conv's input gradient): output, running statistics and the γ, β, w, b gradients equal a float64 computation by hand within float32 rounding, natively and on cpu`, async () => {
      const [n, c, co] = [4, 3, 6];
      // Channel 2 nearly constant (variance ≈ 1e-4): BatchNorm's ε = 1e-5 then moves x̂ by ≈ 5 %.
      const x = values(n * size * size * c, 100, (u) => (u - 0.3) * 4).map((v, i) => (i % c === 2 ? v / 100 : v));
      const count = n * size * size;
      const gammaValues = [1.5, 0.5, -1];
      const betaValues = [0.1, -0.2, 0.3];
      // Float64 reference: BatchNorm with the batch statistics (biased variance), then the convolution.
      const xHat = new Float64Array(x.length);
      const yBn = new Float64Array(x.length);
      const mean = [0, 0, 0];
      const variance = [0, 0, 0];
      for (let ch = 0; ch < c; ch++) {
        for (let i = 0; i < count; i++) mean[ch]! += x[i * c + ch]! / count;
        for (let i = 0; i < count; i++) variance[ch]! += (x[i * c + ch]! - mean[ch]!) ** 2 / count;
        for (let i = 0; i < count; i++) {
          xHat[i * c + ch] = (x[i * c + ch]! - mean[ch]!) / Math.sqrt(variance[ch]! + 1e-5);
          yBn[i * c + ch] = gammaValues[ch]! * xHat[i * c + ch]! + betaValues[ch]!;
        }
      }
      const run = () => {
        const norm = new BatchNorm({ seed: 0, prefix: 'bn' }, c);
        const conv = new Conv2d({ seed: 4, prefix: 'conv' }, c, co, kernel, stride, padding);
        norm.gamma.variable.assign(tf.tensor1d(gammaValues));
        norm.beta.variable.assign(tf.tensor1d(betaValues));
        const input = tf.tensor4d(x, [n, size, size, c]);
        const oSize = Math.floor((size + 2 * padding - kernel) / stride) + 1;
        const r = values(n * oSize * oSize * co, 101, (u) => u - 0.5);
        const variables = [norm.gamma.variable, norm.beta.variable, conv.weight.variable, conv.bias.variable];
        let y: Float32Array = new Float32Array();
        const { value, grads } = tf.variableGrads(() => {
          const out = normThenConv(norm, conv, input, true);
          y = out.dataSync() as Float32Array;
          return tf.sum(tf.mul(out, tf.tensor(r, out.shape)));
        }, variables);
        const result = {
          y,
          r,
          w: conv.weight.variable.dataSync() as Float32Array,
          b: conv.bias.variable.dataSync() as Float32Array,
          grads: variables.map((v) => grads[v.name]!.dataSync() as Float32Array),
          runningMean: norm.runningMean.dataSync() as Float32Array,
          runningVar: norm.runningVar.dataSync() as Float32Array,
        };
        tf.dispose([value, input, ...Object.values(grads)]);
        disposeParameters([...norm.parameters, ...conv.parameters]);
        norm.dispose();
        return result;
      };
      for (const backend of ['tensorflow', 'cpu']) {
        await tf.setBackend(backend);
        const got = run();
        const ref = convReference(yBn, [n, size, size, c], got.w, [kernel, kernel, c, co], got.b, stride, padding, false, got.r);
        // dL/dγ = Σ dy_bn·x̂, dL/dβ = Σ dy_bn over the conv's input gradient dy_bn; magnitudes Σ|dz·w·x̂|, Σ|dz·w|.
        const want = { dGamma: [0, 0, 0], dBeta: [0, 0, 0], magGamma: [0, 0, 0], magBeta: [0, 0, 0] };
        for (let i = 0; i < x.length; i++) {
          const ch = i % c;
          want.dGamma[ch]! += ref.out.dx[i]! * xHat[i]!;
          want.dBeta[ch]! += ref.out.dx[i]!;
          want.magGamma[ch]! += ref.mag.dx[i]! * Math.abs(xHat[i]!);
          want.magBeta[ch]! += ref.mag.dx[i]!;
        }
        const close = (v: ArrayLike<number>, w: ArrayLike<number>, m: ArrayLike<number>, what: string) => {
          for (let i = 0; i < w.length; i++) expect(Math.abs(v[i]! - w[i]!), `${backend} ${what}[${i}]`).toBeLessThanOrEqual(2e-6 * m[i]! + 1e-12);
        };
        // y_bn carries float32 rounding into every product: the output's tolerance scales with Σ|terms| as well.
        close(got.y, ref.out.y, ref.mag.y, 'y');
        close(got.grads[0]!, want.dGamma, want.magGamma, 'dγ');
        close(got.grads[1]!, want.dBeta, want.magBeta, 'dβ');
        close(got.grads[2]!, ref.out.dw, ref.mag.dw, 'dw');
        close(got.grads[3]!, ref.out.db, ref.mag.db, 'db');
        // One step from running mean 0, variance 1, momentum 0.1, the unbiased variance.
        const ones = [1, 1, 1];
        close(got.runningMean, mean.map((m) => 0.1 * m), ones, 'running mean');
        close(got.runningVar, variance.map((v) => 0.9 + (0.1 * v * count) / (count - 1)), ones, 'running variance');
      }
    });
  }

  for (const [kernel, stride, padding] of [
    [5, 1, 2],
    [3, 1, 1],
    [3, 2, 1],
  ] as const) {
    it(`conv ${kernel}×${kernel} stride ${stride} pad ${padding} + bias + ReLU: ${stride === 1 ? 'output and gradients' : 'output'} bit-identical to tfjs's fused conv on the same backend`, () => {
      const xShape = [4, 9, 9, 3];
      const wShape = [kernel, kernel, 3, 6];
      const x = values(4 * 9 * 9 * 3, 11, (u) => u - 0.5);
      const w = values(kernel * kernel * 18, 12, (u) => (u - 0.5) / 2);
      const b = values(6, 13, (u) => (u - 0.5) / 4);
      const run = (f: (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D) => tf.Tensor) =>
        tf.tidy(() => {
          const inputs = [tf.tensor4d(x, xShape as [number, number, number, number]), tf.tensor4d(w, wShape as [number, number, number, number]), tf.tensor1d(b)];
          const y = f(inputs[0] as tf.Tensor4D, inputs[1] as tf.Tensor4D, inputs[2] as tf.Tensor1D);
          const r = tf.tensor(values(y.size, 14, (u) => u - 0.5), y.shape);
          const grads = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, c as tf.Tensor4D, d as tf.Tensor1D), r)))(inputs);
          return { y: y.dataSync(), grads: grads.map((g) => g.dataSync()) };
        });
      const ours = run((xs, ws, bs) => conv2dSymmetric(xs, ws, bs, stride, padding, 'relu'));
      // tfjs's forms: 'same' where it is symmetric, else explicit zeros and 'valid'. Natively the strided conv pads
      // inside the kernel (EXPLICIT): the same products in the output; its gradients are checked against float64 above.
      const same = stride === 1;
      const pad = [[0, 0], [padding, padding], [padding, padding], [0, 0]] as [number, number][];
      const stock = run((xs, ws, bs) =>
        tf.fused.conv2d({ x: same ? xs : tf.pad(xs, pad), filter: ws, bias: bs, strides: stride, pad: same ? 'same' : 'valid', activation: 'relu' }),
      );
      expect(ours.y).toEqual(stock.y);
      expect(Array.from(ours.y).some((v) => v === 0)).toBe(true);
      if (same) ours.grads.forEach((g, i) => expect(g, `gradient ${i}`).toEqual(stock.grads[i]));
    });
  }

  it('max pool 3/2/1 (PyTorch padding) on all-negative maps: values without a tape (natively MaxPool, EXPLICIT padding) and with one (pad, MaxPoolWithArgmax), and the gradient, equal a hand computation with −∞ padding', async () => {
    for (const size of [28, 7, 6]) {
      // Values < 0 on a 1/4 grid: a zero or finite pad would win border windows; ties test the first-maximum rule.
      const shape = [2, size, size, 3];
      const x = values(2 * size * size * 3, 90 + size, (u) => -1 - Math.round(u * 12) / 4);
      const out = Math.floor((size + 2 - 3) / 2) + 1;
      const dy = values(2 * out * out * 3, 91, (u) => u + 0.5);
      const expected = { y: new Float32Array(2 * out * out * 3), dx: new Float32Array(x.length) };
      for (let b = 0; b < 2; b++) {
        for (let oy = 0; oy < out; oy++) {
          for (let ox = 0; ox < out; ox++) {
            for (let c = 0; c < 3; c++) {
              let best = -Infinity;
              let at = -1;
              for (let iy = 2 * oy - 1; iy <= 2 * oy + 1; iy++) {
                for (let ix = 2 * ox - 1; ix <= 2 * ox + 1; ix++) {
                  if (iy < 0 || ix < 0 || iy >= size || ix >= size) continue;
                  const i = ((b * size + iy) * size + ix) * 3 + c;
                  if (x[i]! > best) [best, at] = [x[i]!, i];
                }
              }
              const o = ((b * out + oy) * out + ox) * 3 + c;
              expected.y[o] = best;
              expected.dx[at]! += dy[o]!;
            }
          }
        }
      }
      for (const backend of ['tensorflow', 'cpu']) {
        await tf.setBackend(backend);
        const input = tf.variable(tf.tensor4d(x, shape as [number, number, number, number]));
        const untaped = tf.tidy(() => maxPool2d(input, 3, 2, 1).dataSync());
        let taped: Float32Array = new Float32Array();
        const dx = tf.tidy(() => {
          const { grads } = tf.variableGrads(() => {
            const y = maxPool2d(input, 3, 2, 1);
            taped = y.dataSync() as Float32Array;
            return tf.sum(tf.mul(y, tf.tensor(dy, y.shape)));
          }, [input]);
          return grads[input.name]!.dataSync();
        });
        input.dispose();
        expect(untaped, `${backend} ${size}² without a tape`).toEqual(expected.y);
        expect(taped, `${backend} ${size}² under a tape`).toEqual(expected.y);
        expect(dx, `${backend} ${size}² gradient`).toEqual(expected.dx);
      }
    }
  });

  for (const [mapShape, gateShape] of [
    [[3, 4, 5, 6], [3, 6]],
    [[3, 4, 5, 6], [6]],
    [[2, 3, 4, 2, 5], [2, 5]],
  ] as const) {
    it(`channel gate ${mapShape.join('×')} ⊙ ${gateShape.join('×')} natively: output and gradients equal a hand computation (products exact, sums within float32 rounding) and tfjs's broadcasting Mul to the bit`, () => {
      const size = (shape: readonly number[]) => shape.reduce((p, q) => p * q, 1);
      const a = values(size(mapShape), 110, (u) => u - 0.4);
      const g = values(size(gateShape), 111, (u) => u * 2);
      const dy = values(size(mapShape), 112, (u) => u - 0.5);
      const channels = gateShape.at(-1)!;
      const perSample = size(mapShape) / mapShape[0]!;
      const gateAt = (i: number) => g[(gateShape.length === 2 ? Math.floor(i / perSample) * channels : 0) + (i % channels)]!;
      const run = (f: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor) =>
        tf.tidy(() => {
          const inputs = [tf.tensor(a, [...mapShape]), tf.tensor(g, [...gateShape])];
          const y = f(inputs[0]!, inputs[1]!);
          const grads = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(f(x, w), tf.tensor(dy, [...mapShape]))))(inputs);
          return { y: y.dataSync(), da: grads[0]!.dataSync(), dg: grads[1]!.dataSync(), shapes: [y.shape, grads[1]!.shape] };
        });
      const native = run((x, w) => nativeChannelGate(x, w)!);
      const stock = run((x, w) => tf.mul(x, broadcastOverSpatial(w, x.rank)));
      expect(native.shapes).toEqual([[...mapShape], [...gateShape]]);
      native.y.forEach((v, i) => expect(v, `y[${i}]`).toBe(Math.fround(a[i]! * gateAt(i))));
      native.da.forEach((v, i) => expect(v, `da[${i}]`).toBe(Math.fround(dy[i]! * gateAt(i))));
      const dg = new Float64Array(g.length);
      const mag = new Float64Array(g.length);
      for (let i = 0; i < a.length; i++) {
        const at = (gateShape.length === 2 ? Math.floor(i / perSample) * channels : 0) + (i % channels);
        dg[at] += dy[i]! * a[i]!;
        mag[at] += Math.abs(dy[i]! * a[i]!);
      }
      native.dg.forEach((v, i) => expect(Math.abs(v - dg[i]!), `dgate[${i}]`).toBeLessThanOrEqual(2e-6 * mag[i]!));
      expect(native.y).toEqual(stock.y);
      expect(native.da).toEqual(stock.da);
      expect(native.dg).toEqual(stock.dg);
    });
  }

  it('sigmoid natively (gradient one SigmoidGrad op): gradient equal to tfjs\'s sigmoid gradient to the bit, and to a float64 computation by hand within float32 rounding', () => {
    const x = values(4000, 120, (u) => (u - 0.5) * 16);
    const dy = values(4000, 121, (u) => u - 0.5);
    const run = (f: (t: tf.Tensor) => tf.Tensor) =>
      tf.tidy(() => {
        const input = tf.tensor(x);
        const y = f(input);
        const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), tf.tensor(dy))))(input);
        return { y: y.dataSync(), dx: dx.dataSync() };
      });
    const native = run((t) => sigmoid(t));
    const stock = run((t) => tf.sigmoid(t));
    expect(native.y).toEqual(stock.y);
    expect(native.dx).toEqual(stock.dx);
    native.dx.forEach((v, i) => {
      const s = 1 / (1 + Math.exp(-x[i]!));
      const want = dy[i]! * s * (1 - s);
      expect(Math.abs(v - want), `dx[${i}]`).toBeLessThanOrEqual(1e-6 * Math.abs(dy[i]!) * s + 1e-12);
    });
  });

  it('FlatLayout: DynamicStitch lays tensors end to end as concat(reshape) does, and unflatten gives them back', () => {
    const shapes = [[2, 3], [5], [1, 2, 2, 1], [1]];
    const data = shapes.map((shape, i) => values(shape.reduce((a, b) => a * b, 1), 40 + i, (u) => u - 0.5));
    const layout = new FlatLayout(shapes);
    tf.tidy(() => {
      const tensors = data.map((d, i) => tf.tensor(d, shapes[i]));
      const flat = layout.flatten(tensors);
      expect(Array.from(flat.dataSync())).toEqual(data.flatMap((d) => Array.from(d)));
      const back = layout.unflatten(flat);
      back.forEach((t, i) => {
        expect(t.shape).toEqual(shapes[i]);
        expect(t.dataSync()).toEqual(data[i]);
      });
    });
    layout.dispose();
  });

  it('Sgd natively (flat update through DynamicStitch) equals PyTorch\'s per-variable rule in float32 exactly, masks included', () => {
    for (const [momentum, weightDecay] of [[0.9, 0.01], [0.9, 0]] as const) {
      const { got, expected } = sgdAgainstReference({ momentum, weightDecay, restoreAt: 3 });
      expect(got, `momentum ${momentum}, weight decay ${weightDecay}`).toEqual(expected);
    }
  });

  it('Sgd starts a step from the last flat θ only while no variable was assigned since (natively one DynamicStitch fewer), on every backend', async () => {
    for (const backend of ['tensorflow', 'cpu']) {
      await tf.setBackend(backend);
      const vars: tf.Variable[] = [tf.variable(tf.tensor2d([1, 2, 3, 4], [2, 2])), tf.variable(tf.tensor1d([5, -6]))];
      const sgd = new Sgd(vars, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
      const grads = [tf.tensor2d([0.5, -0.25, 1, 2], [2, 2]), tf.tensor1d([-1, 0.75])];
      // PyTorch's rule in float32 by hand: d = g + wd·θ; v = d (first step) or µ·v + d; θ ← θ − lr·v.
      const f = Math.fround;
      let theta = [1, 2, 3, 4, 5, -6];
      const g = [0.5, -0.25, 1, 2, -1, 0.75];
      let v: number[] = [];
      const byHand = () => {
        const d = theta.map((t, i) => f(g[i]! + f(0.01 * t)));
        v = v.length ? v.map((vi, i) => f(f(0.9 * vi) + d[i]!)) : d;
        theta = theta.map((t, i) => f(t - f(v[i]! * 0.1)));
      };
      const current = () => [...vars[0]!.dataSync(), ...vars[1]!.dataSync()];
      // Count DynamicStitch ops through a stand-in binding (natively).
      const native = tf.backend() as unknown as { binding?: { executeOp: (...args: unknown[]) => unknown } };
      const real = native.binding;
      let stitches = 0;
      if (real) {
        native.binding = Object.create(real, {
          executeOp: { value: (...args: unknown[]) => ((stitches += args[0] === 'DynamicStitch' ? 1 : 0), real.executeOp(...args)) },
        }) as typeof real;
      }
      try {
        sgd.step(grads);
        byHand();
        expect(current(), `${backend} step 1`).toEqual(theta);
        sgd.step(grads);
        byHand();
        expect(current(), `${backend} step 2`).toEqual(theta);
        // θ and g laid end to end on the first step, only g on the second.
        if (real) expect(stitches).toBe(3);
        // A variable assigned from outside (a checkpoint restore, say): the next step must start from it.
        vars[1]!.assign(tf.tensor1d([7, 8]));
        theta = [...theta.slice(0, 4), 7, 8];
        sgd.step(grads);
        byHand();
        expect(current(), `${backend} step 3 after an outside assign`).toEqual(theta);
        // A step that skips a variable leaves filler in its slot: the step after it lays θ out again.
        sgd.step([grads[0]!, null]);
        const [skipped, skippedV] = [theta.slice(4), v.slice(4)];
        byHand();
        // The skipped variable keeps its weights and its momentum buffer.
        theta = [...theta.slice(0, 4), ...skipped];
        v = [...v.slice(0, 4), ...skippedV];
        expect(current(), `${backend} step 4 skipping a variable`).toEqual(theta);
        sgd.step(grads);
        byHand();
        expect(current(), `${backend} step 5`).toEqual(theta);
        if (real) expect(stitches).toBe(8);
      } finally {
        if (real) native.binding = real;
      }
      sgd.dispose();
      tf.dispose([...vars, ...grads]);
    }
  });

  it('softmax cross-entropy (SoftmaxCrossEntropyWithLogits): loss and logit gradient equal a float64 computation by hand within float32 rounding, as the portable composition does', async () => {
    const [batch, classes] = [6, 5];
    const logits = values(batch * classes, 50, (u) => (u - 0.5) * 8);
    // One-hot rows and one soft row (the op takes any distribution).
    const labels = new Float32Array(batch * classes);
    for (let b = 0; b < batch - 1; b++) labels[b * classes + ((b * 3) % classes)] = 1;
    labels.set([0.1, 0.2, 0.3, 0.4, 0], (batch - 1) * classes);
    const weight = 0.7; // dL/d(loss): the gradient is scaled by the loss's upstream gradient
    const expectedGrad: number[] = [];
    let expectedLoss = 0;
    for (let b = 0; b < batch; b++) {
      const row = Array.from(logits.subarray(b * classes, (b + 1) * classes));
      const max = Math.max(...row);
      const z = row.reduce((a, v) => a + Math.exp(v - max), 0);
      row.forEach((v, k) => {
        const p = Math.exp(v - max) / z;
        expectedLoss -= (labels[b * classes + k]! * (v - max - Math.log(z))) / batch;
        expectedGrad.push((weight * (p - labels[b * classes + k]!)) / batch);
      });
    }
    const compute = () =>
      tf.tidy(() => {
        const x = tf.tensor2d(logits, [batch, classes]);
        const y = tf.tensor2d(labels, [batch, classes]);
        const { value, grads } = tf.valueAndGrads((t: tf.Tensor) => tf.mul(softmaxCrossEntropy(t as tf.Tensor2D, y), weight))([x]);
        return { loss: value.dataSync()[0]! / weight, grad: Array.from(grads[0]!.dataSync()) };
      });
    const check = (got: { loss: number; grad: number[] }) => {
      expect(Math.abs(got.loss - expectedLoss) / expectedLoss).toBeLessThan(1e-6);
      got.grad.forEach((g, i) => expect(Math.abs(g - expectedGrad[i]!), `gradient ${i}`).toBeLessThan(1e-7));
    };
    check(compute());
    await tf.setBackend('cpu');
    check(compute());
  });

  it('BatchNorm in training (FusedBatchNormV3 + its gradient natively): output, running statistics and gradients equal a float64 computation by hand within float32 noise, as the composed ops do', async () => {
    const [n, h, w, c] = [16, 6, 5, 3];
    const count = n * h * w;
    const x = values(count * c, 60, (u) => (u - 0.3) * 5);
    const dy = values(count * c, 61, (u) => u - 0.5);
    const gammaValues = [1.5, 0.5, -1];
    const betaValues = [0.1, -0.2, 0.3];
    // Float64 reference (PyTorch's definition: biased variance to normalise, unbiased into the running variance).
    const expected = { y: new Float64Array(count * c), dx: new Float64Array(count * c), dGamma: [0, 0, 0], dBeta: [0, 0, 0], mean: [0, 0, 0], variance: [0, 0, 0] };
    for (let ch = 0; ch < c; ch++) {
      let mean = 0;
      for (let i = 0; i < count; i++) mean += x[i * c + ch]! / count;
      let variance = 0;
      for (let i = 0; i < count; i++) variance += (x[i * c + ch]! - mean) ** 2 / count;
      const inv = 1 / Math.sqrt(variance + 1e-5);
      let sumDy = 0;
      let sumDyXhat = 0;
      for (let i = 0; i < count; i++) {
        const xhat = (x[i * c + ch]! - mean) * inv;
        expected.y[i * c + ch] = gammaValues[ch]! * xhat + betaValues[ch]!;
        sumDy += dy[i * c + ch]!;
        sumDyXhat += dy[i * c + ch]! * xhat;
      }
      for (let i = 0; i < count; i++) {
        const xhat = (x[i * c + ch]! - mean) * inv;
        expected.dx[i * c + ch] = gammaValues[ch]! * inv * (dy[i * c + ch]! - sumDy / count - (xhat * sumDyXhat) / count);
      }
      Object.assign(expected.dGamma, { [ch]: sumDyXhat });
      Object.assign(expected.dBeta, { [ch]: sumDy });
      Object.assign(expected.mean, { [ch]: mean });
      Object.assign(expected.variance, { [ch]: variance });
    }
    const close = (got: ArrayLike<number>, want: ArrayLike<number>, what: string, scale: number) => {
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${what}[${i}]`).toBeLessThan(2e-5 * scale);
    };
    const check = () => {
      const bn = new BatchNorm({ seed: 0, prefix: 'bn' }, c);
      bn.gamma.variable.assign(tf.tensor1d(gammaValues));
      bn.beta.variable.assign(tf.tensor1d(betaValues));
      const input = tf.variable(tf.tensor4d(x, [n, h, w, c]));
      const upstream = tf.tensor4d(dy, [n, h, w, c]);
      // Two steps: the second moves running statistics that are no longer the initial 0 and 1.
      for (let step = 1; step <= 2; step++) {
        let y: Float32Array = new Float32Array();
        const { value, grads } = tf.variableGrads(() => {
          const out = bn.apply(input, true);
          y = out.dataSync() as Float32Array;
          return tf.sum(tf.mul(out, upstream));
        }, [input, bn.gamma.variable, bn.beta.variable]);
        close(y, expected.y, `y step ${step}`, 1);
        close(grads[input.name]!.dataSync(), expected.dx, `dx step ${step}`, 1);
        close(grads[bn.gamma.variable.name]!.dataSync(), expected.dGamma, `dγ step ${step}`, count);
        close(grads[bn.beta.variable.name]!.dataSync(), expected.dBeta, `dβ step ${step}`, count);
        tf.dispose([value, ...Object.values(grads)]);
      }
      // After two steps: r = 0.9·(0.9·r0 + 0.1·s) + 0.1·s.
      const unbiased = expected.variance.map((v) => (v * count) / (count - 1));
      close(bn.runningMean.dataSync(), expected.mean.map((m) => 0.9 * 0.1 * m + 0.1 * m), 'running mean', 1);
      close(bn.runningVar.dataSync(), unbiased.map((v) => 0.9 * (0.9 + 0.1 * v) + 0.1 * v), 'running variance', 1);
      tf.dispose([input, upstream]);
      disposeParameters(bn.parameters);
      bn.dispose();
    };
    check();
    await tf.setBackend('cpu');
    check();
  });

  it('BatchNorm in evaluation (FusedBatchNormV3, is_training false): equals the running-statistics formula by hand within float32 noise, and still has gradients under a tape', () => {
    const [n, c] = [4, 3];
    const x = values(n * 5 * 5 * c, 70, (u) => (u - 0.4) * 6);
    const bn = new BatchNorm({ seed: 0, prefix: 'bn' }, c);
    const [gamma, beta, mean, variance] = [[1.5, 0.5, -1], [0.1, -0.2, 0.3], [0.2, -0.1, 0.4], [2, 0.5, 1.5]];
    bn.gamma.variable.assign(tf.tensor1d(gamma));
    bn.beta.variable.assign(tf.tensor1d(beta));
    bn.runningMean.assign(tf.tensor1d(mean));
    bn.runningVar.assign(tf.tensor1d(variance));
    const y = tf.tidy(() => Array.from(bn.apply(tf.tensor4d(x, [n, 5, 5, c]), false).dataSync()));
    y.forEach((v, i) => {
      const ch = i % c;
      const want = ((x[i]! - mean[ch]!) / Math.sqrt(variance[ch]! + 1e-5)) * gamma[ch]! + beta[ch]!;
      expect(Math.abs(v - want), `y[${i}]`).toBeLessThan(1e-5);
    });
    // Under a tape the composed ops run: dβ = Σ dy = the element count per channel for dy = 1.
    const dBeta = tf.tidy(() => Array.from(tf.variableGrads(() => tf.sum(bn.apply(tf.tensor4d(x, [n, 5, 5, c]), false)), [bn.beta.variable]).grads[bn.beta.variable.name]!.dataSync()));
    expect(dBeta).toEqual([n * 25, n * 25, n * 25]);
    disposeParameters(bn.parameters);
    bn.dispose();
  });

  it('evaluation stage 1 natively with the bias after the pool equals relu(pool(conv + b)) bit for bit, on maps with rounding ties', () => {
    // Grid inputs and weights give many equal and nearly equal sums; a bias of awkward binary expansion makes
    // fl(c + b) collapse neighbours: the maximum must still be the same number.
    const x = values(4 * 12 * 12 * 3, 130, (u) => Math.round((u - 0.5) * 64) / 32);
    const w = values(5 * 5 * 3 * 6, 131, (u) => Math.round((u - 0.5) * 8) / 8);
    const b = values(6, 132, (u) => (u - 0.5) * 3e3 + 0.1);
    const [reordered, plain] = tf.tidy(() => {
      const [xs, ws, bs] = [tf.tensor4d(x, [4, 12, 12, 3]), tf.tensor4d(w, [5, 5, 3, 6]), tf.tensor1d(b)];
      return [
        nativeConvPoolReluInference(xs, ws, bs, 1, 2, 3, 2, 1)!.dataSync(),
        relu(maxPool2d(conv2dSymmetric(xs, ws, bs, 1, 2), 3, 2, 1)).dataSync(),
      ];
    });
    expect(reordered.length).toBe(4 * 6 * 6 * 6);
    expect(reordered).toEqual(plain);
    expect(Array.from(plain).filter((v) => v === 0).length, 'windows whose maximum is ≤ 0').toBeGreaterThan(10);
    // Under a gradient tape the native shortcut declines (the first maximum could move on a rounding tie).
    tf.tidy(() => {
      tf.grad((t: tf.Tensor) => {
        expect(nativeConvPoolReluInference(t as tf.Tensor4D, tf.tensor4d(w, [5, 5, 3, 6]), tf.tensor1d(b), 1, 2, 3, 2, 1)).toBeNull();
        return tf.sum(t);
      })(tf.tensor4d(x, [4, 12, 12, 3]));
    });
  });

  it('relu(pool(conv)) equals pool(relu(conv)) bit for bit, gradients included, natively and on cpu (CMNIST stage 1)', async () => {
    // Inputs rounded to multiples of 1/8 and small integer weights: many exact ties and all-negative windows.
    const x = values(4 * 9 * 9 * 3, 80, (u) => Math.round((u - 0.5) * 16) / 8);
    const w = values(5 * 5 * 3 * 6, 81, (u) => Math.round((u - 0.5) * 4) / 4);
    const b = values(6, 82, (u) => Math.round((u - 0.6) * 8) / 8);
    const run = (f: (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D) => tf.Tensor) =>
      tf.tidy(() => {
        const inputs = [tf.tensor4d(x, [4, 9, 9, 3]), tf.tensor4d(w, [5, 5, 3, 6]), tf.tensor1d(b)];
        const y = f(inputs[0] as tf.Tensor4D, inputs[1] as tf.Tensor4D, inputs[2] as tf.Tensor1D);
        const r = tf.tensor(values(y.size, 83, (u) => u - 0.5), y.shape);
        const grads = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, c as tf.Tensor4D, d as tf.Tensor1D), r)))(inputs);
        return { y: Array.from(y.dataSync()), grads: grads.map((g) => Array.from(g.dataSync(), (v) => v + 0)) };
      });
    for (const backend of ['tensorflow', 'cpu']) {
      await tf.setBackend(backend);
      const reordered = run((xs, ws, bs) => relu(maxPool2d(conv2dSymmetric(xs, ws, bs, 1, 2), 3, 2, 1)));
      const plain = run((xs, ws, bs) => maxPool2d(conv2dSymmetric(xs, ws, bs, 1, 2, 'relu'), 3, 2, 1));
      expect(reordered.y, backend).toEqual(plain.y);
      expect(reordered.y.filter((v) => v === 0).length, 'windows whose maximum is ≤ 0').toBeGreaterThan(10);
      reordered.grads.forEach((g, i) => expect(g, `${backend} gradient ${i}`).toEqual(plain.grads[i]));
    }
  });
});

/**
 * Float64 reference implementations of the forward ops whose gradients the parity tests check, written
 * independently of tfjs (own padding arithmetic, plain loops), plus central finite differences.
 * Layouts follow the project: channels-last, filters [KD,]KH×KW×Cin×Cout.
 */

export type Padding = 'same' | 'valid' | [number, number][]; // explicit: [before, after] per spatial axis

export interface Geometry {
  inSize: number[];
  outSize: number[];
  padBefore: number[];
}

/** TensorFlow's rules: 'same' → out = ⌈in/s⌉ with the odd padding element after; 'valid' → ⌊(in−k)/s⌋+1. */
export function geometry(inSize: number[], kernel: number[], strides: number[], padding: Padding): Geometry {
  const outSize: number[] = [];
  const padBefore: number[] = [];
  inSize.forEach((n, i) => {
    const k = kernel[i]!;
    const s = strides[i]!;
    if (padding === 'same') {
      const out = Math.ceil(n / s);
      const total = Math.max((out - 1) * s + k - n, 0);
      outSize.push(out);
      padBefore.push(Math.floor(total / 2));
    } else if (padding === 'valid') {
      outSize.push(Math.floor((n - k) / s) + 1);
      padBefore.push(0);
    } else {
      const [before, after] = padding[i]!;
      outSize.push(Math.floor((n + before + after - k) / s) + 1);
      padBefore.push(before);
    }
  });
  return { inSize, outSize, padBefore };
}

/** N-d spatial convolution (1–3 spatial axes) on x [N, ...spatial, Cin] with w [...kernel, Cin, Cout]. */
export function convRef(
  x: Float64Array,
  xShape: number[],
  w: Float64Array,
  wShape: number[],
  strides: number[],
  padding: Padding,
): { out: Float64Array; shape: number[] } {
  const rank = xShape.length - 2;
  const [N] = xShape as [number];
  const Cin = xShape[rank + 1]!;
  const Cout = wShape[rank + 1]!;
  const spatial = xShape.slice(1, rank + 1);
  const kernel = wShape.slice(0, rank);
  const g = geometry(spatial, kernel, strides, padding);
  // Pad missing leading spatial axes to 3 so one loop nest serves 1-D to 3-D.
  const lift = (a: number[], fill: number) => [...Array(3 - rank).fill(fill), ...a];
  const [D, H, W] = lift(spatial, 1) as [number, number, number];
  const [KD, KH, KW] = lift(kernel, 1) as [number, number, number];
  const [OD, OH, OW] = lift(g.outSize, 1) as [number, number, number];
  const [sd, sh, sw] = lift(strides, 1) as [number, number, number];
  const [pd, ph, pw] = lift(g.padBefore, 0) as [number, number, number];
  const out = new Float64Array(N * OD * OH * OW * Cout);
  for (let n = 0; n < N; n++)
    for (let od = 0; od < OD; od++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++)
          for (let co = 0; co < Cout; co++) {
            let acc = 0;
            for (let kd = 0; kd < KD; kd++) {
              const id = od * sd - pd + kd;
              if (id < 0 || id >= D) continue;
              for (let kh = 0; kh < KH; kh++) {
                const ih = oh * sh - ph + kh;
                if (ih < 0 || ih >= H) continue;
                for (let kw = 0; kw < KW; kw++) {
                  const iw = ow * sw - pw + kw;
                  if (iw < 0 || iw >= W) continue;
                  for (let ci = 0; ci < Cin; ci++) {
                    acc +=
                      x[(((n * D + id) * H + ih) * W + iw) * Cin + ci]! *
                      w[(((kd * KH + kh) * KW + kw) * Cin + ci) * Cout + co]!;
                  }
                }
              }
            }
            out[(((n * OD + od) * OH + oh) * OW + ow) * Cout + co] = acc;
          }
  return { out, shape: [N, ...g.outSize, Cout] };
}

/** N-d spatial max or average pooling; padding never takes part (max ignores it, average divides by the in-bounds count). */
export function poolRef(
  kind: 'max' | 'avg',
  x: Float64Array,
  xShape: number[],
  window: number[],
  strides: number[],
  padding: Padding,
): { out: Float64Array; shape: number[] } {
  const rank = xShape.length - 2;
  const N = xShape[0]!;
  const C = xShape[rank + 1]!;
  const g = geometry(xShape.slice(1, rank + 1), window, strides, padding);
  const lift = (a: number[], fill: number) => [...Array(3 - rank).fill(fill), ...a];
  const [D, H, W] = lift(xShape.slice(1, rank + 1), 1) as [number, number, number];
  const [KD, KH, KW] = lift(window, 1) as [number, number, number];
  const [OD, OH, OW] = lift(g.outSize, 1) as [number, number, number];
  const [sd, sh, sw] = lift(strides, 1) as [number, number, number];
  const [pd, ph, pw] = lift(g.padBefore, 0) as [number, number, number];
  const out = new Float64Array(N * OD * OH * OW * C);
  for (let n = 0; n < N; n++)
    for (let od = 0; od < OD; od++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++)
          for (let c = 0; c < C; c++) {
            let acc = kind === 'max' ? -Infinity : 0;
            let count = 0;
            for (let kd = 0; kd < KD; kd++)
              for (let kh = 0; kh < KH; kh++)
                for (let kw = 0; kw < KW; kw++) {
                  const id = od * sd - pd + kd;
                  const ih = oh * sh - ph + kh;
                  const iw = ow * sw - pw + kw;
                  if (id < 0 || id >= D || ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                  const v = x[(((n * D + id) * H + ih) * W + iw) * C + c]!;
                  acc = kind === 'max' ? Math.max(acc, v) : acc + v;
                  count++;
                }
            out[(((n * OD + od) * OH + oh) * OW + ow) * C + c] = kind === 'max' ? acc : acc / count;
          }
  return { out, shape: [N, ...g.outSize, C] };
}

/** C = op(A)·op(B) for 2-D A, B. */
export function matMulRef(
  a: Float64Array,
  aShape: number[],
  b: Float64Array,
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
): Float64Array {
  const [ar, ac] = aShape as [number, number];
  const [br, bc] = bShape as [number, number];
  const m = transposeA ? ac : ar;
  const k = transposeA ? ar : ac;
  const n = transposeB ? br : bc;
  const A = (i: number, p: number) => (transposeA ? a[p * ac + i]! : a[i * ac + p]!);
  const B = (p: number, j: number) => (transposeB ? b[j * bc + p]! : b[p * bc + j]!);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) acc += A(i, p) * B(p, j);
      out[i * n + j] = acc;
    }
  return out;
}

/**
 * Central finite differences of the scalar `loss` with respect to every element of `x` (perturbed in place and
 * restored). Float64 throughout, so eps can be small.
 */
export function finiteDifferences(x: Float64Array, loss: () => number, eps = 1e-6): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x[i]!;
    x[i] = keep + eps;
    const up = loss();
    x[i] = keep - eps;
    const down = loss();
    x[i] = keep;
    grad[i] = (up - down) / (2 * eps);
  }
  return grad;
}

/**
 * Deterministic values in [lo, hi) (a 32-bit LCG: the tests must not depend on Math.random), rounded to float32
 * so that the float64 reference sees exactly the inputs tfjs sees.
 */
export function seeded(size: number, seed: number, lo = -1, hi = 1): Float64Array {
  let s = (seed * 2654435761) >>> 0;
  const out = new Float64Array(size);
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = Math.fround(lo + ((s >>> 8) / 16777216) * (hi - lo));
  }
  return out;
}

export const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

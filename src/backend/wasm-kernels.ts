import * as tf from '@tensorflow/tfjs';
// Imported here, not lazily, so its kernel registrations always precede (and never overwrite) ours.
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { copySlice, MIN_SLICE_RUN, planSlice } from './slicing.ts';
import { avgPoolBackwardInto, maxPool2DGradInto, maxPoolInto, pool2D, pool3D, pooledShape, type PoolGeometry } from './pooling.ts';

/**
 * Training kernels for the wasm backend.
 *
 * The stock wasm backend (tfjs 4.22) has no `Conv2DBackpropFilter`, so no conv net trains on it. Other stock
 * kernels give wrong results, each caught by test/backend/gradient-parity.test.ts against finite differences:
 * `Conv3DBackpropFilterV2` for strides > 1; `Conv3DBackpropInputV2` (NaN at stride 1, wrong at stride 2);
 * `MaxPoolGrad` and `MaxPool3D` under padding when a window holds only negative values (padding counted as 0);
 * `AvgPoolGrad` with 'same' padding (divides by the full window, unlike its forward). Its `Conv2DBackpropInput`
 * is correct but a scalar loop (46 % of a CMNIST step).
 * The replacements put the heavy arithmetic in the backend's XNNPACK kernels (convolution, matmul):
 * - filter gradient (2-D): for Cin ≥ 16 one dilated convolution of the transposed input with the transposed dy;
 *   otherwise (and in 3-D) an im2col matrix built transposed in JS times dy on `BatchMatMul` (XNNPACK takes only
 *   the untransposed, batch-1 case, which is the one used);
 * - input gradient (2-D): the stride-1 convolution of dy with the reversed, in/out-swapped filter; for strides > 1
 *   or Cin ≤ 4, dy·Wᵀ on `BatchMatMul` scattered back by col2im in JS; in 3-D the zero-inserted dy on `Conv3D`;
 * - pooling (max forward in 3-D, max and average gradients): one pass over the windows in JS (first maximum
 *   wins, as on the cpu backend; padding never takes part);
 * - `Slice` and leading-axes `Sum`: straight loops over the heap instead of the stock copy-then-loop paths.
 * Measured on the CMNIST step (bench/train.ts, CPU time): 1.17 s with only the missing and correcting kernels,
 * 0.50 s with all of them.
 * Layouts are channels-last only (the project's convention); anything else fails with a clear error.
 */

type WasmKernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: Record<string, unknown> }) => tf.TensorInfo;

const BACKEND = 'wasm';

function floats(backend: BackendWasm, info: tf.TensorInfo): Float32Array {
  if (info.dtype !== 'float32') throw new Error(`wasm training kernels take float32 tensors, got ${info.dtype}`);
  // A fresh view every time: any allocation may grow (and so detach) the wasm heap.
  return backend.typedArrayFromHeap(info) as Float32Array;
}

function callKernel(name: string, backend: BackendWasm, inputs: tf.NamedTensorInfoMap, attrs: Record<string, unknown> = {}): tf.TensorInfo {
  const kernel = tf.getKernel(name, BACKEND);
  if (!kernel) throw new Error(`the wasm backend has no '${name}' kernel`);
  return kernel.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as tf.TensorInfo;
}

function requireChannelsLast(kernel: string, dataFormat: unknown): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'NDHWC' && dataFormat !== 'channelsLast') {
    throw new Error(`${kernel} on wasm supports channels-last layouts only (got dataFormat '${String(dataFormat)}')`);
  }
}

/** Geometry of a (possibly 3-D) convolution, with 2-D as depth 1. */
interface ConvGeometry {
  batch: number;
  inDepth: number; inHeight: number; inWidth: number; inChannels: number;
  filterDepth: number; filterHeight: number; filterWidth: number; outChannels: number;
  outDepth: number; outHeight: number; outWidth: number;
  strideDepth: number; strideHeight: number; strideWidth: number;
  padFront: number; padTop: number; padLeft: number;
}

function geometry2D(info: tf.backend_util.Conv2DInfo): ConvGeometry {
  return {
    batch: info.batchSize,
    inDepth: 1, inHeight: info.inHeight, inWidth: info.inWidth, inChannels: info.inChannels,
    filterDepth: 1, filterHeight: info.filterHeight, filterWidth: info.filterWidth, outChannels: info.outChannels,
    outDepth: 1, outHeight: info.outHeight, outWidth: info.outWidth,
    strideDepth: 1, strideHeight: info.strideHeight, strideWidth: info.strideWidth,
    padFront: 0, padTop: info.padInfo.top, padLeft: info.padInfo.left,
  };
}

function geometry3D(info: tf.backend_util.Conv3DInfo): ConvGeometry {
  return {
    batch: info.batchSize,
    inDepth: info.inDepth, inHeight: info.inHeight, inWidth: info.inWidth, inChannels: info.inChannels,
    filterDepth: info.filterDepth, filterHeight: info.filterHeight, filterWidth: info.filterWidth, outChannels: info.outChannels,
    outDepth: info.outDepth, outHeight: info.outHeight, outWidth: info.outWidth,
    strideDepth: info.strideDepth, strideHeight: info.strideHeight, strideWidth: info.strideWidth,
    padFront: info.padInfo.front, padTop: info.padInfo.top, padLeft: info.padInfo.left,
  };
}

/**
 * dW = colᵀ · dy, where colᵀ[(kd,kh,kw,ci), (n,od,oh,ow)] = x at the input position that filter tap (kd,kh,kw)
 * sees for output (n,od,oh,ow), 0 in the padding. Returns a [K, Cout] tensor whose row-major data is exactly
 * the filter layout [KD,KH,KW,Cin,Cout].
 */
function filterGradient(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const rows = g.filterDepth * g.filterHeight * g.filterWidth * g.inChannels;
  const cols = g.batch * g.outDepth * g.outHeight * g.outWidth;
  const colT = backend.makeOutput([1, rows, cols], 'float32');
  const xs = floats(backend, x);
  const out = floats(backend, colT);
  const { inDepth: D, inHeight: H, inWidth: W, inChannels: C, outDepth: OD, outHeight: OH, outWidth: OW } = g;
  for (let kd = 0; kd < g.filterDepth; kd++) {
    for (let kh = 0; kh < g.filterHeight; kh++) {
      for (let kw = 0; kw < g.filterWidth; kw++) {
        // Output columns whose input column lies inside x: ow ∈ [owLo, owHi).
        const shiftW = kw - g.padLeft;
        let owLo = 0;
        while (owLo < OW && owLo * g.strideWidth + shiftW < 0) owLo++;
        let owHi = OW;
        while (owHi > owLo && (owHi - 1) * g.strideWidth + shiftW >= W) owHi--;
        for (let ci = 0; ci < C; ci++) {
          const row = (((kd * g.filterHeight + kh) * g.filterWidth + kw) * C + ci) * cols;
          for (let n = 0; n < g.batch; n++) {
            for (let od = 0; od < OD; od++) {
              const id = od * g.strideDepth - g.padFront + kd;
              for (let oh = 0; oh < OH; oh++) {
                const base = row + ((n * OD + od) * OH + oh) * OW;
                const ih = oh * g.strideHeight - g.padTop + kh;
                if (id < 0 || id >= D || ih < 0 || ih >= H) {
                  out.fill(0, base, base + OW);
                  continue;
                }
                const xRow = ((n * D + id) * H + ih) * W * C + ci;
                for (let ow = 0; ow < owLo; ow++) out[base + ow] = 0;
                let xi = xRow + (owLo * g.strideWidth + shiftW) * C;
                const xStep = g.strideWidth * C;
                for (let ow = owLo; ow < owHi; ow++, xi += xStep) out[base + ow] = xs[xi];
                for (let ow = owHi; ow < OW; ow++) out[base + ow] = 0;
              }
            }
          }
        }
      }
    }
  }
  const dy3 = { dataId: dy.dataId, shape: [1, cols, g.outChannels], dtype: dy.dtype };
  const product = callKernel('BatchMatMul', backend, { a: colT, b: dy3 }, { transposeA: false, transposeB: false });
  backend.disposeData(colT.dataId);
  return product;
}

const conv2DBackpropFilter: WasmKernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  requireChannelsLast('Conv2DBackpropFilter', dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast',
  );
  const g = geometry2D(info);
  if (g.inChannels >= DILATED_FILTER_GRADIENT_MIN_CHANNELS) return filterGradientByDilatedConv(backend, x, dy, g);
  const product = filterGradient(backend, x, dy, g);
  return { dataId: product.dataId, shape: [...filterShape], dtype: 'float32' };
};

/**
 * From this many input channels on, the filter gradient runs as one XNNPACK convolution (measured faster than
 * the JS im2col + matmul, whose strided gather dominates when Cin is large; slower for conv1's 1–3 channels).
 */
const DILATED_FILTER_GRADIENT_MIN_CHANNELS = 16;

/**
 * The filter gradient as a forward convolution: with xᵀ = x transposed to [Cin, H, W, N] (batch Cin, channels N)
 * and the "filter" dyᵀ = dy transposed to [OH, OW, N, Cout], dilated by the stride,
 * conv(xᵀ, dyᵀ)[ci, kh, kw, co] = Σ_{oh,ow,n} x[n, kh + oh·s − pt, kw + ow·s − pl, ci] · dy[n, oh, ow, co] = dW.
 * Padding after is chosen so the output is exactly KH×KW.
 */
function filterGradientByDilatedConv(backend: BackendWasm, x: tf.TensorInfo, dy: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const padBottom = g.filterHeight + (g.outHeight - 1) * g.strideHeight - g.inHeight - g.padTop;
  const padRight = g.filterWidth + (g.outWidth - 1) * g.strideWidth - g.inWidth - g.padLeft;
  // A negative pad means trailing rows/columns no output reads (e.g. 'valid' with a stride): crop them off.
  const cropped =
    padBottom < 0 || padRight < 0
      ? callKernel('Slice', backend, { x }, {
          begin: [0, 0, 0, 0],
          size: [g.batch, g.inHeight + Math.min(0, padBottom), g.inWidth + Math.min(0, padRight), g.inChannels],
        })
      : x;
  const xT = callKernel('Transpose', backend, { x: cropped }, { perm: [3, 1, 2, 0] });
  if (cropped !== x) backend.disposeData(cropped.dataId);
  const dyT = callKernel('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] });
  const product = callKernel('Conv2D', backend, { x: xT, filter: dyT }, {
    strides: [1, 1],
    pad: [[0, 0], [g.padTop, Math.max(0, padBottom)], [g.padLeft, Math.max(0, padRight)], [0, 0]],
    dilations: [g.strideHeight, g.strideWidth],
    dataFormat: 'NHWC',
  });
  backend.disposeData(xT.dataId);
  backend.disposeData(dyT.dataId);
  const dW = callKernel('Transpose', backend, { x: product }, { perm: [1, 2, 0, 3] });
  backend.disposeData(product.dataId);
  return dW;
}

const conv3DBackpropFilterV2: WasmKernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, filterShape } = attrs as unknown as tf.Conv3DBackpropFilterV2Attrs;
  const info = tf.backend_util.computeConv3DInfo(
    x.shape as [number, number, number, number, number], filterShape, strides, 1, pad,
  );
  const product = filterGradient(backend, x, dy, geometry3D(info));
  return { dataId: product.dataId, shape: [...filterShape], dtype: 'float32' };
};

/** W̃[kd,kh,kw,co,ci] = W[KD−1−kd, KH−1−kh, KW−1−kw, ci, co]: the filter of the input-gradient convolution. */
function flippedFilter(backend: BackendWasm, filter: tf.TensorInfo, g: ConvGeometry): tf.TensorInfo {
  const { filterDepth: KD, filterHeight: KH, filterWidth: KW, inChannels: Cin, outChannels: Cout } = g;
  const rank = filter.shape.length;
  const flipped = backend.makeOutput(rank === 5 ? [KD, KH, KW, Cout, Cin] : [KH, KW, Cout, Cin], 'float32');
  const w = floats(backend, filter);
  const f = floats(backend, flipped);
  const taps = KD * KH * KW;
  for (let tap = 0; tap < taps; tap++) {
    const src = (taps - 1 - tap) * Cin * Cout; // reversing every spatial axis reverses the flattened tap index
    const dst = tap * Cout * Cin;
    for (let ci = 0; ci < Cin; ci++) for (let co = 0; co < Cout; co++) f[dst + co * Cin + ci] = w[src + ci * Cout + co];
  }
  return flipped;
}

/**
 * Padding in front of / behind the zero-inserted dy (negative = crop) per spatial axis, so that a stride-1 'valid'
 * convolution with the flipped filter yields an output of the input's size.
 */
function inputGradientPads(g: ConvGeometry): { before: [number, number, number]; after: [number, number, number] } {
  const axis = (inSize: number, k: number, padBefore: number, outSize: number, stride: number) => {
    const before = k - 1 - padBefore;
    return [before, inSize + k - 1 - before - ((outSize - 1) * stride + 1)] as const;
  };
  const d = axis(g.inDepth, g.filterDepth, g.padFront, g.outDepth, g.strideDepth);
  const h = axis(g.inHeight, g.filterHeight, g.padTop, g.outHeight, g.strideHeight);
  const w = axis(g.inWidth, g.filterWidth, g.padLeft, g.outWidth, g.strideWidth);
  return { before: [d[0], h[0], w[0]], after: [d[1], h[1], w[1]] };
}

/** dy with (stride − 1) zeros inserted between elements and padded (or cropped) as `inputGradientPads` says. */
function dilateAndPad(backend: BackendWasm, dy: tf.TensorInfo, g: ConvGeometry, rank: 4 | 5): tf.TensorInfo {
  const { before } = inputGradientPads(g);
  const PD = g.inDepth + g.filterDepth - 1;
  const PH = g.inHeight + g.filterHeight - 1;
  const PW = g.inWidth + g.filterWidth - 1;
  const C = g.outChannels;
  const padded = backend.makeOutput(rank === 5 ? [g.batch, PD, PH, PW, C] : [g.batch, PH, PW, C], 'float32');
  const p = floats(backend, padded);
  const d = floats(backend, dy);
  p.fill(0);
  for (let n = 0; n < g.batch; n++) {
    for (let od = 0; od < g.outDepth; od++) {
      const pd = before[0] + od * g.strideDepth;
      if (pd < 0 || pd >= PD) continue;
      for (let oh = 0; oh < g.outHeight; oh++) {
        const ph = before[1] + oh * g.strideHeight;
        if (ph < 0 || ph >= PH) continue;
        for (let ow = 0; ow < g.outWidth; ow++) {
          const pw = before[2] + ow * g.strideWidth;
          if (pw < 0 || pw >= PW) continue;
          const src = (((n * g.outDepth + od) * g.outHeight + oh) * g.outWidth + ow) * C;
          p.set(d.subarray(src, src + C), (((n * PD + pd) * PH + ph) * PW + pw) * C);
        }
      }
    }
  }
  return padded;
}

/**
 * dx = conv_valid(P, W̃) with stride 1, where P is the zero-inserted, padded dy and W̃ the reversed, in/out-swapped
 * filter. With stride 1 and non-negative pads the padding is handed to XNNPACK instead of copied.
 */
const conv2DBackpropInput: WasmKernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  requireChannelsLast('Conv2DBackpropInput', dataFormat);
  const g = geometry2D(
    tf.backend_util.computeConv2DInfo(
      inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, 'channelsLast',
    ),
  );
  if (g.inChannels <= COL2IM_MAX_CHANNELS || g.strideHeight > 1 || g.strideWidth > 1) {
    return inputGradientByCol2Im(backend, dy, filter, g, inputShape);
  }
  const flipped = flippedFilter(backend, filter, g);
  const { before, after } = inputGradientPads(g);
  const convAttrs = { strides: [1, 1], dataFormat: 'NHWC', dilations: [1, 1] };
  let result: tf.TensorInfo;
  if (g.strideHeight === 1 && g.strideWidth === 1 && Math.min(before[1], before[2], after[1], after[2]) >= 0) {
    const explicit = [[0, 0], [before[1], after[1]], [before[2], after[2]], [0, 0]];
    result = callKernel('Conv2D', backend, { x: dy, filter: flipped }, { ...convAttrs, pad: explicit });
  } else {
    const padded = dilateAndPad(backend, dy, g, 4);
    result = callKernel('Conv2D', backend, { x: padded, filter: flipped }, { ...convAttrs, pad: 'valid' });
    backend.disposeData(padded.dataId);
  }
  backend.disposeData(flipped.dataId);
  return result;
};

/**
 * The input gradient goes through a matmul + col2im instead when the forward has few input channels (conv1: 1
 * or 3; a convolution with so few output channels leaves XNNPACK's SIMD lanes idle) or strides > 1 (the
 * zero-inserted dy would make ¾ of a stride-2 convolution's work multiply zeros).
 */
const COL2IM_MAX_CHANNELS = 4;

/** dx = col2im(dy · Wᵀ): G[m, (kh,kw,ci)] = Σ_co dy[m, co]·W[kh,kw,ci,co], then each G entry added at its input position. */
function inputGradientByCol2Im(
  backend: BackendWasm, dy: tf.TensorInfo, filter: tf.TensorInfo, g: ConvGeometry, inputShape: number[],
): tf.TensorInfo {
  const taps = g.filterHeight * g.filterWidth * g.inChannels;
  const rows = g.batch * g.outHeight * g.outWidth;
  const Cout = g.outChannels;
  const filterT = backend.makeOutput([1, Cout, taps], 'float32');
  {
    const w = floats(backend, filter);
    const t = floats(backend, filterT);
    for (let k = 0; k < taps; k++) for (let co = 0; co < Cout; co++) t[co * taps + k] = w[k * Cout + co]!;
  }
  const dy3 = { dataId: dy.dataId, shape: [1, rows, Cout], dtype: dy.dtype };
  const cols = callKernel('BatchMatMul', backend, { a: dy3, b: filterT }, { transposeA: false, transposeB: false });
  backend.disposeData(filterT.dataId);
  const dx = backend.makeOutput([...inputShape], 'float32');
  const G = floats(backend, cols);
  const out = floats(backend, dx);
  out.fill(0);
  const { inHeight: H, inWidth: W, inChannels: C, filterHeight: KH, filterWidth: KW } = g;
  let m = 0;
  for (let n = 0; n < g.batch; n++) {
    for (let oh = 0; oh < g.outHeight; oh++) {
      const h0 = oh * g.strideHeight - g.padTop;
      for (let ow = 0; ow < g.outWidth; ow++, m++) {
        const w0 = ow * g.strideWidth - g.padLeft;
        const gRow = m * taps;
        for (let kh = 0; kh < KH; kh++) {
          const ih = h0 + kh;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = w0 + kw;
            if (iw < 0 || iw >= W) continue;
            const base = ((n * H + ih) * W + iw) * C;
            const gBase = gRow + (kh * KW + kw) * C;
            for (let ci = 0; ci < C; ci++) out[base + ci] += G[gBase + ci]!;
          }
        }
      }
    }
  }
  backend.disposeData(cols.dataId);
  return dx;
}

/** The same construction in 3-D, on the wasm `Conv3D` (the stock input gradient returns NaN and wrong values). */
const conv3DBackpropInputV2: WasmKernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, inputShape } = attrs as unknown as tf.Conv3DBackpropInputV2Attrs;
  const g = geometry3D(
    tf.backend_util.computeConv3DInfo(inputShape, filter.shape as [number, number, number, number, number], strides, 1, pad),
  );
  const flipped = flippedFilter(backend, filter, g);
  const padded = dilateAndPad(backend, dy, g, 5);
  const result = callKernel('Conv3D', backend, { x: padded, filter: flipped }, { strides: [1, 1, 1], pad: 'valid', dilations: [1, 1, 1] });
  backend.disposeData(padded.dataId);
  backend.disposeData(flipped.dataId);
  return result;
};

/** Max pooling forward (no `dy`) or backward (`dy`: the gradient w.r.t. the pooled output). */
function maxPool(backend: BackendWasm, input: tf.TensorInfo, g: PoolGeometry, dy?: tf.TensorInfo): tf.TensorInfo {
  const out = backend.makeOutput(dy ? input.shape : pooledShape(input.shape, g), 'float32');
  maxPoolInto(floats(backend, input), g, floats(backend, out), dy ? floats(backend, dy) : undefined);
  return out;
}

function avgPoolBackward(backend: BackendWasm, input: tf.TensorInfo, g: PoolGeometry, dy: tf.TensorInfo): tf.TensorInfo {
  const dx = backend.makeOutput(input.shape, 'float32');
  avgPoolBackwardInto(floats(backend, dy), g, floats(backend, dx));
  return dx;
}

const maxPoolGrad: WasmKernelFunc = ({ inputs, backend, attrs }) => {
  const input = inputs.input as tf.TensorInfo;
  const dx = backend.makeOutput(input.shape, 'float32');
  maxPool2DGradInto(
    floats(backend, input), floats(backend, inputs.output as tf.TensorInfo), floats(backend, inputs.dy as tf.TensorInfo),
    pool2D(input, attrs), floats(backend, dx),
  );
  return dx;
};
const avgPoolGrad: WasmKernelFunc = ({ inputs, backend, attrs }) =>
  avgPoolBackward(backend, inputs.input as tf.TensorInfo, pool2D(inputs.input as tf.TensorInfo, attrs), inputs.dy as tf.TensorInfo);
const maxPool3DForward: WasmKernelFunc = ({ inputs, backend, attrs }) =>
  maxPool(backend, inputs.x as tf.TensorInfo, pool3D(inputs.x as tf.TensorInfo, attrs));
const maxPool3DGrad: WasmKernelFunc = ({ inputs, backend, attrs }) =>
  maxPool(backend, inputs.input as tf.TensorInfo, pool3D(inputs.input as tf.TensorInfo, attrs), inputs.dy as tf.TensorInfo);
const avgPool3DGrad: WasmKernelFunc = ({ inputs, backend, attrs }) =>
  avgPoolBackward(backend, inputs.input as tf.TensorInfo, pool3D(inputs.input as tf.TensorInfo, attrs), inputs.dy as tf.TensorInfo);

/**
 * Slice by contiguous runs read straight from the heap. The stock kernel first copies the whole input out of the
 * heap (`readSync`) and then slices element by element; in a CMNIST step it spent 9 % of the time slicing the
 * gradient of the max-pool's padding away. Short runs and non-numeric tensors go to the stock kernel.
 */
const slice: WasmKernelFunc = (args) => {
  const { inputs, backend, attrs } = args;
  const x = inputs.x as tf.TensorInfo;
  const plan = planSlice(x, attrs.begin as number[], attrs.size as number[]);
  if ((x.dtype !== 'float32' && x.dtype !== 'int32') || plan.run < MIN_SLICE_RUN) {
    return stockKernel('Slice').kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  const out = backend.makeOutput(plan.size, x.dtype);
  copySlice(backend.typedArrayFromHeap(x) as Float32Array | Int32Array, x.shape, plan, backend.typedArrayFromHeap(out) as Float32Array | Int32Array);
  return out;
};

/**
 * Sum over leading axes (a bias gradient: Σ over N, H, W of B×H×W×C) as one pass over the rows in JS with
 * float64 accumulators. The stock kernel first transposes the reduced axes innermost (a full copy in a slow
 * generic loop). Other reductions go to the stock kernel.
 */
const sum: WasmKernelFunc = (args) => {
  const { inputs, backend, attrs } = args;
  const x = inputs.x as tf.TensorInfo;
  const rank = x.shape.length;
  const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((a, b) => a - b);
  const leading = axes.every((a, i) => a === i) && axes.length < rank;
  const rows = x.shape.slice(0, axes.length).reduce((a, b) => a * b, 1);
  if (x.dtype !== 'float32' || !leading || rows < MIN_ROWS_SUM) {
    return stockKernel('Sum').kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  const kept = x.shape.slice(axes.length);
  const cols = tf.util.sizeFromShape(kept);
  const out = backend.makeOutput(attrs.keepDims ? [...axes.map(() => 1), ...kept] : kept, 'float32');
  const xs = floats(backend, x);
  const acc = new Float64Array(cols);
  for (let r = 0, at = 0; r < rows; r++) for (let c = 0; c < cols; c++, at++) acc[c] += xs[at]!;
  floats(backend, out).set(acc);
  return out;
};
const MIN_ROWS_SUM = 64;

function stockKernel(name: string): tf.KernelConfig {
  const stock = stockKernels.get(name);
  if (!stock) throw new Error(`internal: the stock wasm '${name}' kernel was not recorded`);
  return stock;
}

/** The kernels `registerWasmTrainingKernels` installs, by role. */
export const wasmTrainingKernels = {
  /** Missing from the stock backend. */
  required: { Conv2DBackpropFilter: conv2DBackpropFilter },
  /** Replace stock kernels that give wrong gradients in cases our networks can hit. */
  fixes: {
    Conv3DBackpropFilterV2: conv3DBackpropFilterV2,
    Conv3DBackpropInputV2: conv3DBackpropInputV2,
    MaxPoolGrad: maxPoolGrad,
    AvgPoolGrad: avgPoolGrad,
    MaxPool3D: maxPool3DForward,
    MaxPool3DGrad: maxPool3DGrad,
    AvgPool3DGrad: avgPool3DGrad,
  },
  /** Replace correct but slow stock kernels. */
  speed: { Conv2DBackpropInput: conv2DBackpropInput, Slice: slice, Sum: sum },
} as const;

const stockKernels = new Map<string, tf.KernelConfig>();
let installed: 'none' | 'required' | 'fast' = 'none';

function install(name: string, kernelFunc: WasmKernelFunc): void {
  const existing = tf.getKernel(name, BACKEND);
  if (existing && !stockKernels.has(name)) stockKernels.set(name, existing);
  if (existing) tf.unregisterKernel(name, BACKEND);
  const stock = stockKernels.get(name);
  tf.registerKernel({
    kernelName: name,
    backendName: BACKEND,
    kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    // The engine runs setup functions only for kernels registered when the backend starts; ours may fall back to
    // (or call) the stock kernel, whose setup binds its wasm function.
    ...(stock?.setupFunc ? { setupFunc: stock.setupFunc } : {}),
  });
}

function restoreStock(name: string): void {
  const stock = stockKernels.get(name);
  if (!stock) return; // never replaced
  if (tf.getKernel(name, BACKEND)) tf.unregisterKernel(name, BACKEND);
  tf.registerKernel(stock);
  // A stock kernel binds its wasm function in setupFunc, which the engine runs only at backend start-up.
  const backend = tf.findBackend(BACKEND);
  if (backend && stock.setupFunc) stock.setupFunc(backend);
}

/**
 * Install the wasm training kernels. `fast: false` keeps (or restores) the stock kernels of the `speed` group, for
 * the benchmark's before/after comparison; the missing and the correcting kernels are always installed.
 * Idempotent; safe to call before or after the wasm backend is initialised.
 */
export function registerWasmTrainingKernels(options: { fast?: boolean } = {}): void {
  const fast = options.fast ?? true;
  const want = fast ? 'fast' : 'required';
  if (installed === want) return;
  for (const [name, fn] of Object.entries({ ...wasmTrainingKernels.required, ...wasmTrainingKernels.fixes })) {
    if (installed === 'none') install(name, fn);
  }
  for (const [name, fn] of Object.entries(wasmTrainingKernels.speed)) {
    if (fast) install(name, fn);
    else restoreStock(name);
  }
  installed = want;
}

/** Names of the kernels this module currently overrides or adds on wasm. */
export function installedWasmKernels(): string[] {
  if (installed === 'none') return [];
  const names = [...Object.keys(wasmTrainingKernels.required), ...Object.keys(wasmTrainingKernels.fixes)];
  if (installed === 'fast') names.push(...Object.keys(wasmTrainingKernels.speed));
  return names;
}

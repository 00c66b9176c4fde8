import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { avgPoolBackwardInto, maxPool2DGradInto, pool2D, pool3D } from './pooling.ts';
import { copySlice, MIN_SLICE_RUN, planSlice } from './slicing.ts';

/**
 * Kernels replacing stock ones of the pure-JS cpu backend (tfjs 4.22):
 * - `AvgPoolGrad` and `AvgPool3DGrad` divide by the full window size under 'same' padding although the forward
 *   divides by the in-bounds count, so their gradients are wrong at the borders (caught by
 *   test/backend/gradient-parity.test.ts against finite differences);
 * - `Conv2DBackpropFilter` reads one element per `TensorBuffer.get` call (91 % of a CMNIST training step, ≈ 30 s
 *   at batch 8); ours runs the same sums in the same order on typed arrays, so results are bit-identical;
 * - `MaxPoolGrad` and non-contiguous `Slice` go through `TensorBuffer` element by element (a third of a CMNIST
 *   step together); ours are the loops the wasm replacements use, on the cpu backend's arrays.
 */

type CpuKernelFunc = (args: { inputs: tf.NamedTensorInfoMap; backend: MathBackendCPU; attrs: Record<string, unknown> }) => tf.TensorInfo;

function values(backend: MathBackendCPU, info: tf.TensorInfo): Float32Array {
  const data = backend.data.get(info.dataId).values;
  if (!(data instanceof Float32Array)) throw new Error(`cpu pooling gradients take float32 tensors, got ${info.dtype}`);
  return data;
}

function avgPoolGradWith(pool: typeof pool2D | typeof pool3D): CpuKernelFunc {
  return ({ inputs, backend, attrs }) => {
    const input = inputs.input as tf.TensorInfo;
    const dx = new Float32Array(tf.util.sizeFromShape(input.shape));
    avgPoolBackwardInto(values(backend, inputs.dy as tf.TensorInfo), pool(input, attrs), dx);
    return backend.makeTensorInfo(input.shape, 'float32', dx);
  };
}

/**
 * dW[kh,kw,ci,co] = Σ_{n,oh,ow} x[n, oh·s−pt+kh, ow·s−pl+kw, ci] · dy[n,oh,ow,co], accumulated in float64 in the
 * stock kernel's order (n, oh, ow) per output element; the co loop is innermost only to walk memory in order.
 */
const conv2DBackpropFilter: CpuKernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs.x as tf.TensorInfo;
  const dy = inputs.dy as tf.TensorInfo;
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new Error(`Conv2DBackpropFilter on cpu supports NHWC only (got dataFormat '${dataFormat}')`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast',
  );
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: Cin, outChannels: Cout, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const xs = values(backend, x);
  const g = values(backend, dy);
  const dW = new Float32Array(KH * KW * Cin * Cout);
  const acc = new Float64Array(Cout);
  for (let kh = 0; kh < KH; kh++) {
    const ohMin = Math.max(0, Math.ceil((top - kh) / sh));
    const ohMax = Math.min(OH, (H + top - kh) / sh);
    for (let kw = 0; kw < KW; kw++) {
      const owMin = Math.max(0, Math.ceil((left - kw) / sw));
      const owMax = Math.min(OW, (W + left - kw) / sw);
      for (let ci = 0; ci < Cin; ci++) {
        acc.fill(0);
        for (let n = 0; n < N; n++) {
          for (let oh = ohMin; oh < ohMax; oh++) {
            const xRow = (n * H + kh + oh * sh - top) * W;
            const dyRow = (n * OH + oh) * OW;
            for (let ow = owMin; ow < owMax; ow++) {
              const xv = xs[(xRow + kw + ow * sw - left) * Cin + ci]!;
              const dyBase = (dyRow + ow) * Cout;
              for (let co = 0; co < Cout; co++) acc[co] += xv * g[dyBase + co]!;
            }
          }
        }
        const out = ((kh * KW + kw) * Cin + ci) * Cout;
        for (let co = 0; co < Cout; co++) dW[out + co] = acc[co]!;
      }
    }
  }
  return backend.makeTensorInfo([...filterShape], 'float32', dW);
};

/** dx gets dy at each window's first maximum (see `maxPool2DGradInto`), accumulated in float32. */
const maxPoolGrad: CpuKernelFunc = ({ inputs, backend, attrs }) => {
  const input = inputs.input as tf.TensorInfo;
  const dx = new Float32Array(tf.util.sizeFromShape(input.shape));
  maxPool2DGradInto(
    values(backend, input), values(backend, inputs.output as tf.TensorInfo), values(backend, inputs.dy as tf.TensorInfo),
    pool2D(input, attrs), dx,
  );
  return backend.makeTensorInfo(input.shape, 'float32', dx);
};

const slice: CpuKernelFunc = (args) => {
  const { inputs, backend, attrs } = args;
  const x = inputs.x as tf.TensorInfo;
  const plan = planSlice(x, attrs.begin as number[], attrs.size as number[]);
  const src = backend.data.get(x.dataId).values;
  if (!(src instanceof Float32Array || src instanceof Int32Array) || plan.run < MIN_SLICE_RUN) {
    return stockCpuKernels.get('Slice')!.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  const out = src instanceof Float32Array ? new Float32Array(tf.util.sizeFromShape(plan.size)) : new Int32Array(tf.util.sizeFromShape(plan.size));
  copySlice(src, x.shape, plan, out);
  return backend.makeTensorInfo(plan.size, x.dtype, out);
};

export const cpuKernelFixes = {
  AvgPoolGrad: avgPoolGradWith(pool2D),
  AvgPool3DGrad: avgPoolGradWith(pool3D),
  Conv2DBackpropFilter: conv2DBackpropFilter,
  MaxPoolGrad: maxPoolGrad,
  Slice: slice,
} as const;

/** The stock kernels replaced, kept so tests can compare against them. */
export const stockCpuKernels = new Map<string, tf.KernelConfig>();

/** Install the cpu kernels (idempotent). */
export function registerCpuKernelFixes(): void {
  for (const [name, kernelFunc] of Object.entries(cpuKernelFixes)) {
    const existing = tf.getKernel(name, 'cpu');
    if (existing?.kernelFunc === kernelFunc) continue;
    if (existing) {
      stockCpuKernels.set(name, existing);
      tf.unregisterKernel(name, 'cpu');
    }
    tf.registerKernel({ kernelName: name, backendName: 'cpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}

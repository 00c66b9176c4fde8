import * as tf from '@tensorflow/tfjs';

/**
 * TensorFlow ops that tfjs-node does not expose, called through its binding on the `tensorflow` backend (issue 14:
 * the native training step). Each function has a portable fallback with the same result on the other backends, so
 * callers in src/nn stay backend-independent.
 *
 * tfjs-node runs ops eagerly: `binding.executeOp(name, attrs, inputIds, outputCount)` is one TFE_Execute.
 */

interface NativeAttr {
  name: string;
  type: number;
  value: unknown;
}

interface OutputMetadata {
  id: number;
  shape: number[];
  dtype: number;
}

interface NativeBinding {
  TF_ATTR_TYPE: number;
  TF_ATTR_INT: number;
  TF_ATTR_FLOAT: number;
  TF_ATTR_STRING: number;
  TF_ATTR_BOOL: number;
  TF_FLOAT: number;
  TF_INT32: number;
  TF_INT64: number;
  executeOp(name: string, attrs: NativeAttr[], inputIds: number[], outputCount: number): OutputMetadata[];
}

/** The parts of tfjs-node's NodeJSKernelBackend used here. */
interface NodeBackend {
  binding: NativeBinding;
  getInputTensorIds(tensors: tf.Tensor[]): number[];
  createOutputTensor(metadata: OutputMetadata): tf.Tensor;
  tensorMap: { set(dataId: object, value: { shape: number[]; dtype: number; id: number; values: null; refCount: number }): void };
}

/** tfjs-node's backend when it is the active one (tfjs registers tfjs-node and tfjs-node-gpu as `tensorflow`). */
function activeNative(): NodeBackend | null {
  return tf.getBackend() === 'tensorflow' ? (tf.backend() as unknown as NodeBackend) : null;
}

function execute(backend: NodeBackend, op: string, attrs: NativeAttr[], inputs: tf.Tensor[], outputCount: number): OutputMetadata[] {
  return backend.binding.executeOp(op, attrs, backend.getInputTensorIds(inputs), outputCount);
}

/**
 * An int64 op output as a tfjs tensor that is only ever handed back to TensorFlow: tfjs has no int64, and
 * tfjs-node's createOutputTensor labels such outputs int32 after printing a warning on every call. Same bookkeeping
 * without the warning; disposing it frees the TensorFlow handle as for any tfjs-node tensor. Never read its values.
 */
function opaqueInt64(backend: NodeBackend, metadata: OutputMetadata): tf.Tensor {
  const dataId = {};
  backend.tensorMap.set(dataId, { shape: metadata.shape, dtype: metadata.dtype, id: metadata.id, values: null, refCount: 1 });
  return tf.engine().makeTensorFromTensorInfo({ dataId, shape: metadata.shape, dtype: 'int32' });
}

const floatType = (b: NativeBinding, name = 'T'): NativeAttr => ({ name, type: b.TF_ATTR_TYPE, value: b.TF_FLOAT });

/**
 * dy where the ReLU output y is positive, else 0: the gradient through y = relu(x). Natively one `ReluGrad` op;
 * elsewhere dy·step(y), what tfjs's fused-op gradients compute. Equal values (only the sign of zeros can differ);
 * with NaN in y, ReluGrad gives 0 where dy·step(y) gives NaN — a NaN forward already makes the loss NaN.
 */
export function reluGradient(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const backend = activeNative();
  if (!backend) return tf.mul(dy, tf.step(y));
  return backend.createOutputTensor(execute(backend, 'ReluGrad', [floatType(backend.binding)], [dy, y], 1)[0]!);
}

/** Whether tfjs is recording a gradient tape here (false inside a kernel's or custom gradient's own forward). */
function tapeOn(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}

/** y + bias over the last axis: natively `BiasAdd`, the same sums as tfjs's broadcasting `Add` in less time. */
function biasAdd(backend: NodeBackend, y: tf.Tensor, bias: tf.Tensor): tf.Tensor {
  const attrs: NativeAttr[] = [floatType(backend.binding), { name: 'data_format', type: backend.binding.TF_ATTR_STRING, value: 'NHWC' }];
  return backend.createOutputTensor(execute(backend, 'BiasAdd', attrs, [y, bias], 1)[0]!);
}

/**
 * op(a)·op(b) of 2-D tensors, op a transpose where asked. Natively TensorFlow's 2-D `MatMul` (15–50 µs here for the
 * Linear layers' products, where tfjs-node's `BatchMatMulV2` took 80–380 µs); elsewhere tf.matMul. The same
 * products, summed possibly in another order: float noise at most (test/native/native-ops.test.ts, float64).
 */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  const backend = activeNative();
  if (!backend) return tf.matMul(a, b, transposeA, transposeB);
  const bind = backend.binding;
  const attrs: NativeAttr[] = [
    floatType(bind),
    { name: 'transpose_a', type: bind.TF_ATTR_BOOL, value: transposeA },
    { name: 'transpose_b', type: bind.TF_ATTR_BOOL, value: transposeB },
  ];
  return backend.createOutputTensor(execute(backend, 'MatMul', attrs, [a, b], 1)[0]!) as tf.Tensor2D;
}

/**
 * x·W + b (+ ReLU) on 2-D tensors. Natively as MatMul, BiasAdd (and Relu): tfjs's fused matMul would reshape to 3-D
 * and back, 3 more ops each paying the per-op overhead (issue 14). Elsewhere tfjs's fused kernel, as before: the
 * same value up to rounding, and the wasm and cpu backends keep their results to the bit.
 */
export function linearForward(x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor, activation: 'linear' | 'relu'): tf.Tensor2D {
  const backend = activeNative();
  if (!backend) return tf.fused.matMul({ a: x, b: weight, bias, activation }) as tf.Tensor2D;
  const product = matMul2d(x, weight);
  const linear = biasAdd(backend, product, bias) as tf.Tensor2D;
  product.dispose();
  if (activation === 'linear') return linear;
  const y = tf.relu(linear);
  linear.dispose();
  return y;
}

/**
 * σ(x) whose gradient is natively one `SigmoidGrad` op (dy·σ(1 − σ), the same expression tfjs's gradient evaluates
 * as Sub, Mul, Mul: identical values, test/native/native-ops.test.ts); elsewhere tf.sigmoid as it is.
 */
export function sigmoid<T extends tf.Tensor>(x: T): T {
  const backend = activeNative();
  if (!backend || !tapeOn()) return tf.sigmoid(x);
  const op = tf.customGrad(((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.sigmoid(xIn);
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        backend.createOutputTensor(execute(backend, 'SigmoidGrad', [floatType(backend.binding)], [saved[0]!, dy], 1)[0]!),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as T;
}

/**
 * a ⊙ gate over the channel (last) axis of a channels-last map, gate B×C (or C) broadcast over the spatial axes (the
 * MMTM and SE gating), natively with its gradient written out: da = dy ⊙ gate, dgate = Σ_spatial dy ⊙ a — the same
 * Mul and Sum ops as tfjs's broadcasting-Mul gradient, without its two Reshapes (gate to B×1×1×C and back) per
 * call: identical values, 12 ops fewer per CMNIST step. Null when the backend is not native.
 */
export function nativeChannelGate(a: tf.Tensor, gate: tf.Tensor): tf.Tensor | null {
  if (!activeNative() || (gate.rank !== 1 && gate.rank !== 2)) return null;
  const channels = gate.shape[gate.rank - 1]!;
  const gateShape = [gate.rank === 2 ? gate.shape[0]! : 1, ...new Array<number>(a.rank - 2).fill(1), channels];
  if (!tapeOn()) return tf.mul(a, tf.reshape(gate, gateShape));
  // Σ over the axes the gate was broadcast along: spatial ones, and the batch for a gate shared by the batch.
  const axes = Array.from({ length: a.rank - 1 }, (_, i) => i).slice(gate.rank === 2 ? 1 : 0);
  const op = tf.customGrad(((aIn: tf.Tensor, g: tf.Tensor, save: tf.GradSaveFunc) => {
    const spread = tf.reshape(g, gateShape);
    save([aIn, spread]);
    return {
      value: tf.mul(aIn, spread),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy, saved[1]!), tf.sum(tf.mul(dy, saved[0]!), axes)],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(a, gate) as tf.Tensor;
}

/**
 * Batch-mean softmax cross-entropy −mean_b Σ_k labels[b,k]·log softmax(logits[b])_k (PyTorch `F.cross_entropy`,
 * mean reduction; labels are constants: no gradient flows to them). Natively one `SoftmaxCrossEntropyWithLogits`
 * op (per-sample losses and their gradient softmax − labels together) and a Mean, with that gradient scaled by
 * dy/B in the backward pass: ≈ 6 ops per loss instead of ≈ 20 for tfjs's log-softmax composition and its gradient.
 * Elsewhere the composition. The two agree to float rounding (test/native/native-ops.test.ts).
 */
export function softmaxCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor2D): tf.Scalar {
  const backend = activeNative();
  if (!backend) return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  const batch = logits.shape[0];
  const op = tf.customGrad(((x: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const [loss, backprop] = execute(backend, 'SoftmaxCrossEntropyWithLogits', [floatType(backend.binding)], [x, labels], 2).map((m) =>
      backend.createOutputTensor(m),
    );
    save([backprop!]);
    const value = tf.mean(loss!);
    loss!.dispose();
    return { value, gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) => tf.mul(saved[0]!, tf.div(dy, batch)) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(logits) as tf.Scalar;
}

function batchNormAttrs(b: NativeBinding, eps: number, training: boolean): NativeAttr[] {
  return [
    floatType(b),
    floatType(b, 'U'),
    { name: 'epsilon', type: b.TF_ATTR_FLOAT, value: eps },
    { name: 'data_format', type: b.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'is_training', type: b.TF_ATTR_BOOL, value: training },
  ];
}

/** Training mode, with the running-statistics update inside the op (exponential_avg_factor = momentum). */
function batchNormTrainingAttrs(b: NativeBinding, eps: number, momentum: number): NativeAttr[] {
  return [...batchNormAttrs(b, eps, true), { name: 'exponential_avg_factor', type: b.TF_ATTR_FLOAT, value: momentum }];
}

/**
 * Training-mode BatchNorm of a channels-last 4-D map, natively one `FusedBatchNormV3` (batch mean and biased
 * variance, normalise, scale, shift, and the running statistics' update (1 − m)·running + m·batch with the
 * unbiased variance, PyTorch's rule) and one `FusedBatchNormGradV3` in the backward pass, instead of ≈ 18 ops forward
 * and ≈ 10 backward; null when the backend is not native or the map is not 4-D (callers then compose tfjs ops).
 * The returned running statistics are the caller's to dispose.
 * TensorFlow sums differently from tfjs's moments: float noise only (test/native/native-ops.test.ts).
 */
export function nativeBatchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  runningMean: tf.Tensor,
  runningVar: tf.Tensor,
  eps: number,
  momentum: number,
): { y: tf.Tensor; runningMean: tf.Tensor; runningVar: tf.Tensor } | null {
  const backend = activeNative();
  if (!backend || x.rank !== 4 || x.size / x.shape[3]! < 2) return null;
  const b = backend.binding;
  let stats: tf.Tensor[] = [];
  const op = tf.customGrad(((xIn: tf.Tensor, g: tf.Tensor, o: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, newMean, newVar, ...reserve] = execute(backend, 'FusedBatchNormV3', batchNormTrainingAttrs(b, eps, momentum), [xIn, g, o, runningMean, runningVar], 6).map((m) =>
      backend.createOutputTensor(m),
    );
    // Kept past tfjs's scope around the forward; the caller assigns them to its variables and frees them.
    stats = [tf.keep(newMean!), tf.keep(newVar!)];
    save([xIn, g, ...reserve]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [dx, dGamma, dBeta, ...unused] = execute(backend, 'FusedBatchNormGradV3', batchNormAttrs(b, eps, true), [dy, ...saved], 5).map((m) =>
          backend.createOutputTensor(m),
        );
        tf.dispose(unused);
        return [dx!, dGamma!, dBeta!];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const y = op(x, gamma, beta) as tf.Tensor;
  return { y, runningMean: stats[0]!, runningVar: stats[1]! };
}

/**
 * Evaluation-mode BatchNorm of a channels-last 4-D map with the running statistics, natively one
 * `FusedBatchNormV3` (is_training false) instead of 7 ops; null elsewhere, and while a gradient tape records
 * (callers compose tfjs ops). Float noise
 * against the composition (TensorFlow normalises (x − mean)·scale, tfjs x·scale + shift).
 */
export function nativeBatchNormInference(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, runningMean: tf.Tensor, runningVar: tf.Tensor, eps: number): tf.Tensor | null {
  const backend = activeNative();
  // A raw op is invisible to tfjs's tape: while gradients are being recorded, compose ops that have gradients.
  if (!backend || x.rank !== 4 || tapeOn()) return null;
  const outputs = execute(backend, 'FusedBatchNormV3', batchNormAttrs(backend.binding, eps, false), [x, gamma, beta, runningMean, runningVar], 6).map((m) =>
    backend.createOutputTensor(m),
  );
  tf.dispose(outputs.slice(1));
  return outputs[0]!;
}

/**
 * [Σ t², for each t]: the per-tensor squared norms the trainer's speed tracker needs every regular step. Natively one
 * `L2Loss` op (Σ t²/2) per tensor and one doubling for all, instead of a Square and a Sum per tensor (≈ 85 fewer ops
 * per step for the CMNIST net); elsewhere Sum(Square(t)). The doubling is exact; the test compares the two.
 */
export function sumsOfSquares(tensors: readonly tf.Tensor[]): tf.Tensor1D {
  const backend = activeNative();
  return tf.tidy(() => {
    if (!backend) return tf.stack(tensors.map((t) => tf.sum(tf.square(t)))) as tf.Tensor1D;
    const halves = tensors.map((t) => backend.createOutputTensor(execute(backend, 'L2Loss', [floatType(backend.binding)], [t], 1)[0]!));
    return tf.mul(tf.stack(halves), 2) as tf.Tensor1D;
  });
}

/**
 * Tensors of fixed shapes laid end to end as one vector, and back (the optimizer's flat update). Flattening is one
 * native `DynamicStitch` (each tensor scattered to its own range of positions, given by an int32 index tensor of
 * its shape made once) instead of a Reshape per tensor and a Concat; elsewhere concat(reshape(t, [-1])), which is
 * free of copies on the JS backends. Both place every value unchanged.
 */
export class FlatLayout {
  readonly sizes: number[];
  readonly total: number;
  private indices: tf.Tensor[] | null = null;

  constructor(readonly shapes: readonly (readonly number[])[]) {
    this.sizes = shapes.map((shape) => shape.reduce((a, b) => a * b, 1));
    this.total = this.sizes.reduce((a, b) => a + b, 0);
  }

  flatten(tensors: readonly tf.Tensor[]): tf.Tensor1D {
    if (tensors.length !== this.sizes.length || tensors.some((t, i) => t.size !== this.sizes[i])) {
      throw new Error(`FlatLayout.flatten: tensors of sizes ${tensors.map((t) => t.size).join(',')}, layout ${this.sizes.join(',')}`);
    }
    const backend = activeNative();
    if (!backend) return tf.concat(tensors.map((t) => tf.reshape(t, [-1]))) as tf.Tensor1D;
    const b = backend.binding;
    const attrs: NativeAttr[] = [{ name: 'N', type: b.TF_ATTR_INT, value: tensors.length }, floatType(b)];
    return backend.createOutputTensor(execute(backend, 'DynamicStitch', attrs, [...this.nativeIndices(), ...tensors], 1)[0]!) as tf.Tensor1D;
  }

  /** The vector cut back into tensors of the layout's shapes. */
  unflatten(flat: tf.Tensor1D): tf.Tensor[] {
    return tf.split(flat, this.sizes).map((piece, i) => tf.reshape(piece, [...this.shapes[i]!]));
  }

  private nativeIndices(): tf.Tensor[] {
    if (!this.indices) {
      let offset = 0;
      this.indices = this.shapes.map((shape, i) => {
        const positions = new Int32Array(this.sizes[i]!);
        for (let k = 0; k < positions.length; k++) positions[k] = offset + k;
        offset += positions.length;
        return tf.keep(tf.tensor(positions, [...shape], 'int32'));
      });
    }
    return this.indices;
  }

  dispose(): void {
    tf.dispose(this.indices ?? []);
    this.indices = null;
  }
}

function poolAttrs(b: NativeBinding, kernelSize: number, stride: number, padding: 'VALID' | 'EXPLICIT'): NativeAttr[] {
  return [
    { name: 'ksize', type: b.TF_ATTR_INT, value: [1, kernelSize, kernelSize, 1] },
    { name: 'strides', type: b.TF_ATTR_INT, value: [1, stride, stride, 1] },
    { name: 'padding', type: b.TF_ATTR_STRING, value: padding },
    floatType(b),
  ];
}

/**
 * Max pooling with PyTorch's padding (k, stride s, symmetric padding p, floor output size) whose gradient goes to
 * the FIRST maximum of each window (the PyTorch rule the project keeps on every backend), natively; null when the
 * active backend is not native.
 *
 * Without a gradient tape: one `MaxPool` with EXPLICIT padding (TensorFlow's padded positions never win a max, as
 * the −∞ pad of the portable path). Under a tape: the −∞ pad, then `MaxPoolWithArgmax` in the forward pass giving
 * both the output and the argmax the backward pass needs (`MaxPoolGradWithArgmax`, then the pad's Slice).
 * TensorFlow's CPU `MaxPoolWithArgmax` scans a window in row-major order and replaces the running maximum only on
 * a strictly greater value, so its argmax is the first maximum; `MaxPoolGradWithArgmax` adds each dy at its
 * window's argmax, in output order, as the JS loop of pooling.ts. The pad covers only rows and columns some window
 * reads: PyTorch's 3/2/1 on 28² never reads the bottom and right pad (29², not 30²). The argmax is computed as
 * int32 and cast in the backward pass: the int32 kernel is ≈ 3× faster than the int64 one the gradient requires.
 */
export function nativeMaxPool(x: tf.Tensor4D, kernelSize: number, stride: number, padding: number): tf.Tensor4D | null {
  const backend = activeNative();
  if (!backend) return null;
  const b = backend.binding;
  const p = padding;
  if (!tapeOn()) {
    const attrs = [
      ...poolAttrs(b, kernelSize, stride, p > 0 ? 'EXPLICIT' : 'VALID'),
      { name: 'explicit_paddings', type: b.TF_ATTR_INT, value: p > 0 ? [0, 0, p, p, p, p, 0, 0] : [] },
      { name: 'data_format', type: b.TF_ATTR_STRING, value: 'NHWC' },
    ];
    return backend.createOutputTensor(execute(backend, 'MaxPool', attrs, [x], 1)[0]!) as tf.Tensor4D;
  }
  // Pad after the input's end only as far as the last window reaches.
  const [, height, width] = x.shape;
  const after = (size: number) => Math.max(0, (Math.floor((size + 2 * p - kernelSize) / stride) * stride + kernelSize - p) - size);
  const pads: [number, number][] = [
    [0, 0],
    [p, after(height)],
    [p, after(width)],
    [0, 0],
  ];
  const withArgmax = [
    ...poolAttrs(b, kernelSize, stride, 'VALID'),
    { name: 'include_batch_in_index', type: b.TF_ATTR_BOOL, value: true },
    { name: 'Targmax', type: b.TF_ATTR_TYPE, value: b.TF_INT32 },
  ];
  const op = tf.customGrad(((xIn: tf.Tensor4D, save: tf.GradSaveFunc) => {
    const padded = p > 0 ? tf.pad(xIn, pads, -Infinity) : xIn;
    const [value, argmax32] = execute(backend, 'MaxPoolWithArgmax', withArgmax, [padded], 2).map((m) => backend.createOutputTensor(m));
    save([padded, argmax32!]);
    return {
      value: value!,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [paddedSaved, argmaxSaved] = saved as [tf.Tensor4D, tf.Tensor];
        const castAttrs: NativeAttr[] = [
          { name: 'SrcT', type: b.TF_ATTR_TYPE, value: b.TF_INT32 },
          { name: 'DstT', type: b.TF_ATTR_TYPE, value: b.TF_INT64 },
          { name: 'Truncate', type: b.TF_ATTR_BOOL, value: false },
        ];
        const argmax = opaqueInt64(backend, execute(backend, 'Cast', castAttrs, [argmaxSaved], 1)[0]!);
        const gradAttrs = [
          ...poolAttrs(b, kernelSize, stride, 'VALID'),
          { name: 'include_batch_in_index', type: b.TF_ATTR_BOOL, value: true },
          { name: 'Targmax', type: b.TF_ATTR_TYPE, value: b.TF_INT64 },
        ];
        const dPadded = backend.createOutputTensor(execute(backend, 'MaxPoolGradWithArgmax', gradAttrs, [paddedSaved, dy, argmax], 1)[0]!);
        argmax.dispose();
        return p > 0 ? tf.slice(dPadded, [0, p, p, 0], xIn.shape) : dPadded;
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as tf.Tensor4D;
}

/**
 * Attributes of Conv2D and its gradients for PyTorch's symmetric zero padding p: SAME where that is the same
 * (stride 1, kernel 2p + 1: the form tfjs's 'same' used before, kept to keep those results to the bit), VALID for
 * p = 0, else EXPLICIT — the pad inside the kernel instead of a PadV2 before it and a Slice of the input gradient
 * after it (conv3 of CMNIST, 3×3 stride 2: ≈ 1.5× faster forward and input gradient).
 */
function convAttrs(b: NativeBinding, kernel: readonly number[], stride: number, p: number): NativeAttr[] {
  const same = p > 0 && stride === 1 && kernel.every((k) => 2 * p === k - 1);
  const padding = p === 0 ? 'VALID' : same ? 'SAME' : 'EXPLICIT';
  const attrs: NativeAttr[] = [
    floatType(b),
    { name: 'strides', type: b.TF_ATTR_INT, value: [1, stride, stride, 1] },
    { name: 'padding', type: b.TF_ATTR_STRING, value: padding },
    { name: 'data_format', type: b.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'use_cudnn_on_gpu', type: b.TF_ATTR_BOOL, value: true },
    { name: 'dilations', type: b.TF_ATTR_INT, value: [1, 1, 1, 1] },
  ];
  if (padding === 'EXPLICIT') attrs.push({ name: 'explicit_paddings', type: b.TF_ATTR_INT, value: [0, 0, p, p, p, p, 0, 0] });
  return attrs;
}

/** Conv2D, then BiasAdd and Relu where asked: the forward pass of nativeConv2d and the fused stage-1 ops. */
function convForward(backend: NodeBackend, attrs: NativeAttr[], x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | undefined, activation: 'linear' | 'relu'): tf.Tensor4D {
  let y = backend.createOutputTensor(execute(backend, 'Conv2D', attrs, [x, w], 1)[0]!);
  if (bias) {
    const biased = biasAdd(backend, y, bias);
    y.dispose();
    y = biased;
  }
  if (activation === 'relu') {
    const rectified = tf.relu(y);
    y.dispose();
    y = rectified;
  }
  return y as tf.Tensor4D;
}

/**
 * conv(x, w) (+ b) (+ ReLU) with PyTorch's symmetric zero padding, natively; null when the backend is not native.
 * Forward: `Conv2D` (padding as convAttrs), `BiasAdd` (TensorFlow has a fused conv + bias + ReLU op, `_FusedConv2D`,
 * but its list-valued attributes `fused_ops` and `TArgs` cannot be set through tfjs-node's binding), `Relu`.
 * Backward (under a gradient tape): dy through the ReLU by `ReluGrad`, then `Conv2DBackpropInput`,
 * `Conv2DBackpropFilter` with the same padding and the bias sum — what tfjs's fused conv computes.
 */
export function nativeConv2d(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor | undefined,
  stride: number,
  padding: number,
  activation: 'linear' | 'relu',
): tf.Tensor4D | null {
  const backend = activeNative();
  if (!backend) return null;
  const b = backend.binding;
  const attrs = convAttrs(b, filter.shape.slice(0, 2), stride, padding);
  const forward = (xIn: tf.Tensor, w: tf.Tensor, bi: tf.Tensor | undefined) => convForward(backend, attrs, xIn, w, bi, activation);
  if (!tapeOn()) return forward(x, filter, bias);
  const op = tf.customGrad(((...args: unknown[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xIn, w, bi] = args as [tf.Tensor4D, tf.Tensor4D, tf.Tensor | undefined];
    const y = forward(xIn, w, bi);
    save(activation === 'relu' ? [xIn, w, y] : [xIn, w]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xSaved, wSaved, ySaved] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D | undefined];
        const dz = ySaved ? reluGradient(dy, ySaved) : dy;
        const inputSizes = tf.tensor1d(xSaved.shape, 'int32');
        const filterSizes = tf.tensor1d(wSaved.shape, 'int32');
        const dx = backend.createOutputTensor(execute(backend, 'Conv2DBackpropInput', attrs, [inputSizes, wSaved, dz], 1)[0]!);
        const dw = backend.createOutputTensor(execute(backend, 'Conv2DBackpropFilter', attrs, [xSaved, filterSizes, dz], 1)[0]!);
        // Σ over batch and space is already the bias's shape [C]: no Reshape op.
        return bi ? [dx, dw, tf.sum(dz, [0, 1, 2])] : [dx, dw];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (bias ? op(x, filter, bias) : op(x, filter)) as tf.Tensor4D;
}

/**
 * relu(maxpool(conv(x) + b)) without a gradient tape (CMNIST's stage 1 in evaluation), natively with the bias added
 * after the pool, on a quarter of the elements; null under a tape or when the backend is not native. Exact: float
 * rounding is monotonic, so max_i fl(c_i + b) = fl(max_i c_i + b) for a per-channel b (the −∞ pad never wins).
 * Not under a tape: there a rounding tie fl(c_i + b) = fl(c_j + b) with c_i < c_j could move the first maximum.
 */
export function nativeConvPoolReluInference(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor,
  stride: number,
  padding: number,
  poolSize: number,
  poolStride: number,
  poolPadding: number,
): tf.Tensor4D | null {
  const backend = activeNative();
  if (!backend || tapeOn()) return null;
  const conv = convForward(backend, convAttrs(backend.binding, filter.shape.slice(0, 2), stride, padding), x, filter, undefined, 'linear');
  const pooled = nativeMaxPool(conv, poolSize, poolStride, poolPadding)!;
  const biased = biasAdd(backend, pooled, bias);
  const y = tf.relu(biased) as tf.Tensor4D;
  tf.dispose([conv, pooled, biased]);
  return y;
}

/**
 * Training step of a network's first two layers, BatchNorm of the data x then conv(·, w) + b (CMNIST's input norm and
 * conv1), natively; null when the backend is not native or x is not 4-D. x is data: it receives no gradient.
 *
 * Forward as the two layers: `FusedBatchNormV3` (batch statistics, running-statistics update), `Conv2D`, `BiasAdd`.
 * Backward without the conv's input gradient: BatchNorm's γ, β need only Σ dy_bn·x̂ and Σ dy_bn (dy_bn = dL/dy_bn, the
 * conv's input gradient), and since y_bn enters the conv linearly those sums are filter gradients contracted with w:
 *   dγ[c] = Σ_{k,o} w[k,c,o]·Fx̂[k,c,o],  Fx̂ = Conv2DBackpropFilter(x̂, dz)
 *   dβ[c] = Σ_{k,o} w[k,c,o]·F1[k,o],     F1 = Conv2DBackpropFilter(ones, Σ_batch dz) (the zero padding included).
 * For 1–3 input channels the conv's input gradient was the slowest op of the step (≈ 6.5 ms per branch, batch 128;
 * a filter gradient ≈ 1–2 ms). The same sums in another order: float noise (test/native/native-ops.test.ts, float64).
 * The returned running statistics are the caller's to dispose.
 */
export function nativeNormConvTraining(
  x: tf.Tensor4D,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  runningMean: tf.Tensor,
  runningVar: tf.Tensor,
  eps: number,
  momentum: number,
  filter: tf.Tensor4D,
  bias: tf.Tensor,
  stride: number,
  padding: number,
): { y: tf.Tensor4D; runningMean: tf.Tensor; runningVar: tf.Tensor } | null {
  const backend = activeNative();
  if (!backend || x.rank !== 4 || x.size / x.shape[3] < 2) return null;
  const b = backend.binding;
  const attrs = convAttrs(b, filter.shape.slice(0, 2), stride, padding);
  let stats: tf.Tensor[] = [];
  const op = tf.customGrad(((g: tf.Tensor, o: tf.Tensor, w: tf.Tensor4D, bi: tf.Tensor, save: tf.GradSaveFunc) => {
    const [normalised, newMean, newVar, batchMean, batchVar, unused] = execute(backend, 'FusedBatchNormV3', batchNormTrainingAttrs(b, eps, momentum), [x, g, o, runningMean, runningVar], 6).map((m) =>
      backend.createOutputTensor(m),
    );
    stats = [tf.keep(newMean!), tf.keep(newVar!)];
    const y = convForward(backend, attrs, normalised!, w, bi, 'linear');
    // reserve_space_1, _2 of the CPU kernel: the batch mean and the biased batch variance.
    save([x, normalised!, w, batchMean!, batchVar!]);
    unused!.dispose();
    return {
      value: y,
      gradFunc: (dz: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xSaved, normalisedSaved, wSaved, mean, variance] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D, tf.Tensor, tf.Tensor];
        const filterSizes = tf.tensor1d(wSaved.shape, 'int32');
        const filterGrad = (input: tf.Tensor, upstream: tf.Tensor) =>
          backend.createOutputTensor(execute(backend, 'Conv2DBackpropFilter', attrs, [input, filterSizes, upstream], 1)[0]!);
        const dw = filterGrad(normalisedSaved, dz);
        const xHat = tf.mul(tf.sub(xSaved, mean), tf.rsqrt(tf.add(variance, eps)));
        const [, height, width] = xSaved.shape;
        const onesSizes = tf.tensor1d([wSaved.shape[0], wSaved.shape[1], 1, wSaved.shape[3]], 'int32');
        const fOnes = backend.createOutputTensor(
          execute(backend, 'Conv2DBackpropFilter', attrs, [tf.ones([1, height, width, 1]), onesSizes, tf.sum(dz, 0, true)], 1)[0]!,
        );
        const dGamma = tf.sum(tf.mul(wSaved, filterGrad(xHat, dz)), [0, 1, 3]);
        const dBeta = tf.sum(tf.mul(wSaved, fOnes), [0, 1, 3]);
        return [dGamma, dBeta, dw, tf.sum(dz, [0, 1, 2])];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const y = op(gamma, beta, filter, bias) as tf.Tensor4D;
  return { y, runningMean: stats[0]!, runningVar: stats[1]! };
}

/**
 * tfjs-node's `Cast` runs a TensorFlow op even to the tensor's own dtype, and tfjs casts float32 tensors to float32
 * all the time (every Mean, every Multiply gradient): ≈ 50 ops per CMNIST training step that each cost the
 * per-op overhead (≈ 45 µs CPU here). The same tensor, shared as tfjs's own Identity kernel shares it, is the
 * identical result.
 */
function castSkippingIdentity(stock: tf.KernelConfig): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype !== (args.attrs as { dtype: tf.DataType }).dtype) return stock.kernelFunc(args);
    return sharedInput(args, x);
  };
}

/**
 * tfjs-node runs a TensorFlow `Reshape` (and uploads the shape as a tensor) even when the shape does not change, e.g.
 * for every 1-D piece of the optimizer's flat vector (23 of the CMNIST net's 42 variables). A reshape to the
 * tensor's own shape shares the tensor instead, as castSkippingIdentity does: the identical result.
 */
function reshapeSkippingIdentity(stock: tf.KernelConfig): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const shape = (args.attrs as { shape: number[] }).shape;
    if (shape.length !== x.shape.length || shape.some((d, i) => d !== x.shape[i])) return stock.kernelFunc(args);
    return sharedInput(args, x);
  };
}

/** A kernel's output that is its input `x`, shared as tfjs's own Identity kernel shares it (one more reference). */
function sharedInput(args: Parameters<tf.KernelFunc>[0], x: tf.TensorInfo): tf.TensorInfo {
  (args.backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

let stockCast: tf.KernelConfig | undefined;

/** Install the native kernel replacements above on the `tensorflow` backend (idempotent; after tfjs-node loaded). */
export function registerNativeKernels(): void {
  if (stockCast) return;
  const stock = tf.getKernel('Cast', 'tensorflow');
  const stockReshape = tf.getKernel('Reshape', 'tensorflow');
  if (!stock || !stockReshape) throw new Error('registerNativeKernels: tfjs-node has not registered its kernels yet');
  stockCast = stock;
  tf.unregisterKernel('Cast', 'tensorflow');
  tf.registerKernel({ kernelName: 'Cast', backendName: 'tensorflow', kernelFunc: castSkippingIdentity(stock) });
  tf.unregisterKernel('Reshape', 'tensorflow');
  tf.registerKernel({ kernelName: 'Reshape', backendName: 'tensorflow', kernelFunc: reshapeSkippingIdentity(stockReshape) });
}

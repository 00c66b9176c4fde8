import * as tf from '@tensorflow/tfjs';
import { BatchNorm, variableOf, type Init, type NamedVariable, type StateEntry } from './layers.ts';
import { maxPoolInto, poolGeometry } from '../backend/pooling.ts';
import { uniformValues } from './random.ts';

/**
 * 3-D layers for I3D (paper-spec §4.3) on channels-last B×T×H×W×C tensors, with the semantics of the
 * PyTorch I3D port: TensorFlow-style 'same' padding (total padding max((⌈n/s⌉−1)·s + k − n, 0) per axis, the
 * smaller half before) — which is exactly tfjs's `pad: 'same'` — and BatchNorm with eps 1e-3, momentum 0.01.
 */

export type Triple = [number, number, number];

/** I3D's BatchNorm constants (PyTorch convention; TF's decay 0.99 = momentum 0.01). */
export const I3D_BN_EPS = 1e-3;
export const I3D_BN_MOMENTUM = 0.01;

export interface Unit3dSpec {
  inChannels: number;
  outChannels: number;
  kernel: Triple;
  stride: Triple;
  /** Conv without bias + BN + ReLU (true), or conv with bias alone (the logits layer). */
  batchNorm: boolean;
}

/**
 * I3D's Unit3D: Conv3d (TF 'same' padding; no bias when followed by BN) → BatchNorm(eps 1e-3, momentum 0.01) →
 * ReLU; or, for the logits, Conv3d with bias and nothing after. Filter stored [kt, kh, kw, Cin, Cout].
 * Names: `<prefix>.conv3d.weight`, `<prefix>.conv3d.bias`, `<prefix>.bn.weight|bias|runningMean|runningVar`.
 * Init as PyTorch's Conv3d default: U(±1/√fan_in), fan_in = Cin·kt·kh·kw, for weight and bias.
 */
export class Unit3d {
  readonly weight: NamedVariable;
  readonly bias?: NamedVariable;
  readonly bn?: BatchNorm;

  constructor(
    init: Init,
    readonly spec: Unit3dSpec,
  ) {
    const { inChannels, outChannels, kernel } = spec;
    const fanIn = inChannels * kernel[0] * kernel[1] * kernel[2];
    const bound = 1 / Math.sqrt(fanIn);
    const weightName = `${init.prefix}.conv3d.weight`;
    const shape = [...kernel, inChannels, outChannels];
    const values = uniformValues(init.seed, weightName, fanIn * outChannels, bound);
    this.weight = { name: weightName, variable: variableOf(() => tf.tensor(values, shape, 'float32'), true) };
    if (spec.batchNorm) {
      this.bn = new BatchNorm({ seed: init.seed, prefix: `${init.prefix}.bn` }, outChannels, I3D_BN_EPS, I3D_BN_MOMENTUM);
    } else {
      const biasName = `${init.prefix}.conv3d.bias`;
      const biasValues = uniformValues(init.seed, biasName, outChannels, bound);
      this.bias = { name: biasName, variable: variableOf(() => tf.tensor(biasValues, [outChannels], 'float32'), true) };
    }
  }

  apply(x: tf.Tensor5D, training: boolean): tf.Tensor5D {
    const y = conv3dSame(x, this.weight.variable as tf.Tensor5D, this.spec.stride);
    if (this.bn) return tf.relu(this.bn.apply(y, training)) as tf.Tensor5D;
    return tf.add(y, this.bias!.variable) as tf.Tensor5D;
  }

  get parameters(): NamedVariable[] {
    return this.bn ? [this.weight, ...this.bn.parameters] : [this.weight, this.bias!];
  }

  get state(): StateEntry[] {
    return this.bn ? this.bn.state : [];
  }

  dispose(): void {
    for (const p of this.parameters) p.variable.dispose();
    this.bn?.dispose();
  }
}

/**
 * conv3d with TF 'same' padding. On the tensorflow (tfjs-node) backend a strided convolution pads explicitly and
 * runs 'valid' (the same result): libtensorflow's Conv3DBackpropFilterV2 corrupts its heap and aborts the process
 * for a 7-deep kernel with stride 2 under 'same' padding over an input of depth 5 (I3D's Conv3d_1a_7x7 on 5-frame
 * clips), found by test/nn/i3d-gradients.test.ts; depths 1–40 and 64 otherwise ran clean, but the explicit form
 * avoids that code path altogether. Other backends take 'same' directly (no padded copy of the input).
 */
export function conv3dSame(x: tf.Tensor5D, filter: tf.Tensor5D, stride: Triple): tf.Tensor5D {
  if (stride.every((s) => s === 1) || tf.getBackend() !== 'tensorflow') return tf.conv3d(x, filter, stride, 'same');
  const pads = [1, 2, 3].map((axis) => {
    const size = x.shape[axis]!;
    const kernel = filter.shape[axis - 1]!;
    const s = stride[axis - 1]!;
    const total = Math.max((sameOutputSize(size, s) - 1) * s + kernel - size, 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)] as [number, number];
  });
  return tf.conv3d(tf.pad(x, [[0, 0], ...pads, [0, 0]]), filter, stride, 'valid');
}

/**
 * I3D's max pooling with TF 'same' padding. The PyTorch port pads with zeros and pools; tfjs 'same' never lets
 * padding win a max. The two agree because every I3D max-pool input is ≥ 0 (ReLU outputs, or MMTM-gated ReLU
 * outputs: gates are sigmoids).
 *
 * The gradient is PyTorch's: each window's dy goes to the first position holding the window's maximum. Exact ties
 * are common in I3D (a stride-1 3×3×3 pool repeats one maximum over neighbouring outputs, a 1×1×1 conv keeps the
 * repeats, and the next pool compares them), and the stock kernels disagree there: libtensorflow's
 * MaxPool3DGrad adds dy to every tied position (so the gradient mass grows with the number of ties), tfjs-cpu's
 * picks the last one, our wasm kernel the first. So the gradient is computed here, on every backend, by the
 * window loop of src/backend/pooling.ts (the one the wasm kernel runs).
 */
export function maxPool3dSame(x: tf.Tensor5D, kernel: Triple, stride: Triple): tf.Tensor5D {
  const pool = tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
    save([input]);
    return {
      value: tf.maxPool3d(input as tf.Tensor5D, kernel, stride, 'same'),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => firstMaxGradient(saved[0]!, dy, kernel, stride),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return pool(x) as tf.Tensor5D;
}

function firstMaxGradient(x: tf.Tensor, dy: tf.Tensor, kernel: Triple, stride: Triple): tf.Tensor {
  const info = tf.backend_util.computePool3DInfo(x.shape as [number, number, number, number, number], kernel, stride, 1, 'same');
  const dx = new Float32Array(x.size);
  maxPoolInto(x.dataSync() as Float32Array, poolGeometry(info), dx, dy.dataSync() as Float32Array);
  return tf.tensor(dx, x.shape, 'float32');
}

/** Output size of TF 'same' along one axis. */
export function sameOutputSize(size: number, stride: number): number {
  return Math.ceil(size / stride);
}

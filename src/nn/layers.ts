import * as tf from '@tensorflow/tfjs';
import { normalValues, uniformValues } from './random.ts';
import { maxPool2DGradInto, poolGeometry } from '../backend/pooling.ts';
import { linearForward, matMul2d, nativeBatchNormInference, nativeBatchNormTraining, nativeConv2d, nativeMaxPool, nativeNormConvTraining, reluGradient } from '../backend/native-ops.ts';

/**
 * Layers with PyTorch semantics on channels-last tensors, built from raw tfjs ops and tf.Variables.
 *
 * Model state that is not trained (BatchNorm running statistics, MMTM running averages) lives in non-trainable
 * tf.Variables updated with `assign` during the forward pass. That is safe inside `tf.variableGrads` /
 * `optimizer.minimize`: variables are never tracked (so never disposed) by `tf.tidy` scopes, the tape saves
 * clones of the inputs it needs for backprop, and the update ops do not lie on a path from the trainable
 * variables to the loss, so they contribute no gradient. Reading a non-trainable variable as an op input makes it
 * a constant leaf of the tape (the "detached" value PyTorch would use).
 *
 * Like any tfjs model code, forward passes create intermediate tensors: call them inside `tf.tidy`,
 * `tf.variableGrads` or `optimizer.minimize`.
 */

export interface NamedVariable {
  /** Stable, human-readable name (checkpoint key), e.g. `branch0.conv1.weight`. */
  name: string;
  variable: tf.Variable;
}

/** A piece of non-trainable model state, read and written as a flat Float32Array (for checkpoints). */
export interface StateEntry {
  name: string;
  size: number;
  read(): Float32Array;
  write(values: Float32Array): void;
}

/** Seed and name prefix from which a layer draws its initial weights (one PRNG stream per parameter name). */
export interface Init {
  seed: number;
  prefix: string;
}

export function childInit(init: Init, name: string): Init {
  return { seed: init.seed, prefix: init.prefix ? `${init.prefix}.${name}` : name };
}

/** A trainable variable drawn uniform in ±bound from the named stream `<prefix>.<name>` (PyTorch's Linear/Conv init). */
export function uniformVariable(init: Init, name: string, shape: number[], bound: number): NamedVariable {
  const fullName = `${init.prefix}.${name}`;
  const size = shape.reduce((a, b) => a * b, 1);
  const values = uniformValues(init.seed, fullName, size, bound);
  return { name: fullName, variable: variableOf(() => tf.tensor(values, shape, 'float32'), true) };
}

function constantVariable(name: string, shape: number[], value: number, trainable: boolean): NamedVariable {
  return { name, variable: variableOf(() => tf.fill(shape, value, 'float32'), trainable) };
}

/**
 * A variable initialised from a temporary tensor, which is freed (tidy does not track variables). No tfjs variable
 * name: tfjs names are global and unique, and several nets may coexist (tests, benchmarks).
 */
export function variableOf(initial: () => tf.Tensor, trainable: boolean): tf.Variable {
  return tf.tidy(() => tf.variable(initial(), trainable));
}

/** A state entry backed by a non-trainable variable. */
export function variableState(name: string, variable: tf.Variable): StateEntry {
  return {
    name,
    size: variable.size,
    read: () => variable.dataSync() as Float32Array,
    write: (values) => tf.tidy(() => variable.assign(tf.tensor(values, variable.shape, 'float32'))),
  };
}

/**
 * Counters (call and sample counts) are JS numbers; in a Float32Array state they are stored as two float32 values
 * [high, low] in base 2^24 so that counts beyond 2^24 (≈ 16.8 M samples, reachable in a long CMNIST run) stay exact.
 */
export function counterState(name: string, get: () => number, set: (value: number) => void): StateEntry {
  const base = 16777216;
  return {
    name,
    size: 2,
    read: () => {
      const value = get();
      return Float32Array.of(Math.floor(value / base), value % base);
    },
    write: (values) => set(values[0]! * base + values[1]!),
  };
}

export function readState(entries: readonly StateEntry[]): Record<string, Float32Array> {
  const state: Record<string, Float32Array> = {};
  for (const entry of entries) state[entry.name] = Float32Array.from(entry.read());
  return state;
}

/** Writes a state record; every entry must be present with the right size, and no unknown key is accepted. */
export function writeState(
  entries: readonly StateEntry[],
  state: Record<string, Float32Array>,
  owner: string,
): void {
  const known = new Set(entries.map((e) => e.name));
  const unknown = Object.keys(state).filter((k) => !known.has(k));
  const missing = entries.filter((e) => !(e.name in state)).map((e) => e.name);
  if (unknown.length > 0 || missing.length > 0) {
    throw new Error(
      `${owner}.setState: state does not match this network` +
        (missing.length ? `; missing: ${missing.join(', ')}` : '') +
        (unknown.length ? `; unknown: ${unknown.join(', ')}` : '') +
        ' (was the checkpoint written by a network with other options, e.g. width or MMTM positions?)',
    );
  }
  for (const entry of entries) {
    const values = state[entry.name]!;
    if (values.length !== entry.size) {
      throw new Error(`${owner}.setState: '${entry.name}' has ${values.length} values, expected ${entry.size}`);
    }
  }
  for (const entry of entries) entry.write(state[entry.name]!);
}

/** Axes between the batch axis and the channel axis (spatial, and temporal for 5-D inputs). */
export function spatialAxes(rank: number): number[] {
  const axes: number[] = [];
  for (let axis = 1; axis < rank - 1; axis++) axes.push(axis);
  return axes;
}

/** Reshapes a B×C (or C) gate so that it broadcasts over the spatial axes of a rank-`rank` channels-last map. */
export function broadcastOverSpatial(gate: tf.Tensor, rank: number): tf.Tensor {
  const channels = gate.shape[gate.rank - 1]!;
  const batch = gate.rank === 2 ? gate.shape[0]! : 1;
  return tf.reshape(gate, [batch, ...new Array<number>(rank - 2).fill(1), channels]);
}

/** Fully connected layer y = x·W + b, W stored in×out. PyTorch default init: U(±1/√in) for W and b. */
export class Linear {
  readonly weight: NamedVariable;
  readonly bias: NamedVariable;

  constructor(
    init: Init,
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = uniformVariable(init, 'weight', [inFeatures, outFeatures], bound);
    this.bias = uniformVariable(init, 'bias', [outFeatures], bound);
  }

  apply(x: tf.Tensor2D, activation: 'linear' | 'relu' = 'linear'): tf.Tensor2D {
    return matMulBias(x, this.weight.variable as tf.Tensor2D, this.bias.variable, activation);
  }

  get parameters(): NamedVariable[] {
    return [this.weight, this.bias];
  }
}

/**
 * x·W + b, optionally through a ReLU, with tfjs's fused-matMul gradient written out on the 2-D tensors: tfjs's fused
 * matMul reshapes x, W and dy to 3-D and back (≈ 3 ops forward, 8 backward per layer, each paying the native
 * backend's per-op overhead, issue 14); here dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ_batch dy (3 ops), and the step through
 * the ReLU is `reluGradient` (see convBiasRelu). The same values (test/native/native-ops.test.ts).
 */
function matMulBias(x: tf.Tensor2D, weight: tf.Tensor2D, bias: tf.Tensor, activation: 'linear' | 'relu'): tf.Tensor2D {
  const op = tf.customGrad(((xIn: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = linearForward(xIn, w, b, activation);
    save(activation === 'relu' ? [xIn, w, y] : [xIn, w]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [xSaved, wSaved, ySaved] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D | undefined];
        const dz = ySaved ? (reluGradient(dy, ySaved) as tf.Tensor2D) : dy;
        return [matMul2d(dz, wSaved, false, true), matMul2d(xSaved, dz, true, false), tf.sum(dz, 0)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, weight, bias) as tf.Tensor2D;
}

/**
 * 2-D convolution with bias, symmetric zero padding `padding` on each side (PyTorch semantics; not tfjs 'same',
 * which pads bottom/right first for even totals). Kernel stored kh×kw×Cin×Cout. PyTorch default init
 * (kaiming_uniform with a = √5): U(±1/√fan_in) for weight and bias, fan_in = Cin·kh·kw.
 */
export class Conv2d {
  readonly weight: NamedVariable;
  readonly bias: NamedVariable;

  constructor(
    init: Init,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly stride: number,
    readonly padding: number,
  ) {
    const bound = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
    this.weight = uniformVariable(init, 'weight', [kernelSize, kernelSize, inChannels, outChannels], bound);
    this.bias = uniformVariable(init, 'bias', [outChannels], bound);
  }

  apply(x: tf.Tensor4D, activation: 'linear' | 'relu' = 'linear'): tf.Tensor4D {
    return conv2dSymmetric(x, this.weight.variable as tf.Tensor4D, this.bias.variable, this.stride, this.padding, activation);
  }

  get parameters(): NamedVariable[] {
    return [this.weight, this.bias];
  }
}

/**
 * A convolution with symmetric zero padding `padding` (PyTorch semantics), in padding forms every backend accepts
 * (tfjs-node rejects numeric padding): 'same' where it equals symmetric padding p (stride 1, kernel 2p+1),
 * otherwise explicit zero padding followed by 'valid'. Natively `nativeConv2d` (the padding inside the kernel, the
 * bias as BiasAdd).
 */
export function conv2dSymmetric(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor | undefined,
  stride: number,
  padding: number,
  activation: 'linear' | 'relu' = 'linear',
): tf.Tensor4D {
  const native = nativeConv2d(x, filter, bias, stride, padding, activation);
  if (native) return native;
  const p = padding;
  const kernelSize = filter.shape[0];
  const same = p > 0 && stride === 1 && 2 * p === kernelSize - 1;
  const input =
    p > 0 && !same
      ? tf.pad(x, [
          [0, 0],
          [p, p],
          [p, p],
          [0, 0],
        ])
      : x;
  const pad = same ? 'same' : 'valid';
  if (activation === 'relu' && bias) return convBiasRelu(input, filter, bias, stride, pad);
  return tf.fused.conv2d({ x: input, filter, bias, strides: stride, pad, activation });
}

/**
 * relu(conv(x, w) + b) with the gradient tfjs's fused conv computes (dy through the ReLU, then the input and
 * filter gradients and the bias sum), except that the step through the ReLU is `reluGradient`: one native op
 * instead of tfjs-node's seven (its `Step` is IsNan, Greater, Fill, Select, …) and a Mul.
 */
function convBiasRelu(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor, stride: number, pad: 'same' | 'valid'): tf.Tensor4D {
  const op = tf.customGrad(((xIn: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.fused.conv2d({ x: xIn, filter: w, bias: b, strides: stride, pad, activation: 'relu' });
    save([xIn, w, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xSaved, wSaved, ySaved] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
        const dyRelu = reluGradient(dy, ySaved);
        const attrs = { strides: stride, pad, dataFormat: 'NHWC' };
        const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy: dyRelu, filter: wSaved }, { ...attrs, inputShape: xSaved.shape });
        const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x: xSaved, dy: dyRelu }, { ...attrs, filterShape: wSaved.shape });
        return [dx as tf.Tensor, dw as tf.Tensor, tf.reshape(tf.sum(dyRelu, [0, 1, 2]), b.shape)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, filter, bias) as tf.Tensor4D;
}

/**
 * 2-D convolution without bias (the convolutions of torchvision's ResNets), symmetric zero padding, kernel stored
 * kh×kw×Cin×Cout, initialised as torchvision does: Kaiming-normal with fan_out and the ReLU gain,
 * N(0, 2/fan_out) with fan_out = Cout·kh·kw.
 */
export class BiaslessConv2d {
  readonly weight: NamedVariable;

  constructor(
    init: Init,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly stride: number,
    readonly padding: number,
  ) {
    const fullName = `${init.prefix}.weight`;
    const shape = [kernelSize, kernelSize, inChannels, outChannels];
    const std = Math.sqrt(2 / (outChannels * kernelSize * kernelSize));
    const values = normalValues(init.seed, fullName, inChannels * outChannels * kernelSize * kernelSize, std);
    this.weight = { name: fullName, variable: variableOf(() => tf.tensor(values, shape, 'float32'), true) };
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return conv2dSymmetric(x, this.weight.variable as tf.Tensor4D, undefined, this.stride, this.padding);
  }

  get parameters(): NamedVariable[] {
    return [this.weight];
  }
}

/**
 * BatchNorm over the channel (last) axis with PyTorch semantics: eps 1e-5, momentum 0.1; in training, normalise
 * with the batch mean and biased variance and update running_mean ← 0.9·running_mean + 0.1·mean,
 * running_var ← 0.9·running_var + 0.1·unbiased variance; in evaluation use the running statistics.
 * γ = 1, β = 0, running mean 0, running variance 1 at construction.
 */
export class BatchNorm {
  readonly gamma: NamedVariable;
  readonly beta: NamedVariable;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  private readonly statePrefix: string;

  /** PyTorch's defaults eps 1e-5, momentum 0.1; I3D uses 1e-3 and 0.01 (layers3d.ts). Any rank, channels last. */
  constructor(
    init: Init,
    readonly channels: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    this.gamma = constantVariable(`${init.prefix}.weight`, [channels], 1, true);
    this.beta = constantVariable(`${init.prefix}.bias`, [channels], 0, true);
    this.runningMean = variableOf(() => tf.zeros([channels]), false);
    this.runningVar = variableOf(() => tf.ones([channels]), false);
    this.statePrefix = init.prefix;
  }

  apply(x: tf.Tensor, training: boolean): tf.Tensor {
    const gamma = this.gamma.variable;
    const beta = this.beta.variable;
    if (!training) {
      const fused = nativeBatchNormInference(x, gamma, beta, this.runningMean, this.runningVar, this.eps);
      if (fused) return fused;
      const scale = tf.mul(gamma, tf.rsqrt(tf.add(this.runningVar, this.eps)));
      const shift = tf.sub(beta, tf.mul(this.runningMean, scale));
      return tf.add(tf.mul(x, scale), shift);
    }
    const fused = nativeBatchNormTraining(x, gamma, beta, this.runningMean, this.runningVar, this.eps, this.momentum);
    if (fused) {
      this.adoptRunningStatistics(fused);
      return fused.y;
    }
    const { mean, variance } = tf.moments(x, spatialAxesWithBatch(x.rank));
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, this.eps)));
    const y = tf.add(tf.mul(tf.sub(x, mean), scale), beta);
    const count = x.size / this.channels;
    const unbiased = count > 1 ? tf.mul(variance, count / (count - 1)) : variance;
    const m = this.momentum;
    this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - m), tf.mul(mean, m)));
    this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - m), tf.mul(unbiased, m)));
    return y;
  }

  /** Running statistics a native training op computed (its exponential_avg_factor update): kept, and freed. */
  adoptRunningStatistics(updated: { runningMean: tf.Tensor; runningVar: tf.Tensor }): void {
    this.runningMean.assign(updated.runningMean);
    this.runningVar.assign(updated.runningVar);
    tf.dispose([updated.runningMean, updated.runningVar]);
  }

  get parameters(): NamedVariable[] {
    return [this.gamma, this.beta];
  }

  get state(): StateEntry[] {
    return [
      variableState(`${this.statePrefix}.runningMean`, this.runningMean),
      variableState(`${this.statePrefix}.runningVar`, this.runningVar),
    ];
  }

  dispose(): void {
    this.runningMean.dispose();
    this.runningVar.dispose();
  }
}

/**
 * conv(norm(x)) for data x (no gradient to x): in training natively one op whose backward pass skips the conv's
 * input gradient (`nativeNormConvTraining`: the BatchNorm's γ, β gradients from two filter gradients instead);
 * otherwise the two layers.
 */
export function normThenConv(norm: BatchNorm, conv: Conv2d, x: tf.Tensor4D, training: boolean): tf.Tensor4D {
  const fused = training
    ? nativeNormConvTraining(
        x,
        norm.gamma.variable,
        norm.beta.variable,
        norm.runningMean,
        norm.runningVar,
        norm.eps,
        norm.momentum,
        conv.weight.variable as tf.Tensor4D,
        conv.bias.variable,
        conv.stride,
        conv.padding,
      )
    : null;
  if (!fused) return conv.apply(norm.apply(x, training) as tf.Tensor4D);
  norm.adoptRunningStatistics(fused);
  return fused.y;
}

function spatialAxesWithBatch(rank: number): number[] {
  return [0, ...spatialAxes(rank)];
}

/**
 * Max pooling with PyTorch padding semantics: the input is padded explicitly with −∞ (padding never wins a max)
 * and pooled with 'valid'; output size floor((H + 2p − k)/s) + 1 as in PyTorch with ceil_mode = False.
 */
export function maxPool2d(x: tf.Tensor4D, kernelSize: number, stride: number, padding: number): tf.Tensor4D {
  const native = nativeMaxPool(x, kernelSize, stride, padding);
  if (native) return native;
  const padded =
    padding > 0
      ? tf.pad(
          x,
          [
            [0, 0],
            [padding, padding],
            [padding, padding],
            [0, 0],
          ],
          -Infinity,
        )
      : x;
  return firstMaxPool(padded, kernelSize, stride);
}

/**
 * 'valid' max pooling whose gradient goes to the first maximum of each window (row-major), as in PyTorch. Ties are
 * common here (ReLU outputs over MNIST's constant background are equal), and the backends disagree on them:
 * libtensorflow's MaxPoolGrad gives the gradient to every tied position (multiplying it), tfjs-cpu to one of them.
 * The gradient is one JS loop here (the other backends); natively `nativeMaxPool` uses TensorFlow's argmax max
 * pool, which keeps the first maximum too: training stays identical across backends up to float noise.
 */
function firstMaxPool(x: tf.Tensor4D, kernelSize: number, stride: number): tf.Tensor4D {
  const pool = tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
    const value = tf.maxPool(input as tf.Tensor4D, kernelSize, stride, 'valid');
    save([input, value]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [inputSaved, valueSaved] = saved as [tf.Tensor4D, tf.Tensor4D];
        const info = tf.backend_util.computePool2DInfo(inputSaved.shape, kernelSize, stride, 1, 'valid');
        const dx = new Float32Array(inputSaved.size);
        maxPool2DGradInto(
          inputSaved.dataSync() as Float32Array,
          valueSaved.dataSync() as Float32Array,
          dy.dataSync() as Float32Array,
          poolGeometry(info),
          dx,
        );
        return tf.tensor(dx, inputSaved.shape, 'float32');
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return pool(x) as tf.Tensor4D;
}

/** relu(x) whose gradient is `reluGradient` (one native op instead of tfjs-node's seven-op `Step` and a Mul). */
export function relu<T extends tf.Tensor>(x: T): T {
  const op = tf.customGrad(((xIn: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.relu(xIn);
    save([y]);
    return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => reluGradient(dy, saved[0]!) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x) as T;
}

/** Global average pooling: mean over the spatial (and temporal) axes → B×C. */
export function globalAvgPool(x: tf.Tensor): tf.Tensor2D {
  return tf.mean(x, spatialAxes(x.rank)) as tf.Tensor2D;
}

export function disposeParameters(parameters: readonly NamedVariable[]): void {
  for (const p of parameters) p.variable.dispose();
}

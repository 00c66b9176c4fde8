import * as tf from '@tensorflow/tfjs';
import type { BatchOptions, Dataset, HostBatch, SplitName } from '../../src/data/types.ts';
import type { ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups } from '../../src/nn/types.ts';

/** Deterministic uint32 PRNG for fixtures (not the one under test). */
function lcg(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/**
 * A tiny synthetic two-modality dataset: K classes; x0 (D0 values) carries a "color" that is the class in the
 * training split and random in val/test; x1 (D1 values) carries a noisy class signal everywhere — a miniature
 * Colored-and-gray MNIST.
 */
export class SyntheticDataset implements Dataset {
  readonly name = 'synthetic';
  readonly numClasses: number;
  readonly classNames: string[];
  readonly modalities: { name: string; shape: number[] }[];
  private readonly splits: Record<SplitName, { x0: Float32Array; x1: Float32Array; y: Int32Array }>;

  constructor(options: { sizes?: Record<SplitName, number>; numClasses?: number; d0?: number; d1?: number; seed?: number } = {}) {
    const K = (this.numClasses = options.numClasses ?? 3);
    const d0 = options.d0 ?? 4;
    const d1 = options.d1 ?? 6;
    this.classNames = Array.from({ length: K }, (_, i) => `c${i}`);
    this.modalities = [
      { name: 'color', shape: [d0] },
      { name: 'shape', shape: [d1] },
    ];
    const rand = lcg(options.seed ?? 1);
    const sizes = options.sizes ?? { train: 96, val: 48, test: 48 };
    const make = (n: number, colorFollowsLabel: boolean) => {
      const x0 = new Float32Array(n * d0);
      const x1 = new Float32Array(n * d1);
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const c = Math.floor(rand() * K);
        y[i] = c;
        const color = colorFollowsLabel ? c : Math.floor(rand() * K);
        for (let j = 0; j < d0; j++) x0[i * d0 + j] = (j % K === color ? 1 : 0) + 0.05 * (rand() - 0.5);
        for (let j = 0; j < d1; j++) x1[i * d1 + j] = (j % K === c ? 0.6 : 0) + 0.8 * (rand() - 0.5);
      }
      return { x0, x1, y };
    };
    this.splits = { train: make(sizes.train, true), val: make(sizes.val, false), test: make(sizes.test, false) };
  }

  size(split: SplitName): number {
    return this.splits[split].y.length;
  }

  labels(split: SplitName): Int32Array {
    return this.splits[split].y.slice();
  }

  *batches(split: SplitName, options: BatchOptions): Iterable<HostBatch> {
    const data = this.splits[split];
    const n = data.y.length;
    const order = Array.from({ length: n }, (_, i) => i);
    if (options.shuffle) {
      const rand = lcg(options.seed * 7919 + options.epoch);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
    }
    const [d0, d1] = [this.modalities[0]!.shape[0]!, this.modalities[1]!.shape[0]!];
    for (let start = (options.startBatch ?? 0) * options.batchSize; start < n; start += options.batchSize) {
      const idx = order.slice(start, start + options.batchSize);
      const size = idx.length;
      const x0 = new Float32Array(size * d0);
      const x1 = new Float32Array(size * d1);
      const y = new Int32Array(size);
      idx.forEach((k, b) => {
        x0.set(data.x0.subarray(k * d0, (k + 1) * d0), b * d0);
        x1.set(data.x1.subarray(k * d1, (k + 1) * d1), b * d1);
        y[b] = data.y[k];
      });
      yield { inputs: [x0, x1], y, indices: Int32Array.from(idx), size };
    }
  }
}

/**
 * A tiny two-branch MLP with one MMTM-like fusion (squeeze on [h0, h1], excitations per branch, sigmoid gates),
 * the four forward modes, role-based parameter groups and a running gate average as state.
 */
export class TinyNet implements MultimodalNet {
  readonly modalityCount = 2;
  readonly trainableVariables: tf.Variable[];
  readonly groups: ParameterGroups;
  readonly fusionCount = 1;
  private readonly v: Record<string, tf.Variable>;
  private running0: Float32Array;
  private running1: Float32Array;
  private calls = 0;
  private means: { h0: Float32Array; h1: Float32Array } | null = null;
  private static counter = 0;

  constructor(options: { d0: number; d1: number; hidden?: number; numClasses: number; seed: number }) {
    const H = options.hidden ?? 5;
    const K = options.numClasses;
    const uid = TinyNet.counter++;
    const rand = lcg(options.seed + 17);
    const mk = (name: string, shape: number[], fanIn: number) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const bound = 1 / Math.sqrt(fanIn);
      const values = Float32Array.from({ length: size }, () => (2 * rand() - 1) * bound);
      return tf.variable(tf.tensor(values, shape), true, `tiny${uid}.${name}`);
    };
    this.v = {
      w0: mk('w0', [options.d0, H], options.d0),
      b0: mk('b0', [H], options.d0),
      w1: mk('w1', [options.d1, H], options.d1),
      b1: mk('b1', [H], options.d1),
      sq: mk('sq', [2 * H, H], 2 * H),
      sqb: mk('sqb', [H], 2 * H),
      e0: mk('e0', [H, H], H),
      e0b: mk('e0b', [H], H),
      e1: mk('e1', [H, H], H),
      e1b: mk('e1b', [H], H),
      h0: mk('h0', [H, K], H),
      h0b: mk('h0b', [K], H),
      h1: mk('h1', [H, K], H),
      h1b: mk('h1b', [K], H),
    };
    const v = this.v;
    this.trainableVariables = Object.values(v);
    this.groups = {
      theta: [
        [v.w0, v.b0, v.h0, v.h0b],
        [v.w1, v.b1, v.h1, v.h1b],
      ],
      thetaPrime: [
        [v.sq, v.sqb, v.e0, v.e0b],
        [v.sq, v.sqb, v.e1, v.e1b],
      ],
    };
    this.running0 = new Float32Array(H);
    this.running1 = new Float32Array(H);
  }

  forward(inputs: readonly tf.Tensor[], options: ForwardOptions): ForwardOutput {
    const [x0, x1] = inputs as [tf.Tensor, tf.Tensor];
    const v = this.v;
    const a0 = tf.relu(tf.matMul(x0 as tf.Tensor2D, v.w0).add(v.b0)) as tf.Tensor2D;
    const a1 = tf.relu(tf.matMul(x1 as tf.Tensor2D, v.w1).add(v.b1)) as tf.Tensor2D;
    const excite = (h0: tf.Tensor2D, h1: tf.Tensor2D) => {
      const z = tf.relu(tf.matMul(tf.concat([h0, h1], 1), v.sq).add(v.sqb)) as tf.Tensor2D;
      return [tf.sigmoid(tf.matMul(z, v.e0).add(v.e0b)), tf.sigmoid(tf.matMul(z, v.e1).add(v.e1b))];
    };
    let [g0, g1] = excite(a0, a1);
    // Running mean of batch-mean gates, on every call (like the code profile).
    const m0 = g0.mean(0).dataSync();
    const m1 = g1.mean(0).dataSync();
    this.calls += 1;
    for (let i = 0; i < m0.length; i++) {
      this.running0[i] += (m0[i] - this.running0[i]) / this.calls;
      this.running1[i] += (m1[i] - this.running1[i]) / this.calls;
    }
    if (options.mode === 'rebalance0') g0 = tf.tensor1d(this.running0);
    if (options.mode === 'rebalance1') g1 = tf.tensor1d(this.running1);
    if (options.mode === 'unimodalMeans') {
      if (!this.means) throw new Error('no means');
      const n = a0.shape[0];
      const hb0 = tf.tile(tf.tensor2d(this.means.h0, [1, this.means.h0.length]), [n, 1]) as tf.Tensor2D;
      const hb1 = tf.tile(tf.tensor2d(this.means.h1, [1, this.means.h1.length]), [n, 1]) as tf.Tensor2D;
      g0 = excite(a0, hb1)[0];
      g1 = excite(hb0, a1)[1];
    }
    const f0 = a0.mul(g0) as tf.Tensor2D;
    const f1 = a1.mul(g1) as tf.Tensor2D;
    const logits0 = tf.matMul(f0, v.h0).add(v.h0b) as tf.Tensor2D;
    const logits1 = tf.matMul(f1, v.h1).add(v.h1b) as tf.Tensor2D;
    const out: ForwardOutput = { branchLogits: [logits0, logits1], logits: logits0.add(logits1).div(2) as tf.Tensor2D, branchFeatures: [f0, f1] };
    if (options.collectSqueezed) out.squeezed = [[a0, a1]];
    return out;
  }

  setSqueezeMeans(means: Float32Array[][]): void {
    this.means = { h0: means[0]![0]!, h1: means[0]![1]! };
  }

  getState(): Record<string, Float32Array> {
    return { running0: this.running0.slice(), running1: this.running1.slice(), calls: Float32Array.of(this.calls) };
  }

  setState(state: Record<string, Float32Array>): void {
    this.running0 = state.running0.slice();
    this.running1 = state.running1.slice();
    this.calls = state.calls[0];
  }

  dispose(): void {
    this.trainableVariables.forEach((t) => t.dispose());
  }
}

import * as tf from '@tensorflow/tfjs';
import type { FidelitySwitches } from '../spec/fidelity.ts';
import {
  broadcastOverSpatial,
  childInit,
  counterState,
  disposeParameters,
  Linear,
  spatialAxes,
  variableOf,
  variableState,
  type Init,
  type NamedVariable,
  type StateEntry,
} from './layers.ts';
import type { ForwardMode } from './types.ts';

/** The fidelity switches that change what an MMTM computes (paper-spec §13 D1–D3). */
export type MmtmFidelity = Pick<FidelitySwitches, 'gateScale' | 'rebalanceAverage' | 'replicateSkeletonAvgBug'>;

/** What one forward pass asks of every fusion module. */
export interface FusionContext {
  mode: ForwardMode;
  /** Feeds the `paperRegularPreSigmoid` sums (only allowed in mode `regular`). */
  regularTrainingStep: boolean;
  collectSqueezed: boolean;
}

export interface FusionOutput {
  out0: tf.Tensor;
  out1: tf.Tensor;
  /** The squeezed inputs h0 (B×C0), h1 (B×C1), with `collectSqueezed`. */
  squeezed?: { h0: tf.Tensor2D; h1: tf.Tensor2D };
}

/** Bottleneck width of the MMTM squeeze layer: Z = floor(2·(C0 + C1)/ratio) with ratio 4 (paper-spec §2.1). */
export function mmtmBottleneck(channels0: number, channels1: number): number {
  return Math.floor((2 * (channels0 + channels1)) / 4);
}

/**
 * Multi-modal transfer module (paper-spec §2.1) between a branch-0 map A0 (B×…×C0) and a branch-1 map A1
 * (B×…×C1), channels last; spatial shapes may differ.
 *
 * Regular forward: h_k = spatial mean of A_k; z = ReLU(fc_squeeze([h0, h1])); w0 = fc_visual(z),
 * w1 = fc_skeleton(z); Ã_k = gateScale·σ(w_k) ⊙ A_k.
 *
 * Running statistics for re-balancing (paper-spec §8.3), both always tracked; `rebalanceAverage` picks the one a
 * re-balancing step uses:
 * - `codeRunningSigmoid`: on every forward call (training and evaluation, any mode, before any replacement) the
 *   running arithmetic mean over calls of the batch-mean post-sigmoid gates σ(w_k) of the regular excitation;
 *   with `replicateSkeletonAvgBug` the modality-1 average is fed the branch-0 gates (so it equals the modality-0
 *   one). Re-balancing gate = gateScale·average.
 * - `paperRegularPreSigmoid`: the mean of the pre-sigmoid w_k over all samples of regular training steps
 *   (cumulative since construction, never reset — paper-spec A13). Re-balancing gate = gateScale·σ(mean w_k).
 *
 * The statistics are non-trainable tf.Variables updated with `assign` inside the forward pass; see layers.ts for
 * why that is safe under `tf.variableGrads`. In a re-balancing mode the constant gate is read from those
 * variables, so it is a detached constant of the tape: the branch-k excitation layer receives no gradient —
 * `tf.variableGrads` returns no entry at all for its weight and bias (not a zero tensor). tfjs optimizers with
 * slots (momentum, Adam) index their slots by position in the gradient map, so a trainer must hand them a complete
 * map in a fixed order (e.g. zeros for the missing entries) or the slots of later variables shift.
 */
export class Mmtm {
  readonly bottleneck: number;
  /** fc_squeeze: (C0+C1) → Z, shared by both excitations (in both θ0′ and θ1′). */
  readonly squeeze: Linear;
  /** fc_visual: Z → C0, the modality-0 excitation (θ0′). */
  readonly excite0: Linear;
  /** fc_skeleton: Z → C1, the modality-1 excitation (θ1′). */
  readonly excite1: Linear;

  private readonly codeAverage0: tf.Variable;
  private readonly codeAverage1: tf.Variable;
  private codeCalls = 0;
  private readonly paperMeanW0: tf.Variable;
  private readonly paperMeanW1: tf.Variable;
  private paperSamples = 0;
  private squeezeMean0: tf.Tensor2D | null = null;
  private squeezeMean1: tf.Tensor2D | null = null;
  private readonly name: string;

  constructor(
    init: Init,
    readonly channels0: number,
    readonly channels1: number,
    readonly fidelity: MmtmFidelity,
  ) {
    if (fidelity.replicateSkeletonAvgBug && channels0 !== channels1) {
      throw new Error(
        `${init.prefix}: replicateSkeletonAvgBug feeds the modality-1 average with branch-0 gates, which needs ` +
          `C0 = C1 (got ${channels0}, ${channels1}); turn the switch off for modules with different widths`,
      );
    }
    this.name = init.prefix;
    this.bottleneck = mmtmBottleneck(channels0, channels1);
    this.squeeze = new Linear(childInit(init, 'squeeze'), channels0 + channels1, this.bottleneck);
    this.excite0 = new Linear(childInit(init, 'excite0'), this.bottleneck, channels0);
    this.excite1 = new Linear(childInit(init, 'excite1'), this.bottleneck, channels1);
    this.codeAverage0 = variableOf(() => tf.zeros([channels0]), false);
    this.codeAverage1 = variableOf(() => tf.zeros([channels1]), false);
    this.paperMeanW0 = variableOf(() => tf.zeros([channels0]), false);
    this.paperMeanW1 = variableOf(() => tf.zeros([channels1]), false);
  }

  forward(a0: tf.Tensor, a1: tf.Tensor, ctx: FusionContext): FusionOutput {
    if (ctx.regularTrainingStep && ctx.mode !== 'regular') {
      throw new Error(`${this.name}: regularTrainingStep was set in forward mode '${ctx.mode}'; it needs 'regular'`);
    }
    const h0 = tf.mean(a0, spatialAxes(a0.rank)) as tf.Tensor2D;
    const h1 = tf.mean(a1, spatialAxes(a1.rank)) as tf.Tensor2D;
    const z = this.squeeze.apply(tf.concat([h0, h1], 1), 'relu');
    const w0 = this.excite0.apply(z);
    const w1 = this.excite1.apply(z);
    const sigmoid0 = tf.sigmoid(w0);
    const sigmoid1 = tf.sigmoid(w1);
    this.updateStatistics(sigmoid0, sigmoid1, w0, w1, ctx.regularTrainingStep);

    let gate0: tf.Tensor;
    let gate1: tf.Tensor;
    switch (ctx.mode) {
      case 'regular':
        gate0 = this.scaled(sigmoid0);
        gate1 = this.scaled(sigmoid1);
        break;
      case 'rebalance0':
        gate0 = this.rebalanceGateTensor(0);
        gate1 = this.scaled(sigmoid1);
        break;
      case 'rebalance1':
        gate0 = this.scaled(sigmoid0);
        gate1 = this.rebalanceGateTensor(1);
        break;
      case 'unimodalMeans': {
        if (this.squeezeMean0 === null || this.squeezeMean1 === null) {
          throw new Error(`${this.name}: forward mode 'unimodalMeans' needs setSqueezeMeans() first`);
        }
        const batch = h0.shape[0];
        const mean0 = tf.tile(this.squeezeMean0, [batch, 1]);
        const mean1 = tf.tile(this.squeezeMean1, [batch, 1]);
        // Branch 0 sees [h0(x), h̄1], branch 1 sees [h̄0, h1(x)] (paper-spec §6.3).
        const z0 = this.squeeze.apply(tf.concat([h0, mean1], 1), 'relu');
        const z1 = this.squeeze.apply(tf.concat([mean0, h1], 1), 'relu');
        gate0 = this.scaled(tf.sigmoid(this.excite0.apply(z0)));
        gate1 = this.scaled(tf.sigmoid(this.excite1.apply(z1)));
        break;
      }
    }
    const out0 = tf.mul(a0, broadcastOverSpatial(gate0, a0.rank));
    const out1 = tf.mul(a1, broadcastOverSpatial(gate1, a1.rank));
    return ctx.collectSqueezed ? { out0, out1, squeezed: { h0, h1 } } : { out0, out1 };
  }

  private scaled(gate: tf.Tensor): tf.Tensor {
    return this.fidelity.gateScale === 1 ? gate : tf.mul(gate, this.fidelity.gateScale);
  }

  private updateStatistics(
    sigmoid0: tf.Tensor2D,
    sigmoid1: tf.Tensor2D,
    w0: tf.Tensor2D,
    w1: tf.Tensor2D,
    regularTrainingStep: boolean,
  ): void {
    // Running mean over calls of batch means: r ← r + (m − r)/n, every batch weighted equally.
    this.codeCalls += 1;
    const batchMean0 = tf.mean(sigmoid0, 0);
    const batchMean1 = this.fidelity.replicateSkeletonAvgBug ? batchMean0 : tf.mean(sigmoid1, 0);
    const n = this.codeCalls;
    this.codeAverage0.assign(tf.add(this.codeAverage0, tf.div(tf.sub(batchMean0, this.codeAverage0), n)));
    this.codeAverage1.assign(tf.add(this.codeAverage1, tf.div(tf.sub(batchMean1, this.codeAverage1), n)));
    if (regularTrainingStep) {
      // Sample-weighted mean of pre-sigmoid w, kept as a mean (not a sum) for float32 accuracy over long runs.
      const batch = w0.shape[0];
      this.paperSamples += batch;
      const total = this.paperSamples;
      const update = (mean: tf.Variable, w: tf.Tensor2D) =>
        mean.assign(tf.add(mean, tf.div(tf.sub(tf.sum(w, 0), tf.mul(mean, batch)), total)));
      update(this.paperMeanW0, w0);
      update(this.paperMeanW1, w1);
    }
  }

  /** The constant gate of a re-balancing step for branch k, shape [C_k] (already scaled by gateScale). */
  private rebalanceGateTensor(k: 0 | 1): tf.Tensor {
    if (this.fidelity.rebalanceAverage === 'codeRunningSigmoid') {
      return this.scaled(k === 0 ? this.codeAverage0 : this.codeAverage1);
    }
    if (this.paperSamples === 0) {
      throw new Error(
        `${this.name}: a re-balancing step needs the pre-sigmoid average of earlier regular training steps, ` +
          'but none has run yet (pass regularTrainingStep: true on regular training forwards)',
      );
    }
    return this.scaled(tf.sigmoid(k === 0 ? this.paperMeanW0 : this.paperMeanW1));
  }

  /** The gate a re-balancing step accelerating m_k would use now, as numbers. */
  rebalanceGate(k: 0 | 1): Float32Array {
    return tf.tidy(() => this.rebalanceGateTensor(k).dataSync() as Float32Array);
  }

  setSqueezeMeans(h0: Float32Array, h1: Float32Array): void {
    if (h0.length !== this.channels0 || h1.length !== this.channels1) {
      throw new Error(
        `${this.name}.setSqueezeMeans: expected h̄0 of ${this.channels0} and h̄1 of ${this.channels1} values, ` +
          `got ${h0.length} and ${h1.length}`,
      );
    }
    this.squeezeMean0?.dispose();
    this.squeezeMean1?.dispose();
    this.squeezeMean0 = tf.keep(tf.tensor2d(h0, [1, this.channels0]));
    this.squeezeMean1 = tf.keep(tf.tensor2d(h1, [1, this.channels1]));
  }

  /** fc_squeeze, fc_visual, fc_skeleton (weight, bias each). */
  get parameters(): NamedVariable[] {
    return [...this.squeeze.parameters, ...this.excite0.parameters, ...this.excite1.parameters];
  }

  get state(): StateEntry[] {
    return [
      variableState(`${this.name}.codeAverage0`, this.codeAverage0),
      variableState(`${this.name}.codeAverage1`, this.codeAverage1),
      counterState(
        `${this.name}.codeCalls`,
        () => this.codeCalls,
        (v) => (this.codeCalls = v),
      ),
      variableState(`${this.name}.paperMeanW0`, this.paperMeanW0),
      variableState(`${this.name}.paperMeanW1`, this.paperMeanW1),
      counterState(
        `${this.name}.paperSamples`,
        () => this.paperSamples,
        (v) => (this.paperSamples = v),
      ),
    ];
  }

  dispose(): void {
    disposeParameters(this.parameters);
    for (const v of [this.codeAverage0, this.codeAverage1, this.paperMeanW0, this.paperMeanW1]) v.dispose();
    this.squeezeMean0?.dispose();
    this.squeezeMean1?.dispose();
  }
}

/**
 * Squeeze-and-excitation block of the uni-modal baseline (paper-spec §11): GAP → Linear(C→Z) → ReLU →
 * Linear(Z→C) → σ → channel-wise scale by gateScale·σ, with Z = floor(2·(C+C)/4) = C as in the code's SEonly
 * MMTM (no bottleneck reduction).
 */
export class SeBlock {
  readonly squeeze: Linear;
  readonly excite: Linear;

  constructor(
    init: Init,
    readonly channels: number,
    readonly gateScale: 1 | 2,
  ) {
    const bottleneck = mmtmBottleneck(channels, channels);
    this.squeeze = new Linear(childInit(init, 'squeeze'), channels, bottleneck);
    this.excite = new Linear(childInit(init, 'excite'), bottleneck, channels);
  }

  forward(a: tf.Tensor): tf.Tensor {
    const h = tf.mean(a, spatialAxes(a.rank)) as tf.Tensor2D;
    const gate = tf.sigmoid(this.excite.apply(this.squeeze.apply(h, 'relu')));
    const scaled = this.gateScale === 1 ? gate : tf.mul(gate, this.gateScale);
    return tf.mul(a, broadcastOverSpatial(scaled, a.rank));
  }

  get parameters(): NamedVariable[] {
    return [...this.squeeze.parameters, ...this.excite.parameters];
  }

  dispose(): void {
    disposeParameters(this.parameters);
  }
}

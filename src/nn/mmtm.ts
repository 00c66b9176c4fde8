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
import { acceleratedModality, type ForwardMode } from './types.ts';
import { nativeChannelGate, sigmoid } from '../backend/native-ops.ts';

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
  /** The gated maps, one per modality (branch order). */
  outputs: tf.Tensor[];
  /** The squeezed inputs h_k (B×C_k), with `collectSqueezed`. */
  squeezed?: tf.Tensor2D[];
}

/**
 * Bottleneck width of the MMTM squeeze layer: Z = floor(2·ΣC_k/4), ratio 4 (paper-spec §2.1: floor(2·(C0 + C1)/4)
 * for two modalities; the sum over all modalities for three, our reading of §8.6).
 */
export function mmtmBottleneck(...channels: number[]): number {
  return Math.floor((2 * channels.reduce((a, b) => a + b, 0)) / 4);
}

/**
 * Multi-modal transfer module (paper-spec §2.1) between the maps A_k (B×…×C_k, channels last; spatial shapes may
 * differ) of M ≥ 2 branches — two in the paper's main experiments, three in its three-view ModelNet40 one, where
 * (§8.6, inferred) one module takes all three squeezed vectors and emits three gates.
 *
 * Regular forward: h_k = spatial mean of A_k; z = ReLU(fc_squeeze([h0, …, h_{M−1}])); w_k = fc_excite_k(z)
 * (the code's fc_visual / fc_skeleton for k = 0 / 1); Ã_k = gateScale·σ(w_k) ⊙ A_k.
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
  readonly channels: readonly number[];
  /** fc_squeeze: ΣC_k → Z, shared by all excitations (in every θk′). */
  readonly squeeze: Linear;
  /** fc_excite_k: Z → C_k, the modality-k excitation (θk′). */
  readonly excites: readonly Linear[];

  private readonly codeAverages: tf.Variable[];
  private codeCalls = 0;
  private readonly paperMeanWs: tf.Variable[];
  private paperSamples = 0;
  private squeezeMeans: tf.Tensor2D[] | null = null;
  private readonly name: string;

  constructor(
    init: Init,
    channels: readonly number[],
    readonly fidelity: MmtmFidelity,
  ) {
    this.name = init.prefix;
    if (channels.length < 2 || channels.some((c) => !Number.isInteger(c) || c < 1)) {
      throw new Error(`${init.prefix}: an MMTM joins two or more branches with positive channel counts, got ${JSON.stringify(channels)}`);
    }
    if (fidelity.replicateSkeletonAvgBug && channels[0] !== channels[1]) {
      throw new Error(
        `${init.prefix}: replicateSkeletonAvgBug feeds the modality-1 average with branch-0 gates, which needs ` +
          `C0 = C1 (got ${channels[0]}, ${channels[1]}); turn the switch off for modules with different widths`,
      );
    }
    this.channels = [...channels];
    this.bottleneck = mmtmBottleneck(...channels);
    const total = channels.reduce((a, b) => a + b, 0);
    this.squeeze = new Linear(childInit(init, 'squeeze'), total, this.bottleneck);
    this.excites = channels.map((c, k) => new Linear(childInit(init, `excite${k}`), this.bottleneck, c));
    this.codeAverages = channels.map((c) => variableOf(() => tf.zeros([c]), false));
    this.paperMeanWs = channels.map((c) => variableOf(() => tf.zeros([c]), false));
  }

  get modalityCount(): number {
    return this.channels.length;
  }

  forward(inputs: readonly tf.Tensor[], ctx: FusionContext): FusionOutput {
    if (inputs.length !== this.modalityCount) {
      throw new Error(`${this.name}: expected ${this.modalityCount} input maps, got ${inputs.length}`);
    }
    if (ctx.regularTrainingStep && ctx.mode !== 'regular') {
      throw new Error(`${this.name}: regularTrainingStep was set in forward mode '${ctx.mode}'; it needs 'regular'`);
    }
    const h = inputs.map((a) => tf.mean(a, spatialAxes(a.rank)) as tf.Tensor2D);
    const z = this.squeeze.apply(tf.concat(h, 1), 'relu');
    const w = this.excites.map((e) => e.apply(z));
    const sigmoids = w.map((wk) => sigmoid(wk));
    this.updateStatistics(sigmoids, w, ctx.regularTrainingStep);

    let gates: tf.Tensor[];
    if (ctx.mode === 'regular') {
      gates = sigmoids.map((g) => this.scaled(g));
    } else if (ctx.mode === 'unimodalMeans') {
      if (this.squeezeMeans === null) {
        throw new Error(`${this.name}: forward mode 'unimodalMeans' needs setSqueezeMeans() first`);
      }
      const batch = h[0]!.shape[0];
      const means = this.squeezeMeans.map((m) => tf.tile(m, [batch, 1]));
      // Branch k sees its own h_k(x) and the training means h̄_j of every other modality (paper-spec §6.3, §8.6).
      gates = this.excites.map((excite, k) => {
        const zk = this.squeeze.apply(tf.concat(means.map((m, j) => (j === k ? h[k]! : m)), 1), 'relu');
        return this.scaled(sigmoid(excite.apply(zk)));
      });
    } else {
      const k = acceleratedModality(ctx.mode)!;
      if (k >= this.modalityCount) throw new Error(`${this.name}: forward mode '${ctx.mode}' names modality ${k}, the module joins ${this.modalityCount}`);
      gates = sigmoids.map((g, j) => (j === k ? this.rebalanceGateTensor(k) : this.scaled(g)));
    }
    const outputs = inputs.map((a, k) => gateChannels(a, gates[k]!));
    return ctx.collectSqueezed ? { outputs, squeezed: h } : { outputs };
  }

  private scaled(gate: tf.Tensor): tf.Tensor {
    return this.fidelity.gateScale === 1 ? gate : tf.mul(gate, this.fidelity.gateScale);
  }

  private updateStatistics(sigmoids: tf.Tensor2D[], w: tf.Tensor2D[], regularTrainingStep: boolean): void {
    // Running mean over calls of batch means: r ← r + (m − r)/n, every batch weighted equally.
    this.codeCalls += 1;
    // With the replicated bug the modality-1 average is fed branch 0's gates: its own mean is not computed.
    const batchMeans = sigmoids.map((s, k) => (k === 1 && this.fidelity.replicateSkeletonAvgBug ? null : tf.mean(s, 0)));
    if (this.fidelity.replicateSkeletonAvgBug) batchMeans[1] = batchMeans[0]!;
    const n = this.codeCalls;
    this.codeAverages.forEach((average, k) => average.assign(tf.add(average, tf.div(tf.sub(batchMeans[k]!, average), n))));
    if (regularTrainingStep) {
      // Sample-weighted mean of pre-sigmoid w, kept as a mean (not a sum) for float32 accuracy over long runs.
      const batch = w[0]!.shape[0];
      this.paperSamples += batch;
      const total = this.paperSamples;
      this.paperMeanWs.forEach((mean, k) => mean.assign(tf.add(mean, tf.div(tf.sub(tf.sum(w[k]!, 0), tf.mul(mean, batch)), total))));
    }
  }

  /** The constant gate of a re-balancing step for branch k, shape [C_k] (already scaled by gateScale). */
  private rebalanceGateTensor(k: number): tf.Tensor {
    if (this.fidelity.rebalanceAverage === 'codeRunningSigmoid') {
      return this.scaled(this.codeAverages[k]!);
    }
    if (this.paperSamples === 0) {
      throw new Error(
        `${this.name}: a re-balancing step needs the pre-sigmoid average of earlier regular training steps, ` +
          'but none has run yet (pass regularTrainingStep: true on regular training forwards)',
      );
    }
    return this.scaled(tf.sigmoid(this.paperMeanWs[k]!));
  }

  /** The gate a re-balancing step accelerating m_k would use now, as numbers. */
  rebalanceGate(k: number): Float32Array {
    return tf.tidy(() => this.rebalanceGateTensor(k).dataSync() as Float32Array);
  }

  /** means[k] = h̄_k, the training-split mean of modality k's squeezed input. */
  setSqueezeMeans(means: readonly Float32Array[]): void {
    if (means.length !== this.modalityCount || means.some((m, k) => m.length !== this.channels[k])) {
      throw new Error(
        `${this.name}.setSqueezeMeans: expected means of ${JSON.stringify(this.channels)} values, ` +
          `got ${JSON.stringify(means.map((m) => m.length))}`,
      );
    }
    this.squeezeMeans?.forEach((m) => m.dispose());
    this.squeezeMeans = means.map((m, k) => tf.keep(tf.tensor2d(m, [1, this.channels[k]!])));
  }

  /** fc_squeeze, then fc_excite_0 … fc_excite_{M−1} (weight, bias each). */
  get parameters(): NamedVariable[] {
    return [...this.squeeze.parameters, ...this.excites.flatMap((e) => e.parameters)];
  }

  get state(): StateEntry[] {
    return [
      ...this.codeAverages.map((v, k) => variableState(`${this.name}.codeAverage${k}`, v)),
      counterState(
        `${this.name}.codeCalls`,
        () => this.codeCalls,
        (v) => (this.codeCalls = v),
      ),
      ...this.paperMeanWs.map((v, k) => variableState(`${this.name}.paperMeanW${k}`, v)),
      counterState(
        `${this.name}.paperSamples`,
        () => this.paperSamples,
        (v) => (this.paperSamples = v),
      ),
    ];
  }

  dispose(): void {
    disposeParameters(this.parameters);
    for (const v of [...this.codeAverages, ...this.paperMeanWs]) v.dispose();
    this.squeezeMeans?.forEach((m) => m.dispose());
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
    const gate = sigmoid(this.excite.apply(this.squeeze.apply(h, 'relu')));
    const scaled = this.gateScale === 1 ? gate : tf.mul(gate, this.gateScale);
    return gateChannels(a, scaled);
  }

  get parameters(): NamedVariable[] {
    return [...this.squeeze.parameters, ...this.excite.parameters];
  }

  dispose(): void {
    disposeParameters(this.parameters);
  }
}

/** a ⊙ gate broadcast over the spatial axes (gate B×C or C); natively without tfjs's reshapes in the gradient. */
function gateChannels(a: tf.Tensor, gate: tf.Tensor): tf.Tensor {
  return nativeChannelGate(a, gate) ?? tf.mul(a, broadcastOverSpatial(gate, a.rank));
}

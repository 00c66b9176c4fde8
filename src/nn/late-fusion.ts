import * as tf from '@tensorflow/tfjs';
import { disposeParameters, readState, uniformVariable, writeState, type NamedVariable, type StateEntry } from './layers.ts';
import type { StagedBranch } from './multi-branch.ts';
import type { ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups } from './types.ts';

/** One modality's encoder: a staged backbone and its own classifier (used only as the optional per-branch head). */
export interface LateFusionEncoder<B extends StagedBranch = StagedBranch> {
  branch: B;
  /** The backbone's head parameters (weight, bias): trained only when the net has per-branch heads. */
  head: readonly NamedVariable[];
}

export interface LateFusionNetOptions<B extends StagedBranch = StagedBranch> {
  name: string;
  encoders: readonly LateFusionEncoder<B>[];
  numClasses: number;
  seed: number;
  /** Keep each backbone's head as a per-branch classifier of its features (methods such as Gradient-Blending need them). */
  unimodalHeads: boolean;
}

/**
 * Late fusion by concatenation: every modality k has its own encoder (all stages of a staged backbone, then its
 * global pool) giving features e_k (B×F_k), and one linear head reads their concatenation:
 *   ŷ = [e_0, …, e_{M−1}]·W + b = Σ_k e_k·W_k + b,
 * W_k being the rows of W that read branch k (stored as one variable per branch so parameter groups can name
 * them). Initialised as PyTorch's Linear(ΣF_k → K): uniform in ±1/√(ΣF_k).
 *
 * The greedy-learning measurements carry over with the head as the only place where modalities meet:
 * - f_k = x ↦ ŷ for every k (each branch reaches the prediction only through the fused head), so `branchLogits`
 *   is ŷ repeated M times in regular mode, as the uni-modal wrapper reports its single head.
 * - f_k′ (mode `unimodalMeans`): ŷ with every other branch's features replaced by their training means ē_j,
 *   f_k′(x) = e_k(x)·W_k + Σ_{j≠k} ē_j·W_j + b — the analogue of feeding an MMTM [h_k(x), h̄_j] (paper-spec §6.1).
 *   The features are reported as the squeezed inputs of one fusion position (`collectSqueezed`), so the MMTM
 *   code path that averages them over the training split (metrics/evaluate.ts) computes ē_k unchanged.
 * - θk = encoder k (plus its head when kept: it reads only e_k); θk′ = W_k, the fusion weights reading branch k.
 *   The fused bias reads no branch and is in no θk′ (our choice; the MMTM squeeze layer, which reads all branches,
 *   is in every θk′).
 * Re-balancing modes do not exist here (no gates to replace): guided/random balancing need the MMTM net.
 */
export class LateFusionNet<B extends StagedBranch = StagedBranch> implements MultimodalNet {
  readonly encoders: readonly LateFusionEncoder<B>[];
  /** W_k (F_k × K), one per modality. */
  readonly fusionWeights: readonly NamedVariable[];
  readonly fusionBias: NamedVariable;
  readonly unimodalHeads: boolean;
  readonly namedParameters: readonly NamedVariable[];
  readonly trainableVariables: readonly tf.Variable[];
  readonly groups: ParameterGroups;
  readonly fusionCount = 1;
  private readonly name: string;
  private readonly stateEntries: StateEntry[];
  private featureMeans: tf.Tensor2D[] | null = null;

  constructor(options: LateFusionNetOptions<B>) {
    this.name = options.name;
    this.encoders = [...options.encoders];
    if (this.encoders.length < 2) throw new Error(`${this.name}: a multi-modal net needs at least two encoders, got ${this.encoders.length}`);
    this.unimodalHeads = options.unimodalHeads;
    const widths = this.encoders.map((e) => e.branch.stageChannels[e.branch.stageCount - 1]!);
    const bound = 1 / Math.sqrt(widths.reduce((a, b) => a + b, 0));
    const init = { seed: options.seed, prefix: 'fusion' };
    this.fusionWeights = widths.map((f, k) => uniformVariable(init, `weight${k}`, [f, options.numClasses], bound));
    this.fusionBias = uniformVariable(init, 'bias', [options.numClasses], bound);
    const isHead = (e: LateFusionEncoder<B>) => new Set(e.head.map((p) => p.variable));
    const encoderParameters = this.encoders.map((e) => {
      const head = isHead(e);
      return e.branch.parameters.filter((p) => this.unimodalHeads || !head.has(p.variable));
    });
    // Stable order: encoder 0 (its head last, when kept), encoder 1, …, then W_0 … W_{M−1}, b.
    this.namedParameters = [...encoderParameters.flat(), ...this.fusionWeights, this.fusionBias];
    this.trainableVariables = this.namedParameters.map((p) => p.variable);
    this.groups = {
      theta: encoderParameters.map((ps) => ps.map((p) => p.variable)),
      thetaPrime: this.fusionWeights.map((w) => [w.variable]),
    };
    this.stateEntries = this.encoders.flatMap((e) => e.branch.state);
  }

  get modalityCount(): number {
    return this.encoders.length;
  }

  /** The features e_k of every modality (B×F_k), in branch order. */
  private features(inputs: readonly tf.Tensor[], training: boolean): { features: tf.Tensor2D[]; headLogits: tf.Tensor2D[] } {
    const finished = inputs.map((x, k) => {
      const branch = this.encoders[k]!.branch;
      if (x.rank !== branch.inputRank || x.shape[x.rank - 1] !== branch.inputChannels) {
        throw new Error(
          `${this.name}.forward input ${k}: expected a rank-${branch.inputRank} channels-last input with ${branch.inputChannels} channels, got shape [${x.shape.join(', ')}]`,
        );
      }
      let a = x;
      for (let p = 1; p <= branch.stageCount; p++) a = branch.stage(p, a, training);
      return branch.finish(a);
    });
    return { features: finished.map((f) => f.features), headLogits: finished.map((f) => f.logits) };
  }

  forward(inputs: readonly tf.Tensor[], options: ForwardOptions): ForwardOutput {
    if (inputs.length !== this.modalityCount) {
      throw new Error(`${this.name}.forward: expected ${this.modalityCount} inputs (one per modality), got ${inputs.length}`);
    }
    if (options.mode !== 'regular' && options.mode !== 'unimodalMeans') {
      throw new Error(`${this.name}: forward mode '${options.mode}' re-balances MMTM gates; a late-fusion net has none (use architecture 'mmtm' for guided or random)`);
    }
    const M = this.modalityCount;
    const { features, headLogits } = this.features(inputs, options.training);
    const products = features.map((e, k) => tf.matMul(e, this.fusionWeights[k]!.variable as tf.Tensor2D));
    const bias = this.fusionBias.variable;
    const logits = tf.add(tf.addN(products), bias) as tf.Tensor2D;
    const terms = products.map((p) => tf.add(p, tf.div(bias, M)) as tf.Tensor2D);
    let branchLogits: tf.Tensor2D[];
    if (options.mode === 'regular') {
      branchLogits = features.map(() => logits);
    } else {
      if (this.featureMeans === null) throw new Error(`${this.name}: forward mode 'unimodalMeans' needs setSqueezeMeans() first`);
      // ē_j·W_j is the same for every sample: one 1×K row, broadcast over the batch.
      const meanProducts = this.featureMeans.map((m, j) => tf.matMul(m, this.fusionWeights[j]!.variable as tf.Tensor2D));
      branchLogits = products.map((p, k) => {
        const others = meanProducts.filter((_, j) => j !== k);
        return tf.add(tf.add(p, tf.addN(others)), bias) as tf.Tensor2D;
      });
    }
    const output: ForwardOutput = {
      branchLogits,
      logits,
      branchFeatures: features,
      lateFusion: this.unimodalHeads ? { terms, unimodalLogits: headLogits } : { terms },
    };
    if (options.collectSqueezed) output.squeezed = [features];
    return output;
  }

  /** means = [[ē_0, …, ē_{M−1}]]: the training-split feature means (the single fusion position's squeezed inputs). */
  setSqueezeMeans(means: Float32Array[][]): void {
    const widths = this.fusionWeights.map((w) => w.variable.shape[0]!);
    if (means.length !== 1 || means[0]!.length !== this.modalityCount || means[0]!.some((m, k) => m.length !== widths[k])) {
      throw new Error(
        `${this.name}.setSqueezeMeans: expected [[${widths.map((w) => `${w} values`).join(', ')}]] (one fusion position), ` +
          `got ${JSON.stringify(means.map((p) => p.map((m) => m.length)))}`,
      );
    }
    this.featureMeans?.forEach((m) => m.dispose());
    this.featureMeans = means[0]!.map((m, k) => tf.keep(tf.tensor2d(m, [1, widths[k]!])));
  }

  getState(): Record<string, Float32Array> {
    return readState(this.stateEntries);
  }

  setState(state: Record<string, Float32Array>): void {
    writeState(this.stateEntries, state, this.name);
  }

  dispose(): void {
    for (const e of this.encoders) e.branch.dispose();
    disposeParameters([...this.fusionWeights, this.fusionBias]);
    this.featureMeans?.forEach((m) => m.dispose());
    this.featureMeans = null;
  }
}

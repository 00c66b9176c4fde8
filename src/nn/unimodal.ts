import type * as tf from '@tensorflow/tfjs';
import type { ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups, UnimodalNet } from './types.ts';

/**
 * Runs a uni-modal SE baseline (paper-spec §11) through the multi-modal trainer: it reads only modality k,
 * reports its single head as ŷ and as every ŷk, and is trained with `unimodalLoss` = CE(ŷ) (not CE(ŷ0)+CE(ŷ1),
 * which would double the loss; src/train/unimodal.ts). All its parameters form θk; it has no fusion parameters,
 * so d_speed is null.
 */
export class UnimodalAsMultimodal implements MultimodalNet {
  readonly groups: ParameterGroups;
  readonly fusionCount = 0;

  constructor(
    private readonly net: UnimodalNet,
    private readonly modality: number,
    /** Modalities of the dataset it is trained on (it reads only `modality`). */
    readonly modalityCount = 2,
  ) {
    if (!(modality >= 0 && modality < modalityCount)) throw new Error(`uni-modal baseline on modality ${modality}, but the data has ${modalityCount}`);
    const all = [...net.trainableVariables];
    this.groups = {
      theta: Array.from({ length: modalityCount }, (_, k) => (k === modality ? all : [])),
      thetaPrime: Array.from({ length: modalityCount }, () => []),
    };
  }

  get trainableVariables(): readonly tf.Variable[] {
    return this.net.trainableVariables;
  }

  forward(inputs: readonly tf.Tensor[], options: ForwardOptions): ForwardOutput {
    if (options.mode !== 'regular') {
      throw new Error(`a uni-modal network has no forward mode '${options.mode}' (use algorithm 'vanilla')`);
    }
    const out = this.net.forward(inputs[this.modality]!, { training: options.training });
    return {
      branchLogits: Array.from({ length: this.modalityCount }, () => out.logits),
      logits: out.logits,
      branchFeatures: Array.from({ length: this.modalityCount }, () => out.features),
    };
  }

  setSqueezeMeans(): void {
    throw new Error('a uni-modal network has no cross-modal flow to remove (no utilization evaluation)');
  }

  getState(): Record<string, Float32Array> {
    return this.net.getState();
  }

  setState(state: Record<string, Float32Array>): void {
    this.net.setState(state);
  }

  dispose(): void {
    this.net.dispose();
  }
}

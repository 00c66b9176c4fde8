import * as tf from '@tensorflow/tfjs';
import type { ForwardOptions, ForwardOutput, MultimodalNet, ParameterGroups } from '../nn/types.ts';
import type { UnimodalNet } from '../nn/cmnist.ts';
import { crossEntropy } from './loss.ts';

/**
 * Runs a uni-modal SE baseline (paper-spec §11) through the two-branch trainer: it reads only modality k,
 * reports its single head as ŷ, ŷ0 and ŷ1, and is trained with `unimodalLoss` = CE(ŷ) (not CE(ŷ0)+CE(ŷ1),
 * which would double the loss). All its parameters form θk; it has no fusion parameters, so d_speed is null.
 */
export class UnimodalAsMultimodal implements MultimodalNet {
  readonly groups: ParameterGroups;
  readonly fusionCount = 0;

  constructor(
    private readonly net: UnimodalNet,
    private readonly modality: 0 | 1,
  ) {
    const all = [...net.trainableVariables];
    this.groups = {
      theta0: modality === 0 ? all : [],
      theta1: modality === 1 ? all : [],
      theta0Prime: [],
      theta1Prime: [],
    };
  }

  get trainableVariables(): readonly tf.Variable[] {
    return this.net.trainableVariables;
  }

  forward(x0: tf.Tensor, x1: tf.Tensor, options: ForwardOptions): ForwardOutput {
    if (options.mode !== 'regular') {
      throw new Error(`a uni-modal network has no forward mode '${options.mode}' (use algorithm 'vanilla')`);
    }
    const out = this.net.forward(this.modality === 0 ? x0 : x1, { training: options.training });
    return { logits0: out.logits, logits1: out.logits, logits: out.logits, features0: out.features, features1: out.features };
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

export function unimodalLoss(out: ForwardOutput, oneHot: tf.Tensor2D): tf.Scalar {
  return crossEntropy(out.logits, oneHot);
}

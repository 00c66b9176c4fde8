import * as tf from '@tensorflow/tfjs';

export interface SgdOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
}

/** Serialisable optimizer state: one momentum buffer per variable (null until its first update). */
export interface SgdState {
  lr: number;
  buffers: (Float32Array | null)[];
}

/**
 * SGD with momentum and weight decay, PyTorch semantics (no dampening, no Nesterov):
 *   d ← g + wd·θ;  v ← d on a variable's first update, else v ← µ·v + d;  θ ← θ − lr·v.
 * Written by hand (not tf.train.momentum) so that its slots are explicit and checkpoint exactly, and so that a
 * null gradient skips a variable entirely (its buffer untouched), as PyTorch does for parameters without grad.
 */
export class Sgd {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  private readonly buffers: (tf.Tensor | null)[];

  constructor(
    readonly variables: readonly tf.Variable[],
    options: SgdOptions,
  ) {
    this.lr = options.lr;
    this.momentum = options.momentum;
    this.weightDecay = options.weightDecay;
    this.buffers = variables.map(() => null);
  }

  /** Apply one update; `grads[i]` belongs to `variables[i]`; null skips the variable. Does not dispose grads. */
  step(grads: readonly (tf.Tensor | null)[]): void {
    if (grads.length !== this.variables.length) {
      throw new Error(`Sgd.step: ${grads.length} gradients for ${this.variables.length} variables`);
    }
    const lr = tf.scalar(this.lr);
    const mu = tf.scalar(this.momentum);
    const wd = tf.scalar(this.weightDecay);
    for (let i = 0; i < this.variables.length; i++) {
      const g = grads[i];
      if (!g) continue;
      const v = this.variables[i];
      const update = tf.tidy(() => {
        const d = this.weightDecay !== 0 ? g.add(v.mul(wd)) : g.clone();
        if (this.momentum === 0) return d;
        const prev = this.buffers[i];
        return prev ? prev.mul(mu).add(d) : d;
      });
      tf.tidy(() => v.assign(v.sub(update.mul(lr))));
      if (this.momentum !== 0) {
        this.buffers[i]?.dispose();
        this.buffers[i] = update;
      } else {
        update.dispose();
      }
    }
    lr.dispose();
    mu.dispose();
    wd.dispose();
  }

  getState(): SgdState {
    return { lr: this.lr, buffers: this.buffers.map((b) => (b ? (b.dataSync() as Float32Array).slice() : null)) };
  }

  setState(state: SgdState): void {
    if (state.buffers.length !== this.variables.length) {
      throw new Error(`optimizer state has ${state.buffers.length} slots for ${this.variables.length} variables`);
    }
    this.lr = state.lr;
    state.buffers.forEach((values, i) => {
      this.buffers[i]?.dispose();
      const v = this.variables[i];
      if (values && values.length !== v.size) {
        throw new Error(`optimizer slot ${i} (${v.name}) has ${values.length} values, variable has ${v.size}`);
      }
      this.buffers[i] = values ? tf.tensor(values, v.shape, 'float32') : null;
    });
  }

  dispose(): void {
    this.buffers.forEach((b) => b?.dispose());
    this.buffers.fill(null);
  }
}

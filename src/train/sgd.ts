import * as tf from '@tensorflow/tfjs';
import { FlatLayout } from '../backend/native-ops.ts';

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
 *
 * The update runs once on all variables laid end to end (one flat vector of θ, of g and of the momentum
 * buffers), not per variable: the same element-wise arithmetic, so the same values to the bit, in ≈ 4 + 2·(number
 * of variables) ops instead of 4·(number of variables) — on the native backend each op costs ≈ 50 µs of overhead
 * whatever its size (issue 14). Variables skipped this step, or updated for the first time while others are not,
 * are handled with element masks (exact selects).
 */
export class Sgd {
  lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  private readonly layout: FlatLayout;
  /** Momentum buffers of all variables end to end; zeros where a variable has not started (null: none has). */
  private buffer: tf.Tensor1D | null = null;
  private readonly started: boolean[];
  /** Element masks by the per-variable pattern they spread (few distinct patterns occur: e.g. re-balancing steps). */
  private readonly masks = new Map<string, tf.Tensor1D>();
  /**
   * The flat θ of the last step that updated every variable, and the tensors it gave them: while each variable still
   * holds that tensor (nothing assigned it since), the next step starts from this vector instead of laying the
   * variables end to end again (one DynamicStitch of all weights fewer per step, issue 14). The same values.
   */
  private lastTheta: { flat: tf.Tensor1D; dataIds: object[] } | null = null;

  constructor(
    readonly variables: readonly tf.Variable[],
    options: SgdOptions,
  ) {
    this.lr = options.lr;
    this.momentum = options.momentum;
    this.weightDecay = options.weightDecay;
    this.layout = new FlatLayout(variables.map((v) => v.shape));
    this.started = variables.map(() => false);
  }

  /** Apply one update; `grads[i]` belongs to `variables[i]`; null skips the variable. Does not dispose grads. */
  step(grads: readonly (tf.Tensor | null)[]): void {
    if (grads.length !== this.variables.length) {
      throw new Error(`Sgd.step: ${grads.length} gradients for ${this.variables.length} variables`);
    }
    const present = grads.map((g) => g !== null);
    if (!present.some(Boolean)) return;
    const cached = this.lastTheta && this.variables.every((v, i) => v.dataId === this.lastTheta!.dataIds[i]) ? this.lastTheta.flat : null;
    const { pieces, buffer, next } = tf.tidy(() => {
      const theta = cached ?? this.layout.flatten(this.variables);
      // A skipped variable's slot holds its own weights as a filler: whatever is computed there is never kept.
      const g = this.layout.flatten(grads.map((gi, i) => gi ?? this.variables[i]!));
      const d = this.weightDecay !== 0 ? tf.add<tf.Tensor1D>(g, tf.mul(theta, this.weightDecay)) : g;
      let velocity = d;
      if (this.momentum !== 0) {
        const continuing = present.map((p, i) => p && this.started[i]!);
        const fresh = present.map((p, i) => p && !this.started[i]!);
        // v ← µ·v + d where the variable continues, d where it starts, the old v where it is skipped.
        const carried = this.buffer && continuing.some(Boolean) ? tf.add<tf.Tensor1D>(tf.mul(this.buffer, this.momentum), d) : null;
        if (carried && continuing.every(Boolean)) velocity = carried;
        else if (!carried && fresh.every(Boolean)) velocity = d;
        else {
          const old = this.buffer ?? tf.zerosLike(d);
          const startedOrSkipped = carried ? tf.where(this.mask(continuing), carried, old) : old;
          velocity = tf.where(this.mask(fresh), d, startedOrSkipped);
        }
      }
      const next = tf.sub<tf.Tensor1D>(theta, tf.mul(velocity, this.lr));
      return { pieces: this.layout.unflatten(next), next, ...(this.momentum !== 0 ? { buffer: velocity } : {}) };
    });
    pieces.forEach((value, i) => {
      if (present[i]) this.variables[i]!.assign(value);
      value.dispose();
    });
    this.lastTheta?.flat.dispose();
    this.lastTheta = null;
    // Only a step that updated every variable leaves θ exact everywhere (a skipped variable's slot holds filler).
    if (present.every(Boolean)) this.lastTheta = { flat: next, dataIds: this.variables.map((v) => v.dataId) };
    else next.dispose();
    if (buffer) {
      this.buffer?.dispose();
      this.buffer = buffer;
      present.forEach((p, i) => (this.started[i] ||= p));
    }
  }

  /** A boolean vector over the flat layout: true on the elements of variable i where `byVariable[i]`. */
  private mask(byVariable: readonly boolean[]): tf.Tensor1D {
    const key = byVariable.map((b) => (b ? '1' : '0')).join('');
    let mask = this.masks.get(key);
    if (!mask) {
      const values = new Uint8Array(this.layout.total);
      let offset = 0;
      this.layout.sizes.forEach((size, i) => {
        if (byVariable[i]) values.fill(1, offset, offset + size);
        offset += size;
      });
      mask = tf.keep(tf.tensor1d(values, 'bool'));
      this.masks.set(key, mask);
    }
    return mask;
  }

  getState(): SgdState {
    const all = this.buffer ? (this.buffer.dataSync() as Float32Array) : null;
    let offset = 0;
    const buffers = this.layout.sizes.map((size, i) => {
      const slice = all && this.started[i] ? all.slice(offset, offset + size) : null;
      offset += size;
      return slice;
    });
    return { lr: this.lr, buffers };
  }

  setState(state: SgdState): void {
    if (state.buffers.length !== this.variables.length) {
      throw new Error(`optimizer state has ${state.buffers.length} slots for ${this.variables.length} variables`);
    }
    state.buffers.forEach((values, i) => {
      const v = this.variables[i]!;
      if (values && values.length !== v.size) {
        throw new Error(`optimizer slot ${i} (${v.name}) has ${values.length} values, variable has ${v.size}`);
      }
    });
    this.lr = state.lr;
    this.buffer?.dispose();
    this.buffer = null;
    const all = new Float32Array(this.layout.total);
    let offset = 0;
    state.buffers.forEach((values, i) => {
      this.started[i] = values !== null;
      if (values) all.set(values, offset);
      offset += this.layout.sizes[i]!;
    });
    if (this.started.some(Boolean)) this.buffer = tf.tensor1d(all, 'float32');
  }

  dispose(): void {
    this.buffer?.dispose();
    this.buffer = null;
    this.lastTheta?.flat.dispose();
    this.lastTheta = null;
    this.started.fill(false);
    for (const mask of this.masks.values()) mask.dispose();
    this.masks.clear();
    this.layout.dispose();
  }
}

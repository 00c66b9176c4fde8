/** |θ| below this counts as zero for R(f) (paper-spec §10). */
export const SPARSITY_THRESHOLD = 1e-7;

/** R(f): the fraction of trainable scalars with |θ| < threshold, over all given tensors (paper-spec §10). */
export function sparsityRatio(tensors: readonly ArrayLike<number>[], threshold = SPARSITY_THRESHOLD): number {
  let small = 0;
  let total = 0;
  for (const values of tensors) {
    for (let i = 0; i < values.length; i++) if (Math.abs(values[i]) < threshold) small += 1;
    total += values.length;
  }
  if (total === 0) throw new Error('sparsityRatio: no parameters given');
  return small / total;
}

/**
 * Conditional utilization rates (paper-spec §6.1): u(m1|m0) = (A(f0) − A(f0′))/A(f0),
 * u(m0|m1) = (A(f1) − A(f1′))/A(f1), d_util = u(m1|m0) − u(m0|m1). For M > 2 modalities (§8.6):
 * u_k = u(rest|m_k) = (A(f_k) − A(f_k′))/A(f_k), where f_k′ sees the training means of all other modalities, and
 * d_util = max_k u_k − min_k u_k, the gap between the two most different rates (our reading, by analogy with
 * d_speed). Never clamped (§13 D14); a zero denominator gives null rather than NaN/∞.
 */
export function modalityUtilization(accF: readonly number[], accFPrime: readonly number[]): { u: (number | null)[]; dUtil: number | null } {
  if (accF.length < 2 || accF.length !== accFPrime.length) {
    throw new Error(`modalityUtilization: need A(f_k) and A(f_k') for the same two or more modalities, got ${accF.length} and ${accFPrime.length}`);
  }
  const u = accF.map((a, k) => (a > 0 ? (a - accFPrime[k]!) / a : null));
  let dUtil: number | null = null;
  if (u.every((v) => v !== null)) {
    const values = u as number[];
    dUtil = values.length === 2 ? values[0]! - values[1]! : Math.max(...values) - Math.min(...values);
  }
  return { u, dUtil };
}

/**
 * d_speed(f) = the cumulative d_speed at the best-validation step T (paper-spec §7.1): the value logged at the
 * end of the best-validation epoch.
 */
export function dSpeedAtBest(history: readonly { epoch: number; dSpeed: number | null }[], bestEpoch: number): number | null {
  return history.find((h) => h.epoch === bestEpoch)?.dSpeed ?? null;
}

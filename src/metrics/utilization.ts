/**
 * Conditional utilization rates (paper-spec §6.1): u(m1|m0) = (A(f0) − A(f0′))/A(f0),
 * u(m0|m1) = (A(f1) − A(f1′))/A(f1), d_util = u(m1|m0) − u(m0|m1). Never clamped (§13 D14); a zero
 * denominator gives null rather than NaN/∞.
 */
export interface UtilizationAccuracies {
  accF0: number;
  accF1: number;
  accF0Prime: number;
  accF1Prime: number;
}

export interface ConditionalUtilization {
  uM1GivenM0: number | null;
  uM0GivenM1: number | null;
  dUtil: number | null;
}

export function conditionalUtilization(a: UtilizationAccuracies): ConditionalUtilization {
  const uM1GivenM0 = a.accF0 > 0 ? (a.accF0 - a.accF0Prime) / a.accF0 : null;
  const uM0GivenM1 = a.accF1 > 0 ? (a.accF1 - a.accF1Prime) / a.accF1 : null;
  const dUtil = uM1GivenM0 === null || uM0GivenM1 === null ? null : uM1GivenM0 - uM0GivenM1;
  return { uM1GivenM0, uM0GivenM1, dUtil };
}

/**
 * d_speed(f) = the cumulative d_speed at the best-validation step T (paper-spec §7.1): the value logged at the
 * end of the best-validation epoch.
 */
export function dSpeedAtBest(history: readonly { epoch: number; dSpeed: number | null }[], bestEpoch: number): number | null {
  return history.find((h) => h.epoch === bestEpoch)?.dSpeed ?? null;
}

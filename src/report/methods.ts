/**
 * The method-comparison table (issue 19): per condition (dataset column · architecture · modalities · algorithm,
 * as `groupByCondition` groups them), over its finished, non-diverged trials — in practice its seeds — the mean ±
 * sample std of A(f) (test accuracy of ŷ at the best-validation epoch), the means of A(f_k) and A(f_k′) of both
 * modalities, d_util, d_speed and the wall time per trial (start to finish of its last attempt).
 */
import { groupByCondition } from './figures/common.ts';
import type { ReportTrial } from './model.ts';
import { mean, sampleStd } from './stats.ts';

export const METHOD_TABLE_COLUMNS = [
  'condition',
  'n',
  'n_diverged',
  'test_acc_mean',
  'test_acc_std',
  'acc_f0_mean',
  'acc_f1_mean',
  'acc_f0_prime_mean',
  'acc_f1_prime_mean',
  'd_util_mean',
  'd_util_std',
  'd_speed_mean',
  'd_speed_std',
  'wall_seconds_mean',
  'wall_seconds_std',
] as const;

export type MethodRow = Record<(typeof METHOD_TABLE_COLUMNS)[number], string | number | null>;

export function buildMethodTable(trials: readonly ReportTrial[]): MethodRow[] {
  const finite = (x: number) => (Number.isFinite(x) ? x : null);
  const stats = (values: (number | null | undefined)[]) => {
    const xs = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    return { mean: finite(mean(xs)), std: finite(sampleStd(xs)) };
  };
  return groupByCondition(trials.filter((t) => t.result !== null))
    .map((g) => {
      const ok = g.trials.filter((t) => !t.result!.diverged);
      const r = ok.map((t) => t.result!);
      const wall = ok.map((t) => (t.startedAt && t.finishedAt ? (t.finishedAt.getTime() - t.startedAt.getTime()) / 1000 : null));
      const acc = stats(r.map((x) => x.testAcc));
      const dUtil = stats(r.map((x) => x.dUtil));
      const dSpeed = stats(r.map((x) => x.dSpeed));
      const seconds = stats(wall);
      return {
        condition: g.label,
        n: ok.length,
        n_diverged: g.trials.length - ok.length,
        test_acc_mean: acc.mean,
        test_acc_std: acc.std,
        acc_f0_mean: stats(r.map((x) => x.accF0)).mean,
        acc_f1_mean: stats(r.map((x) => x.accF1)).mean,
        acc_f0_prime_mean: stats(r.map((x) => x.accF0Prime)).mean,
        acc_f1_prime_mean: stats(r.map((x) => x.accF1Prime)).mean,
        d_util_mean: dUtil.mean,
        d_util_std: dUtil.std,
        d_speed_mean: dSpeed.mean,
        d_speed_std: dSpeed.std,
        wall_seconds_mean: seconds.mean,
        wall_seconds_std: seconds.std,
      };
    });
}

/** The study report's content, pure: report data → Table 1, figures, CSV tables and notes (`buildReport`). */
import {
  buildCurves,
  buildDistributions,
  buildL1,
  buildProxyScatter,
  buildSweeps,
  buildTimelines,
  groupByCondition,
  type Figure,
} from './figures.ts';
import type { ReportData } from './model.ts';
import { METHOD_TABLE_COLUMNS, buildMethodTable } from './methods.ts';
import { TABLE1_CSV_COLUMNS, buildTable1, table1CsvRows, type Table1 } from './table1.ts';

export interface ReportOptions {
  /** Learning-curve figures at most (evenly spread over the conditions); default 48. */
  maxCurves?: number;
  /** Histogram bins (default ⌈√n⌉ clamped to [5, 30]). */
  binCount?: number;
  /** "Now" for trials still running (timeline) and the report's date stamp. */
  now?: Date;
}

export interface ReportTable {
  /** File stem of tables/<name>.csv. */
  name: string;
  title: string;
  rows: Record<string, unknown>[];
  /** Column order (default: the first row's keys); lets an empty table still carry its header. */
  columns?: readonly string[];
}

export interface Report {
  title: string;
  generatedAt: Date;
  data: ReportData;
  table1: Table1;
  figures: Figure[];
  tables: ReportTable[];
  /** Things the reader must know (omitted curves, pooled learning rates, unfinished trials). */
  notes: string[];
}

export function buildReport(data: ReportData, options: ReportOptions = {}): Report {
  const now = options.now ?? new Date();
  const table1 = buildTable1(data.trials);
  const distributions = buildDistributions(data.trials, { binCount: options.binCount });
  const proxy = buildProxyScatter(data.trials);
  const sweeps = buildSweeps(data.trials);
  const l1 = buildL1(data.trials);
  const curves = buildCurves(data.trials, data.epochs, { maxCurves: options.maxCurves });
  const timelines = buildTimelines(data.timeline, now);

  const labels = new Map(groupByCondition(data.trials).flatMap((g) => g.trials.map((t) => [t.trialKey, g.label] as const)));
  const trialRows = data.trials.map((t) => ({
    studies: t.studyNames.join(' '),
    trial_key: t.trialKey,
    dataset: t.column,
    condition: labels.get(t.trialKey),
    lr: t.lr,
    seed: t.seed,
    l1: t.l1,
    alpha: t.alpha,
    q: t.q,
    status: t.status,
    attempts: t.attempts,
    worker: t.worker,
    started_at: t.startedAt,
    finished_at: t.finishedAt,
    test_acc: t.result?.testAcc ?? null,
    acc_f: t.result?.accF ?? null,
    acc_f0: t.result?.accF0 ?? null,
    acc_f1: t.result?.accF1 ?? null,
    acc_f0_prime: t.result?.accF0Prime ?? null,
    acc_f1_prime: t.result?.accF1Prime ?? null,
    u_m1_given_m0: t.result?.uM1GivenM0 ?? null,
    u_m0_given_m1: t.result?.uM0GivenM1 ?? null,
    d_util: t.result?.dUtil ?? null,
    d_speed: t.result?.dSpeed ?? null,
    r_f: t.result?.rF ?? null,
    best_epoch: t.result?.bestEpoch ?? null,
    diverged: t.result ? t.result.diverged : null,
  }));
  const conditionRows = data.conditionSummary.map((r) => ({
    study: r.studyId,
    dataset: r.dataset,
    dataset_variant: r.datasetVariant,
    architecture: r.architecture,
    modalities: r.modalities,
    algorithm: r.algorithm,
    profile: r.profile,
    lr: r.lr,
    l1: r.l1,
    alpha: r.alpha,
    q: r.q,
    n: r.n,
    test_acc_mean: r.testAccMean,
    test_acc_std: r.testAccStd,
    d_util_mean: r.dUtilMean,
    d_util_std: r.dUtilStd,
    d_speed_mean: r.dSpeedMean,
    d_speed_std: r.dSpeedStd,
    r_f_mean: r.rFMean,
    r_f_std: r.rFStd,
    diverged_fraction: r.divergedFraction,
  }));

  const tables: ReportTable[] = [
    {
      name: 'table1',
      title: 'Table 1: test accuracy (%) per algorithm × dataset, with the published values',
      rows: table1CsvRows(table1),
      columns: TABLE1_CSV_COLUMNS,
    },
    { name: 'conditions', title: 'Per-condition summary (SQL view condition_summary)', rows: conditionRows },
    {
      name: 'methods',
      title: 'Method comparison: A(f), A(f_k), A(f_k′), d_util, d_speed, wall time per trial (mean ± sample std over the seeds)',
      rows: buildMethodTable(data.trials),
      columns: METHOD_TABLE_COLUMNS,
    },
    { name: 'trials', title: 'Every training trial with its result', rows: trialRows },
    { name: 'distributions', title: 'd_util / d_speed distributions per condition', rows: distributions.rows },
    { name: 'proxy-correlation', title: 'Pearson correlation of d_speed with d_util', rows: proxy.rows },
    { name: 'sweeps', title: 'Learning-rate sweeps: mean, std, min, max over seeds', rows: sweeps.rows },
    { name: 'l1', title: 'L1 study: R(f), |d_util|, |d_speed| per λ', rows: l1.rows },
    {
      name: 'l1-correlations',
      title: 'L1 study: correlation of R(f) with |d_util| and |d_speed| over trials',
      rows: l1.correlations.map((c) => ({
        condition: c.condition,
        n: c.n,
        r_abs_d_util: Number.isFinite(c.rAbsDUtil) ? c.rAbsDUtil : null,
        r_abs_d_speed: Number.isFinite(c.rAbsDSpeed) ? c.rAbsDSpeed : null,
      })),
    },
  ].filter((t) => t.rows.length > 0 || t.name === 'table1');

  const notes: string[] = [];
  const total = (state: 'pending' | 'running' | 'failed') => data.counts.reduce((sum, c) => sum + c[state], 0);
  const unfinished = total('pending') + total('running');
  if (unfinished > 0) notes.push(`${unfinished} trial(s) not finished yet (pending or running): the numbers cover finished trials only.`);
  const failed = total('failed');
  if (failed > 0) notes.push(`${failed} trial(s) failed and have no result.`);
  const diverged = data.trials.filter((t) => t.result?.diverged);
  if (diverged.length > 0) notes.push(`${diverged.length} trial(s) diverged (NaN loss): counted in the tables as diverged, left out of the means and figures.`);
  if (curves.omitted > 0)
    notes.push(`Learning curves are drawn for ${curves.figures.length} of ${curves.figures.length + curves.omitted} trials (evenly spread over the conditions; --max-curves raises the cap).`);

  const names = data.studies.map((s) => s.name).join(', ');
  return {
    title: `mmsweep report: ${names}`,
    generatedAt: now,
    data,
    table1,
    figures: uniqueIds([...distributions.figures, ...proxy.figures, ...sweeps.figures, ...l1.figures, ...curves.figures, ...timelines]),
    tables,
    notes,
  };
}

/** Slugs of different names can coincide (`a_b`, `a-b`): suffix repeats so that no figure file overwrites another. */
function uniqueIds(figures: Figure[]): Figure[] {
  const seen = new Map<string, number>();
  return figures.map((f) => {
    const count = (seen.get(f.id) ?? 0) + 1;
    seen.set(f.id, count);
    return count === 1 ? f : { ...f, id: `${f.id}-${count}` };
  });
}

/**
 * The data-loading layer: SQL rows (queries.ts) → plain typed report data (model.ts). `assembleReportData` is pure
 * so that the mapping is testable without a database; `loadReportData` runs the queries.
 */
import type { Db } from '../../db/client.ts';
import { UnknownStudyError } from '../../db/errors.ts';
import type { Algorithm, Modalities } from '../spec/trial.ts';
import {
  datasetColumn,
  type ConditionSummaryRow,
  type ReportData,
  type ReportEpoch,
  type ReportStudy,
  type ReportTrial,
  type StudyCounts,
  type TimelineTrial,
} from './model.ts';
import {
  conditionSummary,
  epochCurves,
  findStudies,
  listStudyIds,
  studyCounts,
  trialOutcomes,
  trialStates,
  type ConditionSummarySqlRow,
  type StudyCountsRow,
  type EpochSqlRow,
  type StudyRow,
  type TrialOutcomeRow,
  type TrialStateRow,
} from './queries.ts';

function toDate(value: Date | string | null): Date | null {
  if (value === null) return null;
  return value instanceof Date ? value : new Date(value);
}

/** Splits the store's architecture column (`mmtm`, `late-fusion` or `unimodal-se:m<k>`, db/conditions.ts). */
export function parseArchitecture(architecture: string): { architecture: 'mmtm' | 'late-fusion' | 'unimodal-se'; modality: 0 | 1 | null } | null {
  if (architecture === 'mmtm' || architecture === 'late-fusion') return { architecture, modality: null };
  const m = /^unimodal-se:m([01])$/.exec(architecture);
  if (m) return { architecture: 'unimodal-se', modality: Number(m[1]) as 0 | 1 };
  return null;
}

function num(value: number | string | null): number | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'number' ? value : Number(value);
}

export interface ReportRows {
  studies: StudyRow[];
  states: TrialStateRow[];
  counts: StudyCountsRow[];
  outcomes: TrialOutcomeRow[];
  epochs: EpochSqlRow[];
  summary: ConditionSummarySqlRow[];
}

export function assembleReportData(rows: ReportRows): ReportData {
  const studyName = new Map(rows.studies.map((s) => [s.id, s.name]));
  const studies: ReportStudy[] = rows.studies.map((s) => ({ id: s.id, name: s.name, preset: s.preset, status: s.status }));
  const outcomeByKey = new Map(rows.outcomes.map((o) => [o.trial_key, o]));

  const timeline: TimelineTrial[] = rows.states.map((s) => ({
    studyName: studyName.get(s.study_id) ?? s.study_id,
    trialKey: s.trial_key,
    worker: s.worker,
    status: s.status,
    attempts: num(s.attempt) ?? 0,
    startedAt: toDate(s.started_at),
    finishedAt: toDate(s.finished_at),
  }));

  const trials = new Map<string, ReportTrial>();
  for (const s of rows.states) {
    if (s.kind !== 'train') continue;
    const name = studyName.get(s.study_id) ?? s.study_id;
    const existing = trials.get(s.trial_key);
    if (existing) {
      if (!existing.studyNames.includes(name)) existing.studyNames.push(name);
      continue;
    }
    const arch = parseArchitecture(s.architecture);
    if (!arch) throw new Error(`trial ${s.trial_key}: unknown architecture "${s.architecture}" in the results store`);
    const o = outcomeByKey.get(s.trial_key);
    trials.set(s.trial_key, {
      studyNames: [name],
      trialKey: s.trial_key,
      column: datasetColumn(s.dataset, s.dataset_variant),
      modalities: (s.modalities ?? 'distinct') as Modalities,
      architecture: arch.architecture,
      unimodalModality: arch.modality,
      algorithm: (s.algorithm ?? 'vanilla') as Algorithm,
      profile: s.profile ?? 'code',
      lr: num(s.lr) ?? Number.NaN,
      seed: num(s.seed) ?? 0,
      l1: num(s.l1) ?? 0,
      alpha: num(s.alpha),
      q: num(s.q),
      status: s.status,
      attempts: num(s.attempt) ?? 0,
      worker: s.worker,
      startedAt: toDate(s.started_at),
      finishedAt: toDate(s.finished_at),
      result: o
        ? {
            // The store keeps a diverged trial's NaN accuracy as NULL.
            testAcc: num(o.test_acc) ?? Number.NaN,
            accF: num(o.acc_f),
            accF0: num(o.acc_f0),
            accF1: num(o.acc_f1),
            accF0Prime: num(o.acc_f0_prime),
            accF1Prime: num(o.acc_f1_prime),
            uM1GivenM0: num(o.u_m1_given_m0),
            uM0GivenM1: num(o.u_m0_given_m1),
            dUtil: num(o.d_util),
            dSpeed: num(o.d_speed),
            rF: num(o.r_f),
            bestEpoch: num(o.best_epoch),
            diverged: Boolean(o.diverged),
          }
        : null,
    });
  }

  const epochs = new Map<string, ReportEpoch[]>();
  for (const e of rows.epochs) {
    if (!epochs.has(e.trial_key)) epochs.set(e.trial_key, []);
    epochs.get(e.trial_key)!.push({
      trialKey: e.trial_key,
      epoch: num(e.epoch)!,
      trainAcc: num(e.train_acc) ?? Number.NaN,
      trainAcc0: num(e.train_acc_0) ?? Number.NaN,
      trainAcc1: num(e.train_acc_1) ?? Number.NaN,
      valAcc: num(e.val_acc) ?? Number.NaN,
      valAcc0: num(e.val_acc_0) ?? Number.NaN,
      valAcc1: num(e.val_acc_1) ?? Number.NaN,
      testAcc: num(e.test_acc),
      testAcc0: num(e.test_acc_0),
      testAcc1: num(e.test_acc_1),
      loss: num(e.loss),
      lr: num(e.lr),
      dSpeed: num(e.d_speed),
      regularSteps: num(e.regular_steps) ?? 0,
      rebalanceSteps: num(e.rebalance_steps) ?? 0,
      ...(e.branch_acc
        ? { branchAcc: { train: e.branch_acc.train.map((v) => num(v) ?? Number.NaN), val: e.branch_acc.val.map((v) => num(v) ?? Number.NaN) } }
        : {}),
    });
  }

  const conditionSummaryRows: ConditionSummaryRow[] = rows.summary.map((r) => ({
    studyId: r.study_id,
    dataset: r.dataset,
    datasetVariant: r.dataset_variant,
    architecture: r.architecture,
    modalities: r.modalities,
    algorithm: r.algorithm,
    profile: r.profile,
    lr: num(r.lr),
    l1: num(r.l1),
    alpha: num(r.alpha),
    q: num(r.q),
    n: num(r.n) ?? 0,
    testAccMean: num(r.test_acc_mean),
    testAccStd: num(r.test_acc_std),
    dUtilMean: num(r.d_util_mean),
    dUtilStd: num(r.d_util_std),
    dSpeedMean: num(r.d_speed_mean),
    dSpeedStd: num(r.d_speed_std),
    rFMean: num(r.r_f_mean),
    rFStd: num(r.r_f_std),
    divergedFraction: num(r.diverged_fraction),
  }));

  const counts: StudyCounts[] = rows.counts.map((c) => ({
    studyName: studyName.get(c.study_id) ?? c.study_id,
    trials: num(c.trials) ?? 0,
    pending: num(c.pending) ?? 0,
    running: num(c.running) ?? 0,
    done: num(c.done) ?? 0,
    failed: num(c.failed) ?? 0,
  }));

  return { studies, trials: [...trials.values()], timeline, counts, conditionSummary: conditionSummaryRows, epochs };
}

/** Loads the named studies (by id or name); throws `UnknownStudyError` naming any that do not exist. */
export async function loadReportData(db: Db, studyRefs: readonly string[]): Promise<ReportData> {
  const studies = await findStudies(db, studyRefs);
  const missing = studyRefs.filter((r) => !studies.some((s) => s.id === r || s.name === r));
  if (missing.length > 0) throw new UnknownStudyError(missing, await listStudyIds(db));
  const ids = studies.map((s) => s.id);
  const [states, counts, outcomes, epochs, summary] = [
    await trialStates(db, ids),
    await studyCounts(db, ids),
    await trialOutcomes(db, ids),
    await epochCurves(db, ids),
    await conditionSummary(db, ids),
  ];
  return assembleReportData({ studies, states, counts, outcomes, epochs, summary });
}

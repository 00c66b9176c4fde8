/**
 * Report data: plain typed rows, independent of the database. `data.ts` produces them from SQL; the builders
 * (tables, figures) consume only these, so they can be tested on hand-made values.
 */
import type { Algorithm, Modalities } from '../spec/trial.ts';

export interface ReportStudy {
  id: string;
  name: string;
  preset: string | null;
  status: string | null;
}

/**
 * A dataset as the report's columns name it: the columns of Table 1 (`cmnist`, `modelnet40`, `nvgesture-scratch`,
 * `nvgesture-pretrained`), the three-view ModelNet40 variant of §6.4 (`modelnet40-3views`), or, for any other
 * variant (e.g. a different CMNIST σ²), `<dataset>:<variant>` so that it never pools with the paper's setting.
 */
export type DatasetColumn = string;

export const PAPER_COLUMNS = ['cmnist', 'modelnet40', 'nvgesture-scratch', 'nvgesture-pretrained', 'modelnet40-3views'] as const;

/** Maps the store's (dataset, dataset_variant) pair (db/conditions.ts) to a report column. */
export function datasetColumn(dataset: string, variant: string): DatasetColumn {
  if (dataset === 'nvgesture') return variant === 'pretrained' ? 'nvgesture-pretrained' : 'nvgesture-scratch';
  if (variant === '') return dataset;
  if (dataset === 'modelnet40' && /^views=\d+,\d+,\d+$/.test(variant)) return 'modelnet40-3views';
  return `${dataset}:${variant}`;
}

export interface ReportResult {
  /** Test accuracy of ŷ at the best-validation epoch, percent. */
  testAcc: number;
  accF: number | null;
  accF0: number | null;
  accF1: number | null;
  accF0Prime: number | null;
  accF1Prime: number | null;
  uM1GivenM0: number | null;
  uM0GivenM1: number | null;
  dUtil: number | null;
  dSpeed: number | null;
  rF: number | null;
  bestEpoch: number | null;
  diverged: boolean;
}

/**
 * One training trial (kind `train`), once even when several reported studies share it (the trial key is a hash of
 * the spec, so a shared trial was trained once and must be counted once).
 */
export interface ReportTrial {
  /** The reported studies this trial belongs to. */
  studyNames: string[];
  trialKey: string;
  column: DatasetColumn;
  modalities: Modalities;
  architecture: 'mmtm' | 'late-fusion' | 'unimodal-se';
  /** For `unimodal-se` trials: which modality the single branch sees. */
  unimodalModality: 0 | 1 | null;
  algorithm: Algorithm;
  profile: string;
  lr: number;
  seed: number;
  l1: number;
  alpha: number | null;
  q: number | null;
  status: string;
  /** The attempt number that owns (or finished) the trial: 1 on a first run, N after N − 1 retries. */
  attempts: number;
  worker: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  result: ReportResult | null;
}

/** One epoch of a trial's learning curve (accuracies in percent). */
export interface ReportEpoch {
  trialKey: string;
  epoch: number;
  trainAcc: number;
  trainAcc0: number;
  trainAcc1: number;
  valAcc: number;
  valAcc0: number;
  valAcc1: number;
  testAcc: number | null;
  testAcc0: number | null;
  testAcc1: number | null;
  loss: number | null;
  lr: number | null;
  dSpeed: number | null;
  regularSteps: number;
  rebalanceSteps: number;
  /** Train / val accuracy of every branch ŷk, for nets with more than two modalities (three-view ModelNet40). */
  branchAcc?: { train: number[]; val: number[] };
}

/** Scheduling facts of one trial of one study (every kind, including no-op trials): the worker timeline. */
export interface TimelineTrial {
  studyName: string;
  trialKey: string;
  worker: string | null;
  status: string;
  attempts: number;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** One row of the store's `condition_summary` view (db/migrations/0001_views.sql), camel-cased. */
export interface ConditionSummaryRow {
  studyId: string;
  dataset: string;
  datasetVariant: string;
  architecture: string;
  modalities: string | null;
  algorithm: string | null;
  profile: string | null;
  lr: number | null;
  l1: number | null;
  alpha: number | null;
  q: number | null;
  n: number;
  testAccMean: number | null;
  testAccStd: number | null;
  dUtilMean: number | null;
  dUtilStd: number | null;
  dSpeedMean: number | null;
  dSpeedStd: number | null;
  rFMean: number | null;
  rFStd: number | null;
  divergedFraction: number | null;
}

/** How many of a study's trials are in each state (all of them, started or not). */
export interface StudyCounts {
  studyName: string;
  trials: number;
  pending: number;
  running: number;
  done: number;
  failed: number;
}

export interface ReportData {
  studies: ReportStudy[];
  /** The trials that started (running, done or failed); the others are only counted, in `counts`. */
  trials: ReportTrial[];
  timeline: TimelineTrial[];
  counts: StudyCounts[];
  conditionSummary: ConditionSummaryRow[];
  /** Learning curves by trial key, ordered by epoch. */
  epochs: Map<string, ReportEpoch[]>;
}

const COLUMN_LABELS: Record<string, string> = {
  cmnist: 'Colored-and-gray MNIST',
  modelnet40: 'ModelNet40',
  'modelnet40-3views': 'ModelNet40 (3 views)',
  'nvgesture-scratch': 'NVGesture-scratch',
  'nvgesture-pretrained': 'NVGesture-pretrained',
  noop: 'no-op trials',
};

export function columnLabel(column: DatasetColumn): string {
  return COLUMN_LABELS[column] ?? column;
}

export const ALGORITHM_LABELS: Record<Algorithm, string> = {
  vanilla: 'multi-modal (vanilla)',
  rubi: '+ RUBi',
  random: '+ random (proposed)',
  guided: '+ guided (proposed)',
  'ogm-ge': 'late fusion + OGM-GE',
  'gradient-blending': 'late fusion + Gradient-Blending',
  pmr: 'late fusion + PMR',
  mmpareto: 'late fusion + MMPareto',
  agm: 'late fusion + AGM',
};

export const MODALITY_LABELS: Record<Modalities, string> = {
  distinct: 'distinct',
  'duplicate-m0': 'duplicated m0',
  'duplicate-m1': 'duplicated m1',
};

/** The condition a trial belongs to for distributions and sweeps (one curve / one histogram each). */
export function conditionLabel(t: Pick<ReportTrial, 'column' | 'modalities' | 'algorithm' | 'architecture' | 'unimodalModality'>): string {
  if (t.architecture === 'unimodal-se') return `${t.column} · uni-modal SE m${t.unimodalModality}`;
  if (t.architecture === 'late-fusion') return `${t.column} · late fusion · ${MODALITY_LABELS[t.modalities]} · ${t.algorithm}`;
  return `${t.column} · ${MODALITY_LABELS[t.modalities]} · ${t.algorithm}`;
}

/**
 * The StudySpec as plain types plus the pure operations workflow code needs (extend). No zod and no node APIs
 * here: the study workflow bundles this file. Validation lives in ./study.ts.
 */

/** Learning-rate axis: an explicit grid, a seeded log-uniform sample (the paper's sweeps) or a log-spaced grid. */
export type LrAxis =
  | { grid: number[] }
  | { logUniform: { min: number; max: number; count: number; seed: number } }
  | { logSpaced: { min: number; max: number; count: number } };

/** One condition: a partial TrialSpec (`base`) crossed with its axes. */
export interface StudyCondition {
  /** Human label of the condition, e.g. `vanilla distinct` or `gray+gray control`. */
  label: string;
  /** TrialSpec fields shared by every trial of the condition (validated when the study is expanded). */
  base: Record<string, unknown>;
  lr?: LrAxis;
  /** Learning rates added later by `extend`, on top of the axis. */
  extraLr: number[];
  /** Seeds (model initialisation and data order): one trial per seed. */
  seeds: number[];
  l1?: number[];
  alpha?: number[];
  q?: number[];
}

export interface StudySpec {
  /** Study id: also the Temporal workflow id suffix, so starting the same study twice attaches. */
  name: string;
  description: string;
  preset?: string;
  /** Worker class: trials run on task queue `mmsweep-train-<queue>`. */
  queue: string;
  /** Trials in flight at once (the sliding window). */
  concurrency: number;
  /** Attempts of one trial before it is marked failed (retry-failed schedules it again). */
  maxAttempts: number;
  conditions: StudyCondition[];
}

/** `extend`: more seeds (every condition) or more grid points (conditions that have that axis). */
export interface StudyExtension {
  seeds?: number[];
  lr?: number[];
  l1?: number[];
  alpha?: number[];
  q?: number[];
}

function union<T>(existing: readonly T[], added: readonly T[] | undefined): T[] {
  const out = [...existing];
  for (const value of added ?? []) if (!out.includes(value)) out.push(value);
  return out;
}

/** The study with the extension applied; existing trials keep their exact specs, so their keys are reused. */
export function extendStudySpec(spec: StudySpec, extension: StudyExtension): StudySpec {
  return {
    ...spec,
    conditions: spec.conditions.map((condition) => ({
      ...condition,
      seeds: union(condition.seeds, extension.seeds),
      extraLr: condition.lr ? union(condition.extraLr, extension.lr) : condition.extraLr,
      ...(condition.l1 ? { l1: union(condition.l1, extension.l1) } : {}),
      ...(condition.alpha ? { alpha: union(condition.alpha, extension.alpha) } : {}),
      ...(condition.q ? { q: union(condition.q, extension.q) } : {}),
    })),
  };
}

export function isEmptyExtension(extension: StudyExtension): boolean {
  return !['seeds', 'lr', 'l1', 'alpha', 'q'].some((k) => (extension[k as keyof StudyExtension]?.length ?? 0) > 0);
}

/**
 * Largest StudySpec (canonical JSON, bytes) that travels inline in workflow inputs and outcomes; larger ones travel
 * as the sha256 of their document in the results store. Far below Temporal's 2 MB payload cap, so that a run's
 * input, its continue-as-new and its outcome stay small.
 */
export const INLINE_SPEC_BYTES = 64 * 1024;

/** Temporal ids derived from the study name. */
export const CONTROL_TASK_QUEUE = 'mmsweep-control';
export function trainTaskQueue(queueClass: string): string {
  return `mmsweep-train-${queueClass}`;
}
export function studyWorkflowId(studyName: string): string {
  return `mmsweep-study-${studyName}`;
}

import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import { parseTrialSpec, type TrialSpec } from './trial.ts';
import { expandStudy, type PlannedTrial } from './study.ts';
import type { StudySpec } from './study-model.ts';

/**
 * The trial key: sha256 (hex) of the canonical JSON of the fully defaulted TrialSpec, so `{lr: 0.1}` and
 * `{lr: 0.1, momentum: 0.9}` (the default) name the same trial. Uses node:crypto: never import this file from
 * workflow code (keys are computed by the client and by activities).
 */
export function trialKey(spec: unknown): string {
  const parsed: TrialSpec = parseTrialSpec(spec);
  return createHash('sha256').update(canonicalJson(parsed)).digest('hex');
}

export interface KeyedTrial extends PlannedTrial {
  key: string;
}

export function planStudy(spec: StudySpec): KeyedTrial[] {
  return expandStudy(spec).map((trial) => ({ ...trial, key: trialKey(trial.spec) }));
}

/** Short form for tables and logs. */
export function shortKey(key: string): string {
  return key.slice(0, 12);
}

import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical.ts';
import { parseTrialSpec, type TrialSpec } from './trial.ts';
import { expandStudy, studyTemplates, type PlannedTrial } from './study.ts';
import type { StudySpec } from './study-model.ts';

/**
 * The trial key: sha256 (hex) of the canonical JSON of the fully defaulted TrialSpec, so `{lr: 0.1}` and
 * `{lr: 0.1, momentum: 0.9}` (the default) name the same trial. Uses node:crypto: never import this file from
 * workflow code (keys are computed by the client and by activities).
 */
export function trialKey(spec: unknown): string {
  return parsedTrialKey(parseTrialSpec(spec));
}

/** The key of a spec that is already parsed (defaulted): what `trialKey` computes, without parsing it again. */
export function parsedTrialKey(spec: TrialSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}

export interface KeyedTrial extends PlannedTrial {
  key: string;
}

export function planStudy(spec: StudySpec): KeyedTrial[] {
  return expandStudy(spec).map((trial) => ({ ...trial, key: parsedTrialKey(trial.spec) }));
}

export interface StreamedTrial extends KeyedTrial {
  /** The spec's canonical JSON (what the key hashes). */
  canonical: string;
  /** The grid point's spec without its seed: one object shared by all the seeds of a grid point (a cache key). */
  template: TrialSpec;
}

const SEED_MARK = 987_654_321_987;

/** Seeds below this print as themselves in canonical JSON (integers keep all their digits up to 15 significant ones). */
export const MAX_SPLICED_SEED = 1e15;

/**
 * The canonical JSON of a grid point's spec cut around its seed: for every integer seed 0 ≤ s < MAX_SPLICED_SEED,
 * `${head}${s}${tail}` is canonicalJson({ ...template, seed: s }), so a study's trials need one canonicalisation per
 * grid point instead of one per seed. Null when the seed cannot be cut out (the mark appears twice).
 */
export function seedSplice(template: TrialSpec): { head: string; tail: string } | null {
  const marked = canonicalJson({ ...template, seed: SEED_MARK });
  const mark = `"seed":${SEED_MARK}`;
  const at = marked.indexOf(mark);
  if (at < 0 || marked.indexOf(mark, at + 1) >= 0) return null;
  return { head: `${marked.slice(0, at)}"seed":`, tail: marked.slice(at + mark.length) };
}

/**
 * The study's trials with their keys, in plan order and constant memory; a trial two conditions share comes once
 * per condition (the results store merges them by key). Canonical JSON comes from the grid point's seedSplice
 * where it applies; larger seeds take the general path.
 */
export function* iterateKeyedTrials(spec: StudySpec): Generator<StreamedTrial> {
  for (const { condition, label, template, seeds } of studyTemplates(spec)) {
    const splice = seedSplice(template);
    for (const seed of seeds) {
      const trial = { ...template, seed };
      const canonical = splice && seed < MAX_SPLICED_SEED ? `${splice.head}${seed}${splice.tail}` : canonicalJson(trial);
      yield { condition, label, spec: trial, canonical, template, key: createHash('sha256').update(canonical).digest('hex') };
    }
  }
}

/** sha256 of a document's canonical JSON: the name under which a StudySpec is stored. */
export function documentSha256(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/** Short form for tables and logs. */
export function shortKey(key: string): string {
  return key.slice(0, 12);
}

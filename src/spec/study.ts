import { z } from 'zod';
import { parseTrialSpec, seedSchema, InvalidSpecError, type TrialSpec } from './trial.ts';
import { logSpaced, logUniformSamples } from './random.ts';
import { canonicalJson } from './canonical.ts';
import { parseStrict } from './strict.ts';
import type { LrAxis, StudyCondition, StudySpec } from './study-model.ts';

export type { LrAxis, StudyCondition, StudySpec, StudyExtension } from './study-model.ts';
export { extendStudySpec, isEmptyExtension } from './study-model.ts';

const positive = z.number().positive();

export const lrAxisSchema = z.union([
  z.object({ grid: z.array(positive).min(1) }).strict(),
  z
    .object({
      logUniform: z
        .object({ min: positive, max: positive, count: z.number().int().positive(), seed: z.number().int().nonnegative() })
        .strict(),
    })
    .strict(),
  z
    .object({ logSpaced: z.object({ min: positive, max: positive, count: z.number().int().positive() }).strict() })
    .strict(),
]);

export const studyConditionSchema = z
  .object({
    label: z.string().min(1),
    base: z.record(z.string(), z.unknown()),
    lr: lrAxisSchema.optional(),
    extraLr: z.array(positive).default([]),
    seeds: z.array(seedSchema).min(1).default([0]),
    l1: z.array(z.number().nonnegative()).min(1).optional(),
    alpha: z.array(z.number().nonnegative()).min(1).optional(),
    q: z.array(z.number().int().positive()).min(1).optional(),
  })
  .strict();

export const studyNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export const studySpecSchema = z
  .object({
    name: z.string().regex(studyNamePattern, 'letters, digits, ".", "_" and "-" only (it names a workflow id)'),
    description: z.string().default(''),
    preset: z.string().optional(),
    queue: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and "-"').default('cpu'),
    concurrency: z.number().int().positive().default(2),
    maxAttempts: z.number().int().positive().default(3),
    conditions: z.array(studyConditionSchema).min(1),
  })
  .strict();

/** Validate a StudySpec and every trial it expands to; errors name the bad field and the condition. */
export function parseStudySpec(input: unknown): StudySpec {
  const spec = parseStrict(studySpecSchema, input, 'study spec', '(study)') as StudySpec;
  validateStudyTrials(spec); // every trial must validate too, before any work starts
  return spec;
}

export function lrValues(axis: LrAxis): number[] {
  if ('grid' in axis) return axis.grid;
  if ('logUniform' in axis) {
    const { min, max, count, seed } = axis.logUniform;
    return logUniformSamples(min, max, count, seed);
  }
  return logSpaced(axis.logSpaced.min, axis.logSpaced.max, axis.logSpaced.count);
}

export interface PlannedTrial {
  /** Index of the condition in the study. */
  condition: number;
  label: string;
  spec: TrialSpec;
}

/** One value list per axis, each value once; `[undefined]` leaves the field to the base spec / the TrialSpec default. */
function axisValues<T>(values: readonly T[] | undefined): (T | undefined)[] {
  return values && values.length > 0 ? [...new Set(values)] : [undefined];
}

/** The condition's learning rates: the axis, then the extension's extra points, each once. */
function conditionLrs(condition: StudyCondition): (number | undefined)[] {
  return condition.lr ? [...new Set([...lrValues(condition.lr), ...condition.extraLr])] : [undefined];
}

/**
 * Every trial of one condition but the seed, parsed once: a trial's seed takes part in no cross-field rule of the
 * TrialSpec schema and seeds are checked by the study schema (non-negative integers, as the TrialSpec wants), so
 * `{ ...template, seed }` is exactly what parsing the trial with that seed gives. This keeps a 10⁶-seed study
 * at one schema parse per grid point instead of one per trial.
 */
function* conditionTemplates(spec: StudySpec, index: number): Generator<TrialSpec> {
  const condition = spec.conditions[index];
  const firstSeed = condition.seeds[0];
  for (const lr of conditionLrs(condition))
    for (const l1 of axisValues(condition.l1))
      for (const alpha of axisValues(condition.alpha))
        for (const q of axisValues(condition.q)) {
          const input: Record<string, unknown> = { ...condition.base, seed: firstSeed };
          if (lr !== undefined) input.lr = lr;
          if (l1 !== undefined) input.l1 = l1;
          if (alpha !== undefined) input.alpha = alpha;
          if (q !== undefined) input.q = q;
          try {
            yield parseTrialSpec(input);
          } catch (error) {
            throw new InvalidSpecError(
              `study ${spec.name}, condition ${index} (${condition.label}): ${(error as Error).message}`,
              (error as InvalidSpecError).fields ?? [],
            );
          }
        }
}

/** Parse every distinct trial shape of the study (one per grid point): throws the first invalid one, naming it. */
export function validateStudyTrials(spec: StudySpec): void {
  spec.conditions.forEach((_condition, index) => {
    for (const template of conditionTemplates(spec, index)) void template;
  });
}

/** Trials the study expands to before trials shared by two conditions are merged (an upper bound of the count). */
export function plannedTrialCount(spec: StudySpec): number {
  let total = 0;
  for (const c of spec.conditions) {
    total += conditionLrs(c).length * axisValues(c.l1).length * axisValues(c.alpha).length * axisValues(c.q).length * new Set(c.seeds).size;
  }
  return total;
}

/** One grid point of a condition: its trial with the first seed, and the seeds (distinct) it is run with. */
export interface TrialTemplate {
  condition: number;
  label: string;
  template: TrialSpec;
  seeds: number[];
}

/** The study's grid points in plan order (condition, lr, λ, α, Q); each stands for one trial per seed. */
export function* studyTemplates(spec: StudySpec): Generator<TrialTemplate> {
  for (let index = 0; index < spec.conditions.length; index++) {
    const condition = spec.conditions[index];
    const seeds = [...new Set(condition.seeds)];
    for (const template of conditionTemplates(spec, index)) yield { condition: index, label: condition.label, template, seeds };
  }
}

/**
 * The study's trials one at a time, in plan order (condition, lr, λ, α, Q, seed), without holding them: a study
 * of 10⁶ trials streams in constant memory. Trials that resolve to the same spec (two conditions, or axis values
 * the trial kind ignores) are NOT merged here; `expandStudy` merges them in memory, the results store by key.
 */
export function* iterateStudy(spec: StudySpec): Generator<PlannedTrial> {
  for (const { condition, label, template, seeds } of studyTemplates(spec))
    for (const seed of seeds) yield { condition, label, spec: { ...template, seed } };
}

/**
 * Every trial of a study, in a stable order (condition, lr, λ, α, Q, seed). Trials of different conditions that
 * resolve to the same spec are listed once: they share a trial key. Holds the whole list: for small studies and
 * tests; large ones go through `iterateStudy`.
 */
export function expandStudy(spec: StudySpec): PlannedTrial[] {
  const out: PlannedTrial[] = [];
  const seen = new Set<string>();
  for (const trial of iterateStudy(spec)) {
    const identity = canonicalJson(trial.spec);
    if (seen.has(identity)) continue;
    seen.add(identity);
    out.push(trial);
  }
  return out;
}

import { z } from 'zod';
import { parseTrialSpec, InvalidSpecError, type TrialSpec } from './trial.ts';
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
    seeds: z.array(z.number().int().nonnegative()).min(1).default([0]),
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
  expandStudy(spec); // every trial must validate too, before any work starts
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

/** One value list per axis; `[undefined]` leaves the field to the base spec / the TrialSpec default. */
function axisValues<T>(values: readonly T[] | undefined): (T | undefined)[] {
  return values && values.length > 0 ? [...values] : [undefined];
}

/**
 * Every trial of a study, in a stable order (condition, lr, λ, α, Q, seed). Trials of different conditions that
 * resolve to the same spec are listed once: they share a trial key.
 */
export function expandStudy(spec: StudySpec): PlannedTrial[] {
  const out: PlannedTrial[] = [];
  const seen = new Set<string>();
  spec.conditions.forEach((condition: StudyCondition, index) => {
    const lrs: (number | undefined)[] = condition.lr ? [...lrValues(condition.lr), ...condition.extraLr] : [undefined];
    const uniqueLrs = lrs.filter((lr, i) => lrs.indexOf(lr) === i);
    for (const lr of uniqueLrs)
      for (const l1 of axisValues(condition.l1))
        for (const alpha of axisValues(condition.alpha))
          for (const q of axisValues(condition.q))
            for (const seed of condition.seeds) {
              const input: Record<string, unknown> = { ...condition.base, seed };
              if (lr !== undefined) input.lr = lr;
              if (l1 !== undefined) input.l1 = l1;
              if (alpha !== undefined) input.alpha = alpha;
              if (q !== undefined) input.q = q;
              let trial: TrialSpec;
              try {
                trial = parseTrialSpec(input);
              } catch (error) {
                throw new InvalidSpecError(
                  `study ${spec.name}, condition ${index} (${condition.label}): ${(error as Error).message}`,
                  (error as InvalidSpecError).fields ?? [],
                );
              }
              const identity = canonicalJson(trial);
              if (seen.has(identity)) continue;
              seen.add(identity);
              out.push({ condition: index, label: condition.label, spec: trial });
            }
  });
  return out;
}

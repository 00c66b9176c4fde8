import { canonicalJson } from './canonical.ts';
import { InvalidSpecError } from './strict.ts';
import type { StudyCondition, StudySpec } from './study-model.ts';

/**
 * Re-running a study under an existing name (issue 17, W2): what the new spec adds to the stored one and what it
 * changes. Conditions match by label; a condition's base and lr axis must be equal, its value lists (seeds, extra
 * learning rates, λ, α, Q) may only grow. Operational fields (description, queue, concurrency, attempts) are free.
 */
export interface StudyDifference {
  /** More seeds, grid values or conditions: allowed with `--extend`. */
  additions: string[];
  /** Anything else: allowed only under a new name. */
  changes: string[];
}

const show = (v: unknown) => (v === undefined ? '(unset)' : canonicalJson(v));

/** A value list for a message: whole when short, else its first values, the last one and the count (a spec past 64 KiB holds 10⁵ seeds). */
function showValues(values: readonly number[]): string {
  if (values.length <= 8) return show(values);
  const head = values.slice(0, 3).map((v) => canonicalJson(v));
  return `${values.length.toLocaleString('en')} values [${head.join(',')},…,${canonicalJson(values[values.length - 1])}]`;
}

function baseChanges(label: string, stored: Record<string, unknown>, next: Record<string, unknown>, prefix = 'base'): string[] {
  const out: string[] = [];
  for (const key of [...new Set([...Object.keys(stored), ...Object.keys(next)])].sort()) {
    const a = stored[key];
    const b = next[key];
    if (canonicalJson(a ?? null) === canonicalJson(b ?? null)) continue;
    const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (isObject(a) && isObject(b)) out.push(...baseChanges(label, a as Record<string, unknown>, b as Record<string, unknown>, `${prefix}.${key}`));
    else out.push(`condition "${label}": ${prefix}.${key} ${show(a)} → ${show(b)}`);
  }
  return out;
}

const lists = ['seeds', 'extraLr', 'l1', 'alpha', 'q'] as const;

function compareCondition(stored: StudyCondition, next: StudyCondition, out: StudyDifference): void {
  out.changes.push(...baseChanges(next.label, stored.base, next.base));
  if (show(stored.lr) !== show(next.lr)) out.changes.push(`condition "${next.label}": lr ${show(stored.lr)} → ${show(next.lr)}`);
  for (const field of lists) {
    const a = stored[field] as number[] | undefined;
    const b = next[field] as number[] | undefined;
    if (a === undefined && b === undefined) continue;
    if ((a === undefined) !== (b === undefined)) {
      const side = (v: number[] | undefined) => (v === undefined ? '(unset)' : showValues(v));
      out.changes.push(`condition "${next.label}": ${field} ${side(a)} → ${side(b)}`);
      continue;
    }
    // A set: 10⁵ stored seeds against 2·10⁵ new ones is 3·10⁵ look-ups, not 2·10¹⁰ comparisons.
    const had = new Set(a!);
    const added = b!.filter((v) => !had.has(v));
    if (added.length > 0) out.additions.push(`condition "${next.label}": ${field} + ${showValues(added)}`);
  }
}

export function compareStudySpecs(stored: StudySpec, next: StudySpec): StudyDifference {
  const out: StudyDifference = { additions: [], changes: [] };
  for (const old of stored.conditions) {
    if (!next.conditions.some((c) => c.label === old.label)) out.changes.push(`condition "${old.label}" removed`);
  }
  for (const condition of next.conditions) {
    const old = stored.conditions.find((c) => c.label === condition.label);
    if (!old) out.additions.push(`condition "${condition.label}" added`);
    else compareCondition(old, condition, out);
  }
  return out;
}

/**
 * Refuse a changed spec under an existing study name (exit 2), showing the difference; `extend` admits additions.
 * `stored` is the spec in the `studies` table (null: a new study).
 */
export function checkStudyRerun(stored: StudySpec | null, next: StudySpec, options: { extend?: boolean } = {}): StudyDifference {
  const none = { additions: [], changes: [] };
  if (!stored) return none;
  const difference = compareStudySpecs(stored, next);
  const lines = (items: string[]) => items.map((item) => `  ${item}`).join('\n');
  if (difference.changes.length > 0) {
    throw new InvalidSpecError(
      `study "${next.name}" already exists with a different spec:\n${lines(difference.changes)}` +
        (difference.additions.length ? `\n${lines(difference.additions)}` : '') +
        `\nIts trials would be pooled with the old ones. Give the changed study a new name (--name ${next.name}-2), or run the stored spec unchanged.`,
      [],
    );
  }
  if (difference.additions.length > 0 && !options.extend) {
    throw new InvalidSpecError(
      `study "${next.name}" already exists; this spec adds to it:\n${lines(difference.additions)}\n` +
        'Add --extend to run the additions as part of that study (finished trials are reused), or give it a new name.',
      [],
    );
  }
  return difference;
}

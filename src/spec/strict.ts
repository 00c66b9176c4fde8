import type { z } from 'zod';


/**
 * Strict parsing for every spec object (issue 17, W1): an unknown key is an error naming its path, with a "did
 * you mean" when a known key is close. Structural, not per schema: the input is walked against the schema's object
 * shapes, and after a successful parse against the parsed output (zod strips unknown keys, so a key present in
 * the input but absent from the output is unknown). A field or a nested object added to any schema needs nothing
 * special to be checked.
 */

export interface UnknownKey {
  path: (string | number)[];
  key: string;
  suggestion?: string;
}

type Def = { type: string; [k: string]: unknown };
const defOf = (schema: unknown): Def | undefined => (schema as { _zod?: { def?: Def } } | undefined)?._zod?.def;

const wrappers = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch', 'nonoptional', 'lazy']);

/** Every object key the schema allows at `path` (null: any key, e.g. a record). */
export function schemaKeysAt(schema: unknown, path: readonly (string | number)[]): Set<string> | null {
  const def = defOf(schema);
  if (!def) return new Set();
  if (wrappers.has(def.type)) {
    const inner = def.type === 'lazy' ? (def.getter as () => unknown)() : def.innerType;
    return schemaKeysAt(inner, path);
  }
  if (def.type === 'pipe') return schemaKeysAt(def.in, path);
  if (def.type === 'union') {
    const out = new Set<string>();
    for (const option of def.options as unknown[]) {
      const keys = schemaKeysAt(option, path);
      if (keys === null) return null;
      for (const k of keys) out.add(k);
    }
    return out;
  }
  if (def.type === 'intersection') {
    const a = schemaKeysAt(def.left, path);
    const b = schemaKeysAt(def.right, path);
    return a === null || b === null ? null : new Set([...a, ...b]);
  }
  if (def.type === 'object') {
    const shape = def.shape as Record<string, unknown>;
    if (path.length === 0) return def.catchall && defOf(def.catchall)?.type !== 'never' ? null : new Set(Object.keys(shape));
    const [head, ...rest] = path;
    return typeof head === 'string' && head in shape ? schemaKeysAt(shape[head], rest) : new Set();
  }
  if (def.type === 'array') return path.length === 0 ? new Set() : schemaKeysAt(def.element, path.slice(1));
  if (def.type === 'record') return path.length === 0 ? null : schemaKeysAt(def.valueType, path.slice(1));
  // Scalars, unknown, any: no object keys to check below them.
  return def.type === 'unknown' || def.type === 'any' ? null : new Set();
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The known key closest to `key` when it is a plausible typo (case, one or two edits, or a third of its length). */
export function closestKey(key: string, known: Iterable<string>): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = name.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key.toLowerCase(), name.toLowerCase());
    if (!best || distance < best.distance) best = { name, distance };
  }
  if (!best) return undefined;
  return best.distance <= Math.max(2, Math.floor(key.length / 3)) ? best.name : undefined;
}

function walkAgainstSchema(schema: unknown, input: unknown, path: (string | number)[], out: UnknownKey[]): void {
  if (Array.isArray(input)) {
    input.forEach((item, i) => walkAgainstSchema(schema, item, [...path, i], out));
    return;
  }
  if (!isPlainObject(input)) return;
  const known = schemaKeysAt(schema, path);
  for (const [key, value] of Object.entries(input)) {
    if (known !== null && !known.has(key)) {
      out.push({ path, key, suggestion: closestKey(key, known) });
      continue;
    }
    if (known !== null) walkAgainstSchema(schema, value, [...path, key], out);
  }
}

function walkAgainstOutput(schema: unknown, input: unknown, output: unknown, path: (string | number)[], out: UnknownKey[]): void {
  if (Array.isArray(input) && Array.isArray(output)) {
    input.forEach((item, i) => walkAgainstOutput(schema, item, output[i], [...path, i], out));
    return;
  }
  if (!isPlainObject(input) || !isPlainObject(output)) return;
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (!(key in output)) {
      // The parsed object is the union member that matched: its keys are the candidates.
      out.push({ path, key, suggestion: closestKey(key, Object.keys(output)) });
    } else walkAgainstOutput(schema, value, output[key], [...path, key], out);
  }
}

/**
 * The unknown keys of `input` for `schema`; `output` is the successful parse (omit it when the parse failed).
 * A key flagged by both walks is reported once.
 */
export function unknownKeys(schema: unknown, input: unknown, output?: unknown): UnknownKey[] {
  const found: UnknownKey[] = [];
  walkAgainstSchema(schema, input, [], found);
  if (output !== undefined) walkAgainstOutput(schema, input, output, [], found);
  const seen = new Set<string>();
  return found.filter((u) => {
    const id = JSON.stringify([...u.path, u.key]);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** `fidelity.gatescale: unknown key (did you mean gateScale?)` */
export function describeUnknownKey(u: UnknownKey): string {
  return `${[...u.path, u.key].join('.')}: unknown key${u.suggestion ? ` (did you mean ${u.suggestion}?)` : ''}`;
}

/** The issues of a zod parse as `path: message` lines; zod's own unrecognized-key issues get the same wording. */
export function issueLines(schema: z.ZodType, input: unknown, issues: readonly z.core.$ZodIssue[], root: string): string[] {
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const known = schemaKeysAt(schema, issue.path as (string | number)[]) ?? [];
      return issue.keys.map((key) => `  ${describeUnknownKey({ path: issue.path as (string | number)[], key, suggestion: closestKey(key, known) })}`);
    }
    return [`  ${issue.path.length ? issue.path.join('.') : root}: ${issue.message}`];
  });
}

export class InvalidSpecError extends Error {
  /** Invalid input: the CLI exits with 2. */
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly fields: string[],
  ) {
    super(message);
    this.name = 'InvalidSpecError';
  }
}

/**
 * Parse `input` with `schema`, refusing unknown keys anywhere in it. `what` names the input in the message
 * ("trial spec", "study spec"); `root` labels an issue without a path.
 */
export function parseStrict<S extends z.ZodType>(schema: S, input: unknown, what: string, root: string): z.output<S> {
  const parsed = schema.safeParse(input);
  const unknown = unknownKeys(schema, input, parsed.success ? parsed.data : undefined);
  if (parsed.success && unknown.length === 0) return parsed.data;
  const lines = [...unknown.map((u) => `  ${describeUnknownKey(u)}`), ...(parsed.success ? [] : issueLines(schema, input, parsed.error.issues, root))];
  const distinct = lines.filter((line, i) => lines.indexOf(line) === i);
  const fields = [...unknown.map((u) => [...u.path, u.key].join('.')), ...(parsed.success ? [] : parsed.error.issues.map((i) => i.path.join('.')))];
  throw new InvalidSpecError(`invalid ${what}:\n${distinct.join('\n')}`, fields);
}

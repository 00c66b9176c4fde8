/** Argument checks shared by the benchmarks: a bad value is an error naming the flag, never a NaN in a table. */

export function integerArg(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got '${text}'`);
  return n;
}

export function positiveNumberArg(name: string, text: string): number {
  const n = Number(text);
  if (!(n > 0) || !Number.isFinite(n)) throw new Error(`--${name} must be a number > 0, got '${text}'`);
  return n;
}

/** `--backends a,b`: the listed names (all of `known` when absent), each checked against `known`. */
export function backendsArg<T extends string>(text: string | undefined, known: readonly T[]): T[] {
  const names = text ? text.split(',').map((s) => s.trim()) : [...known];
  for (const name of names) {
    if (!(known as readonly string[]).includes(name)) throw new Error(`--backends: unknown backend '${name}' (choose from ${known.join(', ')})`);
  }
  return names as T[];
}

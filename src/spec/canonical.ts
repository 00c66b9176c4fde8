/**
 * Canonical JSON: object keys sorted, numbers normalised, `undefined` members dropped. Two specs that mean the
 * same run serialise to the same string, so their hashes (trial keys) agree. Pure: workflows may import it.
 */

/** Numbers are cut to 15 significant digits so float noise in derived values (e.g. 10^u) cannot change a key. */
export function normaliseNumber(value: number): number {
  if (!Number.isFinite(value)) throw new Error(`canonical JSON: non-finite number ${value} cannot be part of a spec`);
  if (Object.is(value, -0) || value === 0) return 0;
  return Number(value.toPrecision(15));
}

export function canonicalize(value: unknown): unknown {
  if (value === null) return null;
  if (typeof value === 'number') return normaliseNumber(value);
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map((item) => (item === undefined ? null : canonicalize(item)));
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value as object).sort()) {
      const member = (value as Record<string, unknown>)[key];
      if (member !== undefined) out[key] = canonicalize(member);
    }
    return out;
  }
  throw new Error(`canonical JSON: unsupported value of type ${typeof value}`);
}

export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonicalize(value));
}

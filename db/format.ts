/**
 * Rendering query rows for the terminal and for files: an aligned text table, RFC 4180 CSV, or JSON.
 * Shared by `mmsweep results`, `mmsweep sql` and `mmsweep export`.
 */

export const outputFormats = ['table', 'csv', 'json'] as const;
export type OutputFormat = (typeof outputFormats)[number];

export function parseOutputFormat(value: string): OutputFormat {
  if ((outputFormats as readonly string[]).includes(value)) return value as OutputFormat;
  throw new Error(`unknown format "${value}": choose one of ${outputFormats.join(', ')}`);
}

function plain(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
  return value;
}

function cell(value: unknown, forTable: boolean): string {
  const v = plain(value);
  if (v === null || v === undefined) return forTable ? '∅' : '';
  if (typeof v === 'number') {
    if (forTable && !Number.isInteger(v)) return String(Number(v.toPrecision(6)));
    return String(v);
  }
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function formatRows(columns: string[], objects: readonly object[], format: OutputFormat): string {
  const rows = objects as readonly Record<string, unknown>[];
  switch (format) {
    case 'json':
      return JSON.stringify(rows.map((r) => Object.fromEntries(columns.map((c) => [c, plain(r[c]) ?? null]))), null, 2) + '\n';
    case 'csv':
      return [columns.map(csvField).join(','), ...rows.map((r) => columns.map((c) => csvField(cell(r[c], false))).join(','))]
        .map((line) => line + '\n')
        .join('');
    case 'table': {
      const body = rows.map((r) => columns.map((c) => cell(r[c], true)));
      const widths = columns.map((c, i) => Math.max(c.length, ...body.map((line) => line[i].length)));
      const numeric = columns.map((c) => rows.some((r) => typeof r[c] === 'number'));
      const render = (line: string[]) =>
        line.map((text, i) => (numeric[i] ? text.padStart(widths[i]) : text.padEnd(widths[i]))).join('  ').trimEnd();
      const out = [render(columns), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(render)];
      out.push(`(${rows.length} row${rows.length === 1 ? '' : 's'})`);
      return out.join('\n') + '\n';
    }
  }
}

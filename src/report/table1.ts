/**
 * Table 1: test accuracy A(f) of ŷ — the best-validation model re-evaluated in regular mode, for every algorithm
 * alike (paper-spec A12) — mean ± sample std (n) per algorithm × dataset, the uni-modal best row, the CMNIST
 * gray-branch note, and the paper's published values beside ours with the difference (ours − paper).
 *
 * Which trials enter a cell: finished multi-modal trials with distinct modalities and no L1 penalty, grouped by
 * dataset column and algorithm. Diverged trials are counted (`nDiverged`) but left out of the mean: a NaN-loss model
 * has no meaningful accuracy and the paper's runs did not diverge. A cell pooling several learning rates or profiles
 * lists them (`lrs`, `profiles`) so a reader sees when a sweep rather than the paper's single setting was averaged.
 * In the `code` profile the trainer's own test accuracy was measured in whatever balancing mode it was in at the
 * best epoch (D9: guided and random with one gate replaced by a constant); where that differs from A(f) the cell
 * carries it as `currentMode`, shown beside and labelled.
 */
import { PAPER_COLUMNS, columnLabel, type DatasetColumn, type ReportTrial } from './model.ts';
import {
  PUBLISHED_CMNIST_GUIDED_GRAY_BRANCH,
  PUBLISHED_TABLE1,
  TABLE1_ROWS,
  TABLE1_ROW_LABELS,
  type PublishedValue,
  type Table1RowKey,
} from './paper-values.ts';
import { mean, sampleStd } from './stats.ts';

export interface Summary {
  n: number;
  mean: number;
  std: number;
}

export interface Table1Cell extends Summary {
  nDiverged: number;
  lrs: number[];
  profiles: string[];
  /**
   * The trainer's test accuracy at the best epoch, measured in its balancing mode of the moment (`code` profile,
   * D9), over the same trials; null when it equals A(f) for every trial of the cell.
   */
  currentMode: Summary | null;
  /** Uni-modal row only: the modality whose SE network had the higher mean. */
  modality: 0 | 1 | null;
  paper: PublishedValue | null;
  /** Ours − paper (percentage points); null without a published value. */
  diff: number | null;
}

export interface Table1Row {
  key: Table1RowKey;
  label: string;
  cells: Partial<Record<DatasetColumn, Table1Cell>>;
}

export interface GrayBranchNote extends Summary {
  paper: PublishedValue;
  diff: number;
}

export interface Table1 {
  /** Dataset columns for which at least one trial exists, in the paper's order. */
  columns: DatasetColumn[];
  rows: Table1Row[];
  /** CMNIST guided (distinct): test accuracy of the gray branch ŷ1, A(f1). Null without such trials. */
  grayBranch: GrayBranchNote | null;
  /** Dataset variants with finished trials (no L1 penalty) that Table 1 leaves out, with their trial counts. */
  excluded: { column: DatasetColumn; n: number }[];
}


export function summarize(values: readonly number[]): Summary {
  return { n: values.length, mean: mean(values), std: sampleStd(values) };
}

function sortedUnique<T extends string | number>(values: T[]): T[] {
  return [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function cellOf(trials: ReportTrial[], paper: PublishedValue | null, modality: 0 | 1 | null): Table1Cell | null {
  const finished = trials.filter((t) => t.result !== null);
  if (finished.length === 0) return null;
  const ok = finished.filter((t) => !t.result!.diverged && Number.isFinite(regularModeAccuracy(t)));
  const s = summarize(ok.map(regularModeAccuracy));
  // Stored results agree to the bit when both passes ran in regular mode; 1e-9 only absorbs a float round trip.
  const differs = ok.some((t) => Math.abs(t.result!.testAcc - regularModeAccuracy(t)) > 1e-9);
  return {
    ...s,
    currentMode: differs ? summarize(ok.map((t) => t.result!.testAcc)) : null,
    nDiverged: finished.length - ok.length,
    lrs: sortedUnique(finished.map((t) => t.lr)),
    profiles: sortedUnique(finished.map((t) => t.profile)),
    modality,
    paper,
    diff: paper && s.n > 0 ? s.mean - paper.mean : null,
  };
}

/** A(f): the regular-mode test accuracy of ŷ (results stored without one default it to testAcc, db/store.ts). */
function regularModeAccuracy(t: ReportTrial): number {
  return t.result!.accF ?? t.result!.testAcc;
}

export function buildTable1(trials: readonly ReportTrial[]): Table1 {
  const eligible = trials.filter((t) => t.l1 === 0);
  const present = new Set(eligible.map((t) => t.column));
  // Only the paper's columns: other dataset variants have no Table 1 counterpart (they appear in conditions.csv).
  const columns: DatasetColumn[] = PAPER_COLUMNS.filter((c) => present.has(c));
  const rows: Table1Row[] = TABLE1_ROWS.map((key) => ({ key, label: TABLE1_ROW_LABELS[key], cells: {} }));
  for (const column of columns) {
    const published = PUBLISHED_TABLE1[column] ?? {};
    const inColumn = eligible.filter((t) => t.column === column);
    for (const row of rows) {
      const paper = published[row.key] ?? null;
      if (row.key === 'unimodal') {
        const candidates = ([0, 1] as const)
          .map((m) => cellOf(inColumn.filter((t) => t.architecture === 'unimodal-se' && t.unimodalModality === m), paper, m))
          .filter((c): c is Table1Cell => c !== null && c.n > 0);
        // Ties keep m0, the order the paper lists modalities in.
        const best = candidates.reduce<Table1Cell | null>((b, c) => (b === null || c.mean > b.mean ? c : b), null);
        if (best) row.cells[column] = best;
      } else {
        const cell = cellOf(
          inColumn.filter((t) => t.architecture === 'mmtm' && t.modalities === 'distinct' && t.algorithm === row.key),
          paper,
          null,
        );
        if (cell) row.cells[column] = cell;
      }
    }
  }
  const grayTrials = eligible.filter(
    (t) =>
      t.column === 'cmnist' &&
      t.architecture === 'mmtm' &&
      t.modalities === 'distinct' &&
      t.algorithm === 'guided' &&
      t.result !== null &&
      !t.result.diverged &&
      t.result.accF1 !== null,
  );
  const gray = summarize(grayTrials.map((t) => t.result!.accF1!));
  const grayBranch =
    gray.n > 0
      ? { ...gray, paper: PUBLISHED_CMNIST_GUIDED_GRAY_BRANCH, diff: gray.mean - PUBLISHED_CMNIST_GUIDED_GRAY_BRANCH.mean }
      : null;
  const excludedCounts = new Map<DatasetColumn, number>();
  for (const t of eligible) {
    if (t.result !== null && !columns.includes(t.column)) excludedCounts.set(t.column, (excludedCounts.get(t.column) ?? 0) + 1);
  }
  const excluded = [...excludedCounts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([column, n]) => ({ column, n }));
  return { columns, rows, grayBranch, excluded };
}

/**
 * What a dataset variant column (`cmnist:heldOutVal=5000`, db/conditions.ts) changes from the paper's setting, in
 * words: why Table 1 does not pool it with the paper's numbers.
 */
export function describeVariant(column: DatasetColumn): string {
  const [dataset, variant] = column.split(/:(.*)/s) as [string, string | undefined];
  if (!variant) return column;
  const parts = variant.split(',').map((part) => {
    const [key, value] = part.split('=') as [string, string | undefined];
    if (key === 'heldOutVal') return `validation on ${value} held-out training digits (the paper validates on the test digits)`;
    if (key === 'sigma2') return `color jitter σ² ${value} (the paper: 0.02)`;
    return part;
  });
  return `${column}: ${dataset} with ${parts.join(', ')}`;
}

function excludedText(excluded: Table1['excluded']): string {
  return excluded.map((e) => `${describeVariant(e.column)} — ${e.n} finished trial${e.n === 1 ? '' : 's'}`).join('; ');
}

/** How the report names the trainer's own (balancing-mode) test accuracy wherever it shows it beside A(f). */
export const CURRENT_MODE_LABEL = 'test acc. in the trainer\'s balancing mode (code profile, paper-spec D9)';

export function formatNumber(value: number | null, digits = 2): string {
  if (value === null || Number.isNaN(value)) return '—';
  return value.toFixed(digits);
}

export function formatMeanStd(s: { mean: number; std: number | null; n?: number }): string {
  const std = s.std === null || Number.isNaN(s.std) ? '—' : s.std.toFixed(2);
  const n = s.n === undefined ? '' : ` (${s.n})`;
  return `${formatNumber(s.mean)} ± ${std}${n}`;
}

export function formatDiff(diff: number | null): string {
  if (diff === null || Number.isNaN(diff)) return '—';
  return `${diff >= 0 ? '+' : '−'}${Math.abs(diff).toFixed(2)}`;
}

export const TABLE1_CSV_COLUMNS = [
  'row',
  'row_label',
  'dataset',
  'n',
  'mean',
  'std',
  'n_diverged',
  'modality',
  'paper_mean',
  'paper_std',
  'diff',
  'current_mode_mean',
  'current_mode_std',
  'lrs',
  'profiles',
] as const;

/** Long-format CSV rows of Table 1 (one row per cell we have), numbers unrounded. */
export function table1CsvRows(table: Table1): Record<string, string | number | null>[] {
  const out: Record<string, string | number | null>[] = [];
  for (const row of table.rows) {
    for (const column of table.columns) {
      const cell = row.cells[column];
      const paper = PUBLISHED_TABLE1[column]?.[row.key] ?? null;
      out.push({
        row: row.key,
        row_label: row.label,
        dataset: column,
        n: cell?.n ?? 0,
        mean: cell && cell.n > 0 ? cell.mean : null,
        std: cell && cell.n > 1 ? cell.std : null,
        n_diverged: cell?.nDiverged ?? 0,
        modality: cell?.modality ?? null,
        paper_mean: paper?.mean ?? null,
        paper_std: paper?.std ?? null,
        diff: cell?.diff ?? null,
        current_mode_mean: cell?.currentMode ? cell.currentMode.mean : null,
        current_mode_std: cell?.currentMode && cell.currentMode.n > 1 ? cell.currentMode.std : null,
        lrs: cell ? cell.lrs.join(' ') : '',
        profiles: cell ? cell.profiles.join(' ') : '',
      });
    }
  }
  if (table.grayBranch) {
    const g = table.grayBranch;
    out.push({
      row: 'cmnist-guided-gray-branch',
      row_label: 'gray branch ŷ1 of the guided multi-modal DNNs (footnote 1)',
      dataset: 'cmnist',
      n: g.n,
      mean: g.mean,
      std: g.n > 1 ? g.std : null,
      n_diverged: 0,
      modality: 1,
      paper_mean: g.paper.mean,
      paper_std: g.paper.std,
      diff: g.diff,
      current_mode_mean: null,
      current_mode_std: null,
      lrs: '',
      profiles: '',
    });
  }
  return out;
}

/** Why a Table 1 without columns is empty: nothing finished, or only trials of dataset variants it leaves out. */
export function table1EmptyReason(table: Table1): string {
  if (table.excluded.length === 0) return 'no finished trials yet.';
  return (
    `not drawn — it compares the paper's dataset settings only, and every finished trial uses a variant: ` +
    `${excludedText(table.excluded)}. Their numbers are in tables/conditions.csv (and tables/methods.csv).`
  );
}

/** Table 1 as fixed-width text for the terminal: "ours mean ± std (n) | paper mean ± std | diff" per cell. */
export function table1Text(table: Table1): string {
  if (table.columns.length === 0) return `Table 1: ${table1EmptyReason(table)}`;
  const header = ['', ...table.columns.flatMap((c) => [columnLabel(c), 'paper', 'Δ'])];
  const lines: string[][] = [header];
  for (const row of table.rows) {
    const cells = table.columns.flatMap((c) => {
      const cell = row.cells[c];
      const paper = PUBLISHED_TABLE1[c]?.[row.key];
      const ours = cell && cell.n > 0 ? formatMeanStd(cell) + (cell.modality !== null ? ` m${cell.modality}` : '') : '—';
      return [ours, paper ? formatMeanStd(paper) : '—', formatDiff(cell?.diff ?? null)];
    });
    lines.push([row.label, ...cells]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => [...l[i]].length)));
  const pad = (s: string, w: number, left: boolean) => (left ? s + ' '.repeat(w - [...s].length) : ' '.repeat(w - [...s].length) + s);
  const text = lines.map((l) => l.map((s, i) => pad(s, widths[i], i === 0)).join('  ')).join('\n');
  const notes: string[] = ['Test accuracy A(f) (%) of ŷ in regular mode, mean ± sample std (n); Δ = ours − paper.'];
  if (table.grayBranch) {
    const g = table.grayBranch;
    notes.push(
      `CMNIST guided, gray branch ŷ1: ${formatMeanStd(g)} (paper ${formatMeanStd(g.paper)}, Δ ${formatDiff(g.diff)}).`,
    );
  }
  const pooled = table.rows.flatMap((r) =>
    table.columns
      .filter((c) => (r.cells[c]?.lrs.length ?? 0) > 1)
      .map((c) => `${r.label} / ${columnLabel(c)} pools lr ∈ {${r.cells[c]!.lrs.join(', ')}}`),
  );
  if (pooled.length) notes.push(...pooled);
  const currentMode = table.rows.flatMap((r) =>
    table.columns
      .filter((c) => r.cells[c]?.currentMode)
      .map((c) => `${r.label} / ${columnLabel(c)}: ${CURRENT_MODE_LABEL} ${formatMeanStd(r.cells[c]!.currentMode!)}`),
  );
  if (currentMode.length) notes.push(...currentMode);
  if (table.excluded.length) notes.push(`Not in Table 1 (a dataset variant of the paper's setting): ${excludedText(table.excluded)}.`);
  return `${text}\n${notes.join('\n')}`;
}

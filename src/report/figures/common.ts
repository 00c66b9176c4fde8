/** What every figure family shares: the Figure shape, the Vega-Lite top level, ids, condition grouping. */
import type { TopLevelSpec } from 'vega-lite';
import { conditionLabel, type DatasetColumn, PAPER_COLUMNS, type ReportTrial } from '../model.ts';

export type FigureSection = 'distributions' | 'proxy' | 'sweeps' | 'l1' | 'curves' | 'timeline';

export interface Figure {
  /** File stem of figures/<id>.svg|png; lowercase letters, digits and dashes. */
  id: string;
  section: FigureSection;
  title: string;
  caption: string;
  spec: TopLevelSpec;
}

/** Font used by every figure; the PNG rasteriser loads the same family from the system (see render.ts). */
export const FIGURE_FONT = 'DejaVu Sans';

// Vega-Lite spec fragments are assembled as plain JSON; the top level is checked by `compile` at render time.
export type Spec = Record<string, unknown>;

export function topLevel(spec: Spec): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    background: 'white',
    padding: 8,
    config: {
      font: FIGURE_FONT,
      title: { fontSize: 13, anchor: 'start' },
      axis: { labelFontSize: 10, titleFontSize: 11 },
      legend: { labelFontSize: 10, titleFontSize: 11, labelLimit: 320 },
      view: { stroke: '#ddd' },
    },
    ...spec,
  } as unknown as TopLevelSpec;
}

export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

const ALGORITHM_ORDER = ['vanilla', 'guided', 'random', 'rubi', 'ogm-ge', 'gradient-blending', 'pmr', 'mmpareto', 'agm'];
const MODALITY_ORDER = ['distinct', 'duplicate-m0', 'duplicate-m1'];

function conditionOrder(t: ReportTrial): number {
  const arch = t.architecture === 'unimodal-se' ? 100 + (t.unimodalModality ?? 0) : t.architecture === 'late-fusion' ? 50 : 0;
  return arch + ALGORITHM_ORDER.indexOf(t.algorithm) * 3 + MODALITY_ORDER.indexOf(t.modalities);
}

export interface ConditionGroup {
  key: string;
  label: string;
  column: DatasetColumn;
  trials: ReportTrial[];
}

/**
 * Groups trials by condition: dataset column, architecture, modalities, algorithm and profile (the profile shows in
 * the label only when a column mixes profiles). Ordered as the paper's figures: vanilla distinct, its duplicated
 * controls, then guided, random, RUBi.
 */
export function groupByCondition(trials: readonly ReportTrial[]): ConditionGroup[] {
  const profilesPerColumn = new Map<DatasetColumn, Set<string>>();
  for (const t of trials) {
    if (!profilesPerColumn.has(t.column)) profilesPerColumn.set(t.column, new Set());
    profilesPerColumn.get(t.column)!.add(t.profile);
  }
  const groups = new Map<string, ConditionGroup & { order: number }>();
  for (const t of trials) {
    const base = conditionLabel(t);
    const key = `${base} · ${t.profile}`;
    const label = profilesPerColumn.get(t.column)!.size > 1 ? key : base;
    if (!groups.has(key)) groups.set(key, { key, label, column: t.column, trials: [], order: conditionOrder(t) });
    groups.get(key)!.trials.push(t);
  }
  const columnOrder = (c: string) => {
    const i = (PAPER_COLUMNS as readonly string[]).indexOf(c);
    return i < 0 ? PAPER_COLUMNS.length : i;
  };
  return [...groups.values()]
    .sort((a, b) => columnOrder(a.column) - columnOrder(b.column) || a.column.localeCompare(b.column) || a.order - b.order || a.key.localeCompare(b.key))
    .map(({ order: _order, ...g }) => g);
}

/** Finished, non-diverged trials without L1 penalty: the population of the distributions and sweeps. */
export function sweepPopulation(trials: readonly ReportTrial[]): ReportTrial[] {
  return trials.filter((t) => t.result !== null && !t.result.diverged && t.l1 === 0);
}

export function fmt(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

/** A log-scale domain padded by a quarter decade on each side so that the extreme points are not on the frame. */
export function logDomain(values: readonly number[]): Spec {
  const positive = values.filter((v) => v > 0);
  if (positive.length === 0) return { type: 'log' };
  const lo = Math.min(...positive);
  const hi = Math.max(...positive);
  return { type: 'log', domain: [lo / 10 ** 0.25, hi * 10 ** 0.25], nice: false };
}

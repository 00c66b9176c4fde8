/**
 * Pure builders: report data in, figures (Vega-Lite specs with their data inlined) and CSV rows out. Every plotted
 * number is computed here (bins, densities, means, bands, correlations), not by Vega transforms, so the tests can
 * read it back from the spec and the CSV and compare it with a hand computation.
 */
import type { TopLevelSpec } from 'vega-lite';
import {
  PAPER_COLUMNS,
  columnLabel,
  conditionLabel,
  type DatasetColumn,
  type ReportEpoch,
  type ReportTrial,
  type TimelineTrial,
} from './model.ts';
import {
  binEdges,
  defaultBinCount,
  densityCurve,
  histogram,
  mean,
  pearson,
  sampleStd,
  type DensityCurve,
  type HistogramBin,
} from './stats.ts';

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
type Spec = Record<string, unknown>;

function topLevel(spec: Spec): TopLevelSpec {
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

const ALGORITHM_ORDER = ['vanilla', 'guided', 'random', 'rubi'];
const MODALITY_ORDER = ['distinct', 'duplicate-m0', 'duplicate-m1'];

function conditionOrder(t: ReportTrial): number {
  const arch = t.architecture === 'unimodal-se' ? 100 + (t.unimodalModality ?? 0) : 0;
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
function sweepPopulation(trials: readonly ReportTrial[]): ReportTrial[] {
  return trials.filter((t) => t.result !== null && !t.result.diverged && t.l1 === 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Distributions (Figures 2, 5): histogram + Gaussian KDE per condition, zero and E[·] marked.

export type DistributionQuantity = 'dUtil' | 'dSpeed';
export const QUANTITY_LABELS: Record<DistributionQuantity, string> = { dUtil: 'd_util', dSpeed: 'd_speed' };

export interface DistributionPanel {
  condition: string;
  n: number;
  mean: number;
  std: number;
  bins: HistogramBin[];
  density: DensityCurve | null;
}

export interface DistributionFigure extends Figure {
  column: DatasetColumn;
  quantity: DistributionQuantity;
  panels: DistributionPanel[];
}

function fmt(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function distributionPanelSpec(panel: DistributionPanel, quantity: DistributionQuantity, width: number): Spec {
  const q = QUANTITY_LABELS[quantity];
  const x = { field: 'x', type: 'quantitative', title: q };
  const layers: Spec[] = [
    {
      data: { values: panel.bins.map((b) => ({ start: b.start, end: b.end, count: b.count, density: b.density })) },
      mark: { type: 'rect', color: '#9ecae1', stroke: '#4a7fb0', strokeWidth: 0.5 },
      encoding: {
        x: { field: 'start', type: 'quantitative', title: q },
        x2: { field: 'end' },
        y: { field: 'density', type: 'quantitative', title: 'density' },
        y2: { datum: 0 },
        tooltip: [
          { field: 'start', format: '.3f' },
          { field: 'end', format: '.3f' },
          { field: 'count' },
        ],
      },
    },
  ];
  if (panel.density) {
    layers.push({
      data: { values: panel.density.points.map((p) => ({ x: p.x, density: p.density })) },
      mark: { type: 'line', color: '#08306b', strokeWidth: 1.6 },
      encoding: { x, y: { field: 'density', type: 'quantitative' } },
    });
  }
  layers.push(
    {
      data: { values: [{ x: 0, label: '0' }] },
      mark: { type: 'rule', color: '#333', strokeDash: [4, 3] },
      encoding: { x },
    },
    {
      data: { values: [{ x: panel.mean, label: `E[${q}] = ${fmt(panel.mean)}` }] },
      mark: { type: 'rule', color: '#d62728', strokeWidth: 2 },
      encoding: { x },
    },
    {
      data: { values: [{ x: panel.mean, label: `E[${q}] = ${fmt(panel.mean)}` }] },
      mark: { type: 'text', color: '#d62728', align: 'left', dx: 4, dy: -4, baseline: 'top', fontSize: 11 },
      encoding: { x, y: { value: 0 }, text: { field: 'label' } },
    },
  );
  return {
    title: `${panel.condition}  (n = ${panel.n}${panel.density ? '' : panel.n > 1 ? ', all equal: no density curve' : ''})`,
    width,
    height: 120,
    layer: layers,
  };
}

export function buildDistributions(
  trials: readonly ReportTrial[],
  options: { binCount?: number } = {},
): { figures: DistributionFigure[]; rows: Record<string, unknown>[] } {
  const population = sweepPopulation(trials).filter((t) => t.architecture === 'mmtm');
  const figures: DistributionFigure[] = [];
  const rows: Record<string, unknown>[] = [];
  const columns = [...new Set(population.map((t) => t.column))];
  for (const quantity of ['dUtil', 'dSpeed'] as const) {
    for (const column of columns) {
      const groups = groupByCondition(population.filter((t) => t.column === column));
      const valued = groups
        .map((g) => ({ g, values: g.trials.map((t) => t.result![quantity]).filter((v): v is number => v !== null && Number.isFinite(v)) }))
        .filter((x) => x.values.length > 0);
      if (valued.length === 0) continue;
      const all = valued.flatMap((x) => x.values);
      const binCount = options.binCount ?? defaultBinCount(Math.max(...valued.map((x) => x.values.length)));
      // One set of edges for every panel of the figure so that conditions compare bar by bar.
      const edges = binEdges(Math.min(...all), Math.max(...all), binCount);
      const panels: DistributionPanel[] = valued.map(({ g, values }) => ({
        condition: g.label,
        n: values.length,
        mean: mean(values),
        std: sampleStd(values),
        bins: histogram(values, edges),
        density: densityCurve(values),
      }));
      for (const p of panels) {
        rows.push({
          quantity: QUANTITY_LABELS[quantity],
          dataset: column,
          condition: p.condition,
          n: p.n,
          mean: p.mean,
          std: p.n > 1 ? p.std : null,
          kde_bandwidth: p.density?.bandwidth ?? null,
          bin_width: edges[1] - edges[0],
          bin_counts: p.bins.map((b) => b.count).join(' '),
        });
      }
      const q = QUANTITY_LABELS[quantity];
      const title = `${columnLabel(column)}: distribution of ${q}`;
      figures.push({
        id: `dist-${slug(q)}-${slug(column)}`,
        section: 'distributions',
        title,
        caption:
          `Histogram (bars, density scale) and Gaussian kernel density (line, Silverman bandwidth) of ${q} per ` +
          `condition; dashed line at 0, red line at E[${q}]. Finished, non-diverged trials without L1 penalty.`,
        column,
        quantity,
        panels,
        spec: topLevel({
          title,
          vconcat: panels.map((p) => distributionPanelSpec(p, quantity, 460)),
          resolve: { scale: { x: 'shared' } },
        }),
      });
    }
  }
  return { figures, rows };
}

// ---------------------------------------------------------------------------------------------------------------
// Proxy check: d_speed against d_util over all trials of a study.

export interface ScatterFigure extends Figure {
  studyName: string;
  n: number;
  r: number;
  points: { dUtil: number; dSpeed: number; condition: string; trialKey: string }[];
}

export function buildProxyScatter(trials: readonly ReportTrial[]): { figures: ScatterFigure[]; rows: Record<string, unknown>[] } {
  const figures: ScatterFigure[] = [];
  const rows: Record<string, unknown>[] = [];
  const studies = [...new Set(trials.flatMap((t) => t.studyNames))];
  for (const studyName of studies) {
    const usable = trials.filter(
      (t) =>
        t.studyNames.includes(studyName) &&
        t.architecture === 'mmtm' &&
        t.result !== null &&
        !t.result.diverged &&
        t.result.dUtil !== null &&
        t.result.dSpeed !== null &&
        Number.isFinite(t.result.dUtil) &&
        Number.isFinite(t.result.dSpeed),
    );
    if (usable.length === 0) continue;
    const labels = new Map(groupByCondition(usable).flatMap((g) => g.trials.map((t) => [t.trialKey, g.label] as const)));
    const points = usable.map((t) => ({
      dUtil: t.result!.dUtil!,
      dSpeed: t.result!.dSpeed!,
      condition: labels.get(t.trialKey)!,
      trialKey: t.trialKey,
    }));
    const r = pearson(
      points.map((p) => p.dUtil),
      points.map((p) => p.dSpeed),
    );
    rows.push({ study: studyName, condition: '(all)', n: points.length, pearson_r: Number.isFinite(r) ? r : null });
    for (const g of groupByCondition(usable)) {
      const ps = points.filter((p) => p.condition === g.label);
      const rg = pearson(
        ps.map((p) => p.dUtil),
        ps.map((p) => p.dSpeed),
      );
      rows.push({ study: studyName, condition: g.label, n: ps.length, pearson_r: Number.isFinite(rg) ? rg : null });
    }
    const rText = Number.isFinite(r) ? fmt(r) : 'undefined: a variable is constant';
    const title = `${studyName}: d_speed vs d_util (Pearson r = ${rText}, n = ${points.length})`;
    figures.push({
      id: `proxy-${slug(studyName)}`,
      section: 'proxy',
      title,
      caption:
        'Each point is one trial: conditional utilization d_util (x) against conditional learning speed d_speed ' +
        '(y) at the best-validation step. The correlation tests d_speed as a proxy of d_util (§5).',
      studyName,
      n: points.length,
      r,
      points,
      spec: topLevel({
        title,
        width: 460,
        height: 320,
        layer: [
          {
            data: { values: [{ v: 0 }] },
            layer: [
              { mark: { type: 'rule', color: '#999', strokeDash: [4, 3] }, encoding: { x: { field: 'v', type: 'quantitative' } } },
              { mark: { type: 'rule', color: '#999', strokeDash: [4, 3] }, encoding: { y: { field: 'v', type: 'quantitative' } } },
            ],
          },
          {
            data: { values: points },
            mark: { type: 'point', filled: true, size: 40, opacity: 0.8 },
            encoding: {
              // Padding keeps extreme points and the zero lines off the frame.
              x: { field: 'dUtil', type: 'quantitative', title: 'd_util', scale: { zero: false, padding: 12 } },
              y: { field: 'dSpeed', type: 'quantitative', title: 'd_speed', scale: { zero: false, padding: 12 } },
              color: { field: 'condition', type: 'nominal', title: 'condition', legend: { orient: 'bottom', columns: 1 } },
              tooltip: [{ field: 'trialKey' }, { field: 'dUtil', format: '.4f' }, { field: 'dSpeed', format: '.4f' }],
            },
          },
        ],
      }),
    });
  }
  return { figures, rows };
}

// ---------------------------------------------------------------------------------------------------------------
// Sweeps (Figures 3-style): metric against learning rate, mean line and min–max band over seeds.

export type SweepMetric = 'testAcc' | 'dUtil';
const SWEEP_LABELS: Record<SweepMetric, string> = { testAcc: 'test accuracy (%)', dUtil: 'd_util' };

export interface SweepPoint {
  condition: string;
  /** The learning rate, or the geometric centre of a learning-rate bin (`lrFrom`–`lrTo`). */
  lr: number;
  lrFrom?: number;
  lrTo?: number;
  n: number;
  mean: number;
  std: number | null;
  min: number;
  max: number;
}

/**
 * Groups a condition's trials by learning rate. A grid sweep repeats each rate over seeds: one pool per rate. A
 * log-uniform sample gives (almost) every trial its own rate, where per-rate "bands" would be single points: then the
 * rates are pooled into ⌈√n⌉ (at most 10) log-spaced bins.
 */
export function poolByLearningRate(values: readonly { lr: number; value: number }[]): {
  binned: boolean;
  pools: { lr: number; from: number; to: number; values: number[] }[];
} {
  const byLr = new Map<number, number[]>();
  for (const v of values) {
    if (!byLr.has(v.lr)) byLr.set(v.lr, []);
    byLr.get(v.lr)!.push(v.value);
  }
  const repeated = [...byLr.values()].some((vs) => vs.length > 1);
  if (repeated || byLr.size <= 5) {
    return {
      binned: false,
      pools: [...byLr.entries()].sort((a, b) => a[0] - b[0]).map(([lr, vs]) => ({ lr, from: lr, to: lr, values: vs })),
    };
  }
  const logs = values.map((v) => Math.log10(v.lr));
  const lo = Math.min(...logs);
  const hi = Math.max(...logs);
  const k = Math.min(10, Math.ceil(Math.sqrt(values.length)));
  const edges = binEdges(lo, hi, k);
  const pools = edges.slice(0, -1).map((from, i) => ({
    lr: 10 ** ((from + edges[i + 1]) / 2),
    from: 10 ** from,
    to: 10 ** edges[i + 1],
    values: [] as number[],
  }));
  values.forEach((v, i) => {
    let b = Math.floor(((logs[i] - lo) / (hi - lo)) * k);
    if (b >= k) b = k - 1;
    pools[b].values.push(v.value);
  });
  return { binned: true, pools: pools.filter((p) => p.values.length > 0) };
}

export interface SweepFigure extends Figure {
  column: DatasetColumn;
  metric: SweepMetric;
  points: SweepPoint[];
}

export function buildSweeps(trials: readonly ReportTrial[]): { figures: SweepFigure[]; rows: Record<string, unknown>[] } {
  const population = sweepPopulation(trials);
  const figures: SweepFigure[] = [];
  const rows: Record<string, unknown>[] = [];
  const columns = [...new Set(population.map((t) => t.column))];
  for (const metric of ['testAcc', 'dUtil'] as const) {
    for (const column of columns) {
      const groups = groupByCondition(population.filter((t) => t.column === column)).filter(
        (g) => new Set(g.trials.map((t) => t.lr)).size >= 2,
      );
      const points: SweepPoint[] = [];
      const trialPoints: { condition: string; lr: number; value: number; seed: number }[] = [];
      let binned = false;
      for (const g of groups) {
        const valued = g.trials
          .map((t) => ({ lr: t.lr, seed: t.seed, value: t.result![metric] }))
          .filter((v): v is { lr: number; seed: number; value: number } => v.value !== null && Number.isFinite(v.value));
        for (const v of valued) trialPoints.push({ condition: g.label, ...v });
        const pools = poolByLearningRate(valued);
        binned ||= pools.binned;
        for (const pool of pools.pools) {
          const values = pool.values;
          const s = sampleStd(values);
          points.push({
            condition: g.label,
            lr: pool.lr,
            ...(pools.binned ? { lrFrom: pool.from, lrTo: pool.to } : {}),
            n: values.length,
            mean: mean(values),
            std: Number.isFinite(s) ? s : null,
            min: Math.min(...values),
            max: Math.max(...values),
          });
        }
      }
      if (points.length === 0) continue;
      for (const p of points) {
        rows.push({
          metric: SWEEP_LABELS[metric],
          dataset: column,
          condition: p.condition,
          lr: p.lr,
          lr_from: p.lrFrom ?? p.lr,
          lr_to: p.lrTo ?? p.lr,
          n: p.n,
          mean: p.mean,
          std: p.std,
          min: p.min,
          max: p.max,
        });
      }
      const label = SWEEP_LABELS[metric];
      const title = `${columnLabel(column)}: ${label} vs learning rate`;
      const lrs = trialPoints.map((p) => p.lr);
      const x = { field: 'lr', type: 'quantitative', scale: logDomain(lrs), title: 'learning rate (log scale)', axis: { format: '~g', labelOverlap: 'greedy', labelSeparation: 4 } };
      const color = { field: 'condition', type: 'nominal', title: 'condition', legend: { orient: 'bottom', columns: 1, symbolOpacity: 1 } };
      const layers: Spec[] = [
        {
          data: { values: points },
          mark: { type: 'area', opacity: 0.2 },
          encoding: { x, y: { field: 'min', type: 'quantitative', title: label, scale: { zero: false } }, y2: { field: 'max' }, color },
        },
        {
          data: { values: points },
          mark: { type: 'line', point: true },
          encoding: {
            x,
            y: { field: 'mean', type: 'quantitative', title: label },
            color,
            tooltip: [{ field: 'condition' }, { field: 'lr' }, { field: 'n' }, { field: 'mean', format: '.4f' }],
          },
        },
        {
          data: { values: trialPoints },
          mark: { type: 'point', size: 14, opacity: 0.5 },
          encoding: { x, y: { field: 'value', type: 'quantitative' }, color },
        },
      ];
      if (metric === 'dUtil') {
        layers.unshift({
          data: { values: [{ y: 0 }] },
          mark: { type: 'rule', color: '#999', strokeDash: [4, 3] },
          encoding: { y: { field: 'y', type: 'quantitative' } },
        });
      }
      figures.push({
        id: `sweep-${slug(metric)}-${slug(column)}`,
        section: 'sweeps',
        title,
        caption:
          `Mean over seeds (line) with the min–max band over seeds and each trial as a small point; ${label} against the learning rate on a log axis.` +
          (binned
            ? ' Learning rates drawn per trial (log-uniform sample) rarely repeat, so trials are pooled into log-spaced learning-rate bins (line at each bin\'s geometric centre).'
            : ''),
        column,
        metric,
        points,
        spec: topLevel({ title, width: 460, height: 260, layer: layers }),
      });
    }
  }
  return { figures, rows };
}

// ---------------------------------------------------------------------------------------------------------------
// L1 study (Figures 3, 4, 8): R(f) against λ; |d_util| and |d_speed| against R(f).

/** A log-scale domain padded by a quarter decade on each side so that the extreme points are not on the frame. */
function logDomain(values: readonly number[]): Spec {
  const positive = values.filter((v) => v > 0);
  if (positive.length === 0) return { type: 'log' };
  const lo = Math.min(...positive);
  const hi = Math.max(...positive);
  return { type: 'log', domain: [lo / 10 ** 0.25, hi * 10 ** 0.25], nice: false };
}

function lambdaLabel(lambda: number): string {
  return lambda === 0 ? '0' : lambda.toExponential(2).replace(/\.?0+e/, 'e');
}

export interface L1Point {
  condition: string;
  lambda: number;
  n: number;
  meanRf: number;
  stdRf: number | null;
  meanAbsDUtil: number | null;
  meanAbsDSpeed: number | null;
}

export interface L1Figures {
  figures: Figure[];
  rows: Record<string, unknown>[];
  points: L1Point[];
  /** Correlations of R(f) with |d_util| and |d_speed| over trials, per condition. */
  correlations: { condition: string; n: number; rAbsDUtil: number; rAbsDSpeed: number }[];
}

export function buildL1(trials: readonly ReportTrial[]): L1Figures {
  const finished = trials.filter((t) => t.result !== null && !t.result.diverged && t.result.rF !== null);
  // An L1 study fixes the learning rate: split each condition by lr and keep those that vary λ (λ = 0 trials at the
  // same lr, e.g. from a sweep reported alongside, are the unregularised baseline).
  const groups = groupByCondition(finished)
    .flatMap((g) =>
      [...new Set(g.trials.map((t) => t.lr))]
        .sort((a, b) => a - b)
        .map((lr) => ({ ...g, label: `${g.label} · lr ${lr}`, trials: g.trials.filter((t) => t.lr === lr) })),
    )
    .filter((g) => new Set(g.trials.map((t) => t.l1)).size >= 2);
  const out: L1Figures = { figures: [], rows: [], points: [], correlations: [] };
  for (const g of groups) {
    const byLambda = new Map<number, ReportTrial[]>();
    for (const t of g.trials) {
      if (!byLambda.has(t.l1)) byLambda.set(t.l1, []);
      byLambda.get(t.l1)!.push(t);
    }
    const absOf = (ts: ReportTrial[], k: 'dUtil' | 'dSpeed') => {
      const vs = ts.map((t) => t.result![k]).filter((v): v is number => v !== null && Number.isFinite(v));
      return vs.length ? mean(vs.map(Math.abs)) : null;
    };
    for (const [lambda, ts] of [...byLambda.entries()].sort((a, b) => a[0] - b[0])) {
      const rfs = ts.map((t) => t.result!.rF!);
      const s = sampleStd(rfs);
      const p: L1Point = {
        condition: g.label,
        lambda,
        n: ts.length,
        meanRf: mean(rfs),
        stdRf: Number.isFinite(s) ? s : null,
        meanAbsDUtil: absOf(ts, 'dUtil'),
        meanAbsDSpeed: absOf(ts, 'dSpeed'),
      };
      out.points.push(p);
      out.rows.push({ dataset: g.column, ...p });
    }
    const trialRows = g.trials.map((t) => ({
      lambda: t.l1,
      lambdaLabel: lambdaLabel(t.l1),
      rF: t.result!.rF!,
      absDUtil: t.result!.dUtil === null ? null : Math.abs(t.result!.dUtil),
      absDSpeed: t.result!.dSpeed === null ? null : Math.abs(t.result!.dSpeed),
      trialKey: t.trialKey,
    }));
    const corr = (k: 'absDUtil' | 'absDSpeed') => {
      const ok = trialRows.filter((r) => r[k] !== null);
      return pearson(
        ok.map((r) => r.rF),
        ok.map((r) => r[k]!),
      );
    };
    const rU = corr('absDUtil');
    const rS = corr('absDSpeed');
    out.correlations.push({ condition: g.label, n: trialRows.length, rAbsDUtil: rU, rAbsDSpeed: rS });
    const groupPoints = out.points.filter((p) => p.condition === g.label && p.lambda > 0);
    const positive = trialRows.filter((r) => r.lambda > 0);
    const lambdaAxis = {
      field: 'lambda',
      type: 'quantitative',
      scale: logDomain(groupPoints.map((p) => p.lambda)),
      title: 'λ (log scale)',
      axis: { format: '.0e', labelOverlap: 'greedy', labelSeparation: 4 },
    };
    const lambdaOrder = [...new Set(trialRows.map((r) => r.lambda))].sort((a, b) => a - b).map(lambdaLabel);
    const title1 = `${g.label}: sparsity R(f) vs λ`;
    out.figures.push({
      id: `l1-rf-${slug(g.label)}`,
      section: 'l1',
      title: title1,
      caption:
        'R(f) = fraction of parameters with |θ| < 1e‑7, mean ± std over seeds (line, error bars) and per trial (points), ' +
        'against the L1 coefficient λ on a log axis (λ = 0 trials are omitted from the log axis).',
      spec: topLevel({
        title: title1,
        width: 420,
        height: 240,
        layer: [
          {
            data: { values: groupPoints.map((p) => ({ ...p, lo: p.meanRf - (p.stdRf ?? 0), hi: p.meanRf + (p.stdRf ?? 0) })) },
            layer: [
              {
                mark: { type: 'errorbar', ticks: true },
                encoding: { x: lambdaAxis, y: { field: 'lo', type: 'quantitative', title: 'R(f)' }, y2: { field: 'hi' } },
              },
              {
                mark: { type: 'line', point: true, color: '#1f77b4' },
                encoding: { x: lambdaAxis, y: { field: 'meanRf', type: 'quantitative' } },
              },
            ],
          },
          {
            data: { values: positive },
            mark: { type: 'point', size: 16, opacity: 0.5, color: '#555' },
            encoding: { x: lambdaAxis, y: { field: 'rF', type: 'quantitative' } },
          },
        ],
      }),
    });
    const scatter = (k: 'absDUtil' | 'absDSpeed', label: string, r: number): Spec => ({
      title: `${label} vs R(f) (r = ${fmt(r)})`,
      width: 260,
      height: 220,
      data: { values: trialRows.filter((row) => row[k] !== null) },
      mark: { type: 'point', filled: true, size: 36, opacity: 0.8 },
      encoding: {
        x: { field: 'rF', type: 'quantitative', title: 'R(f)' },
        y: { field: k, type: 'quantitative', title: label },
        color: { field: 'lambdaLabel', type: 'ordinal', sort: lambdaOrder, scale: { scheme: 'viridis' }, title: 'λ' },
        tooltip: [{ field: 'trialKey' }, { field: 'lambda' }, { field: 'rF', format: '.4f' }, { field: k, format: '.4f' }],
      },
    });
    const title2 = `${g.label}: |d_util| and |d_speed| vs R(f)`;
    out.figures.push({
      id: `l1-abs-${slug(g.label)}`,
      section: 'l1',
      title: title2,
      caption: 'Each point is one trial, coloured by λ: the imbalance measures grow with sparsity (Figure 4 of the paper).',
      spec: topLevel({ title: title2, hconcat: [scatter('absDUtil', '|d_util|', rU), scatter('absDSpeed', '|d_speed|', rS)] }),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Per-trial learning curves with the re-balancing share of each epoch shaded.

export interface CurveFigure extends Figure {
  trialKey: string;
  /** Share of each epoch's steps that were re-balancing steps (what the shading shows). */
  shading: { epoch: number; share: number }[];
}

/** Curve rows of ŷ and every branch ŷk (ŷ0, ŷ1; ŷ0…ŷ2 for three-view ModelNet40), train and val. */
export function curveRows(epochs: readonly ReportEpoch[]): { epoch: number; head: string; split: string; acc: number }[] {
  const rows: { epoch: number; head: string; split: string; acc: number }[] = [];
  for (const e of epochs) {
    const train = e.branchAcc?.train ?? [e.trainAcc0, e.trainAcc1];
    const val = e.branchAcc?.val ?? [e.valAcc0, e.valAcc1];
    rows.push(
      { epoch: e.epoch, head: 'ŷ', split: 'train', acc: e.trainAcc },
      ...train.map((acc, k) => ({ epoch: e.epoch, head: `ŷ${k}`, split: 'train', acc })),
      { epoch: e.epoch, head: 'ŷ', split: 'val', acc: e.valAcc },
      ...val.map((acc, k) => ({ epoch: e.epoch, head: `ŷ${k}`, split: 'val', acc })),
    );
  }
  return rows;
}

export function rebalanceShares(epochs: readonly ReportEpoch[]): { epoch: number; share: number }[] {
  return epochs.map((e) => {
    const total = e.regularSteps + e.rebalanceSteps;
    return { epoch: e.epoch, share: total > 0 ? e.rebalanceSteps / total : 0 };
  });
}

export function buildCurves(
  trials: readonly ReportTrial[],
  epochs: ReadonlyMap<string, readonly ReportEpoch[]>,
  options: { maxCurves?: number } = {},
): { figures: CurveFigure[]; omitted: number } {
  const withCurves = groupByCondition(trials.filter((t) => (epochs.get(t.trialKey)?.length ?? 0) > 0)).flatMap((g) =>
    [...g.trials].sort((a, b) => a.lr - b.lr || a.l1 - b.l1 || a.seed - b.seed).map((t) => ({ t, label: g.label })),
  );
  const max = options.maxCurves ?? 48;
  // Evenly spaced picks keep every condition represented when a big sweep exceeds the cap.
  const picked =
    withCurves.length <= max
      ? withCurves
      : Array.from({ length: max }, (_, i) => withCurves[Math.floor((i * withCurves.length) / max)]);
  const figures = picked.map(({ t, label }) => {
    const es = [...epochs.get(t.trialKey)!].sort((a, b) => a.epoch - b.epoch);
    const shading = rebalanceShares(es);
    const anyRebalance = shading.some((s) => s.share > 0);
    const best = t.result?.bestEpoch ?? null;
    const lastEpoch = es[es.length - 1].epoch;
    const epochScale = { domain: [es[0].epoch - 0.5, lastEpoch + 0.5], nice: false, zero: false };
    // Integer ticks only: the domain is padded by half an epoch, which linear ticks would otherwise label.
    const epochTicks = es.length <= 20 ? { values: es.map((e) => e.epoch) } : { tickMinStep: 1 };
    const epochAxis = { field: 'epoch', type: 'quantitative', title: 'epoch', scale: epochScale, axis: { ...epochTicks, format: 'd' } };
    const shade: Spec = {
      data: { values: shading.map((s) => ({ ...s, from: s.epoch - 0.5, to: s.epoch + 0.5 })) },
      mark: { type: 'rect', color: '#ff7f0e' },
      encoding: {
        x: { ...epochAxis, field: 'from' },
        x2: { field: 'to' },
        opacity: { field: 'share', type: 'quantitative', scale: { domain: [0, 1], range: [0, 0.45] }, legend: anyRebalance ? { title: 're-balancing share' } : null },
      },
    };
    const bestRule: Spec[] =
      best !== null ? [{ data: { values: [{ epoch: best }] }, mark: { type: 'rule', color: '#2ca02c', strokeDash: [2, 2] }, encoding: { x: epochAxis } }] : [];
    const branchCount = Math.max(2, ...es.map((e) => e.branchAcc?.train.length ?? 2));
    const heads = ['ŷ', ...Array.from({ length: branchCount }, (_, k) => `ŷ${k}`)];
    const accuracy: Spec = {
      title: `accuracy of ${heads.join(', ')} (solid: validation, dashed: train)`,
      width: 420,
      height: 180,
      layer: [
        shade,
        ...bestRule,
        {
          data: { values: curveRows(es) },
          encoding: {
            x: epochAxis,
            y: { field: 'acc', type: 'quantitative', title: 'accuracy (%)', scale: { zero: false } },
            color: { field: 'head', type: 'nominal', title: 'head', scale: { domain: heads, range: ['#333333', '#1f77b4', '#d62728', '#9467bd'].slice(0, heads.length) } },
          },
          layer: [
            {
              mark: { type: 'line' },
              encoding: {
                strokeDash: { field: 'split', type: 'nominal', title: 'split', scale: { domain: ['val', 'train'], range: [[1, 0], [5, 3]] } },
              },
            },
            // Points in their own layer keep the split legend a line-dash legend; many epochs make them clutter.
            ...(es.length <= 30 ? [{ mark: { type: 'point', filled: true, size: 18 }, encoding: { detail: { field: 'split' } } }] : []),
          ],
        },
      ],
    };
    const speedRows = es.filter((e) => e.dSpeed !== null && Number.isFinite(e.dSpeed)).map((e) => ({ epoch: e.epoch, dSpeed: e.dSpeed! }));
    const alphaRules: Spec[] =
      t.algorithm === 'guided' && t.alpha !== null
        ? [
            {
              data: { values: [{ y: t.alpha }, { y: -t.alpha }] },
              mark: { type: 'rule', color: '#ff7f0e', strokeDash: [4, 3] },
              encoding: { y: { field: 'y', type: 'quantitative' } },
            },
          ]
        : [];
    const speed: Spec = {
      title: t.algorithm === 'guided' ? 'cumulative d_speed (dashed: ±α)' : 'cumulative d_speed',
      width: 420,
      height: 110,
      layer: [
        shade,
        ...alphaRules,
        {
          data: { values: [{ y: 0 }] },
          mark: { type: 'rule', color: '#999' },
          encoding: { y: { field: 'y', type: 'quantitative' } },
        },
        {
          data: { values: speedRows },
          mark: { type: 'line', point: es.length <= 30 ? { filled: true, size: 18, color: '#6a3d9a' } : false, color: '#6a3d9a' },
          encoding: { x: epochAxis, y: { field: 'dSpeed', type: 'quantitative', title: 'd_speed' } },
        },
      ],
    };
    const title = `${label} · lr ${t.lr}${t.l1 > 0 ? ` · λ ${t.l1}` : ''} · seed ${t.seed}`;
    return {
      id: `curve-${slug(t.trialKey).slice(0, 40)}`,
      section: 'curves' as const,
      title,
      caption:
        `Trial ${t.trialKey}. Orange shading: share of the epoch's steps that were re-balancing steps` +
        (best !== null ? `; green line: best-validation epoch ${best}.` : '.'),
      trialKey: t.trialKey,
      shading,
      spec: topLevel({ title, vconcat: [accuracy, speed], resolve: { scale: { x: 'shared', opacity: 'shared' } } }),
    };
  });
  return { figures, omitted: withCurves.length - picked.length };
}

// ---------------------------------------------------------------------------------------------------------------
// Worker timeline: one bar per trial from start to end, per worker, to spot stragglers and retries.

export interface TimelineFigure extends Figure {
  studyName: string;
  bars: { worker: string; trialKey: string; startMin: number; endMin: number; status: string; attempts: number; running: boolean }[];
}

export function buildTimelines(trials: readonly TimelineTrial[], now: Date): TimelineFigure[] {
  const figures: TimelineFigure[] = [];
  for (const studyName of [...new Set(trials.map((t) => t.studyName))]) {
    const started = trials.filter((t) => t.studyName === studyName && t.startedAt !== null);
    if (started.length === 0) continue;
    const t0 = Math.min(...started.map((t) => t.startedAt!.getTime()));
    const bars = started.map((t) => ({
      worker: t.worker ?? '(unknown worker)',
      trialKey: t.trialKey,
      startMin: (t.startedAt!.getTime() - t0) / 60_000,
      endMin: ((t.finishedAt ?? now).getTime() - t0) / 60_000,
      status: t.status,
      attempts: t.attempts,
      running: t.finishedAt === null,
    }));
    const retried = bars.filter((b) => b.attempts > 1).map((b) => ({ ...b, label: `×${b.attempts}` }));
    const workers = new Set(bars.map((b) => b.worker)).size;
    const title = `${studyName}: trials per worker over time`;
    figures.push({
      id: `timeline-${slug(studyName)}`,
      section: 'timeline',
      title,
      caption:
        'One bar per trial from its (last) start to its end, per worker; colour is the trial status, ×N marks trials that needed N attempts. ' +
        'Trials still running end at the report time.',
      studyName,
      bars,
      spec: topLevel({
        title,
        width: 520,
        height: Math.max(60, 26 * workers),
        layer: [
          {
            data: { values: bars },
            mark: { type: 'bar', height: { band: 0.7 }, cornerRadius: 2, stroke: 'white', strokeWidth: 0.5 },
            encoding: {
              y: { field: 'worker', type: 'nominal', title: 'worker' },
              x: { field: 'startMin', type: 'quantitative', title: 'minutes since the first trial started' },
              x2: { field: 'endMin' },
              color: { field: 'status', type: 'nominal', title: 'status' },
              tooltip: [{ field: 'trialKey' }, { field: 'status' }, { field: 'attempts' }, { field: 'startMin', format: '.1f' }, { field: 'endMin', format: '.1f' }],
            },
          },
          {
            data: { values: retried },
            mark: { type: 'text', align: 'left', dx: 3, fontSize: 10, color: '#000' },
            encoding: { y: { field: 'worker', type: 'nominal' }, x: { field: 'endMin', type: 'quantitative' }, text: { field: 'label' } },
          },
        ],
      }),
    });
  }
  return figures;
}


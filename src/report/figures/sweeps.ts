/** Sweeps (Figures 3-style): metric against learning rate, mean line and min–max band over seeds. */
import { type Figure, groupByCondition, logDomain, slug, type Spec, sweepPopulation, topLevel } from './common.ts';
import { columnLabel, type DatasetColumn, type ReportTrial } from '../model.ts';
import { binEdges, mean, sampleStd } from '../stats.ts';

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

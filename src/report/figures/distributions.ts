/** Distributions (Figures 2, 5): histogram + Gaussian KDE per condition, zero and E[·] marked. */
import { type Figure, fmt, groupByCondition, slug, type Spec, sweepPopulation, topLevel } from './common.ts';
import { columnLabel, type DatasetColumn, type ReportTrial } from '../model.ts';
import { binEdges, defaultBinCount, densityCurve, type DensityCurve, histogram, type HistogramBin, mean, sampleStd } from '../stats.ts';

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
  // Every multi-modal net (MMTM and late fusion: one histogram per method); the uni-modal baselines have no d_util.
  const population = sweepPopulation(trials).filter((t) => t.architecture !== 'unimodal-se');
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

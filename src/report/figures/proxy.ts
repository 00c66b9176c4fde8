/** Proxy check: d_speed against d_util over all trials of a study. */
import { type Figure, fmt, groupByCondition, slug, topLevel } from './common.ts';
import type { ReportTrial } from '../model.ts';
import { pearson } from '../stats.ts';

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

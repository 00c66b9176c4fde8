/** L1 study (Figures 3, 4, 8): R(f) against λ; |d_util| and |d_speed| against R(f). */
import { type Figure, fmt, groupByCondition, logDomain, slug, type Spec, topLevel } from './common.ts';
import type { ReportTrial } from '../model.ts';
import { mean, pearson, sampleStd } from '../stats.ts';

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

/** Per-trial learning curves with the re-balancing share of each epoch shaded. */
import { type Figure, groupByCondition, slug, type Spec, topLevel } from './common.ts';
import type { ReportEpoch, ReportTrial } from '../model.ts';

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

/** Worker timeline: one bar per trial from start to end, per worker, to spot stragglers and retries. */
import { type Figure, slug, topLevel } from './common.ts';
import type { TimelineTrial } from '../model.ts';

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

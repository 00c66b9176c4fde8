/**
 * The page's figures, drawn by src/report itself (buildReport / buildCurves → Vega-Lite → SVG through renderSvg), so
 * that the live page and the static report (`mmsweep report`) draw the same numbers the same way.
 */
import { assembleReportData } from '../report/data.ts';
import { buildCurves } from '../report/figures.ts';
import { SECTIONS, escapeHtml, table1Html } from '../report/html.ts';
import { conditionSummary, epochCurves, findStudies, studyCounts, trialOutcomes, trialStates } from '../report/queries.ts';
import { buildReport } from '../report/build.ts';
import { renderSvg, scopeSvgIds } from '../report/render.ts';
import type { Db } from '../../db/client.ts';

/** Sections of the report shown per study (per-trial curves of finished trials stay in the static report). */
const STUDY_SECTIONS = new Set(['distributions', 'proxy', 'sweeps', 'l1', 'timeline']);

export interface StudyFigures {
  /** Table 1, the notes and the figures as one HTML fragment (escaped text, inline SVG). */
  html: string;
  figureIds: string[];
  results: number;
}

/** The report of one study, as the static report builds it, limited to the study-level sections. */
export async function studyFiguresHtml(db: Db, studyId: string, now: Date = new Date()): Promise<StudyFigures | null> {
  const studies = await findStudies(db, [studyId]);
  const study = studies.find((s) => s.id === studyId);
  if (!study) return null;
  const ids = [study.id];
  const data = assembleReportData({
    studies: [study],
    states: await trialStates(db, ids),
    counts: await studyCounts(db, ids),
    outcomes: await trialOutcomes(db, ids),
    epochs: [],
    summary: await conditionSummary(db, ids),
  });
  const report = buildReport(data, { now });
  const parts: string[] = [];
  if (report.notes.length) parts.push(`<ul class="notes">${report.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>`);
  parts.push(`<section class="table1"><h3>Table 1: test accuracy (%)</h3>${table1Html(report)}</section>`);
  const figureIds: string[] = [];
  for (const { section, title } of SECTIONS) {
    if (!STUDY_SECTIONS.has(section)) continue;
    const figs = report.figures.filter((f) => f.section === section);
    if (figs.length === 0) continue;
    const rendered: string[] = [];
    for (const f of figs) {
      const { svg } = await renderSvg(f.spec);
      figureIds.push(f.id);
      rendered.push(
        `<figure class="fig" data-figure="${escapeHtml(f.id)}">${scopeSvgIds(svg, `s-${f.id}`)}<figcaption>${escapeHtml(f.caption)}</figcaption></figure>`,
      );
    }
    parts.push(`<section><h3>${escapeHtml(title)}</h3><div class="figures">${rendered.join('\n')}</div></section>`);
  }
  return { html: parts.join('\n'), figureIds, results: data.trials.filter((t) => t.result !== null).length };
}

export interface TrialCurve {
  trialKey: string;
  title: string;
  /** The report's learning-curve figure of this trial (SVG with ids scoped to the trial). */
  svg: string;
  epochs: number;
  lastEpoch: number | null;
  /** Re-balancing share of each epoch (the orange shading). */
  shading: { epoch: number; share: number }[];
}

/** The report's learning-curve figure of one trial of a study; null when the trial has no epoch yet. */
export async function trialCurve(db: Db, studyId: string, trialKey: string): Promise<TrialCurve | null> {
  const studies = await findStudies(db, [studyId]);
  const study = studies.find((s) => s.id === studyId);
  if (!study) return null;
  const data = assembleReportData({
    studies: [study],
    states: await trialStates(db, [study.id], [trialKey]),
    counts: [],
    outcomes: [],
    epochs: await epochCurves(db, [study.id], [trialKey]),
    summary: [],
  });
  const { figures } = buildCurves(data.trials, data.epochs, { maxCurves: 1 });
  const figure = figures[0];
  if (!figure) return null;
  const epochs = data.epochs.get(trialKey) ?? [];
  const { svg } = await renderSvg(figure.spec);
  return {
    trialKey,
    title: figure.title,
    svg: scopeSvgIds(svg, `t-${figure.id}`),
    epochs: epochs.length,
    lastEpoch: epochs.length ? Math.max(...epochs.map((e) => e.epoch)) : null,
    shading: figure.shading,
  };
}

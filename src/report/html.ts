/**
 * The static HTML report: one self-contained file (inline CSS, inline SVG figures, no script, no network), with
 * links to the SVG/PNG/CSV files written beside it.
 */
import { columnLabel } from './model.ts';
import { PUBLISHED_TABLE1, PUBLISHED_UNIMODAL_BEST } from './paper-values.ts';
import type { Report } from './build.ts';
import { CURRENT_MODE_LABEL, formatDiff, formatMeanStd, formatNumber, table1EmptyReason } from './table1.ts';
import type { FigureSection } from './figures.ts';
import type { RenderedFigure } from './render.ts';

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export const SECTIONS: { section: FigureSection; title: string; intro: string }[] = [
  {
    section: 'distributions',
    title: 'Distributions of d_util and d_speed (Figures 2, 5)',
    intro:
      'Per condition: distinct vs duplicated modalities, vanilla vs guided vs random. The greedy-learner hypothesis ' +
      'predicts E[d_util] away from 0 for distinct modalities and ≈ 0 with a symmetric distribution for duplicated ones.',
  },
  {
    section: 'proxy',
    title: 'Proxy check: d_speed against d_util',
    intro: 'Conditional learning speed is meant to track conditional utilization without the extra evaluation runs.',
  },
  { section: 'sweeps', title: 'Learning-rate sweeps', intro: 'Test accuracy and d_util per learning rate, bands over seeds.' },
  {
    section: 'l1',
    title: 'L1 study (Figures 3, 4, 8)',
    intro: 'Sparsity R(f) grows with λ; the paper reports |d_util| and |d_speed| growing with R(f).',
  },
  {
    section: 'curves',
    title: 'Learning curves per trial',
    intro: 'Accuracies of ŷ, ŷ0 and ŷ1 and the cumulative d_speed per epoch; orange shading shows the share of re-balancing steps.',
  },
  { section: 'timeline', title: 'Trials per worker', intro: 'When each trial ran and where, to spot stragglers and retries.' },
];

const CSS = `
body { font-family: 'DejaVu Sans', 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #1f3b57; color: white; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: 0.85; font-size: 13px; }
main { padding: 8px 28px 40px; max-width: 1500px; }
h2 { border-bottom: 2px solid #1f3b57; padding-bottom: 4px; margin-top: 32px; font-size: 19px; }
p.intro { color: #555; font-size: 14px; max-width: 900px; }
table { border-collapse: collapse; font-size: 13px; background: white; margin: 8px 0 12px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #eef2f6; }
td.label, th.label { text-align: left; }
td.paper { color: #666; }
td.pos { color: #1a7f37; } td.neg { color: #b42318; }
.notes li { font-size: 13px; color: #444; }
.figures { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure.fig { background: white; border: 1px solid #ddd; border-radius: 4px; padding: 10px; margin: 0; }
figure.fig svg { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #555; max-width: 640px; margin-top: 6px; }
figcaption a { color: #1f5f9f; }
.scroll { overflow-x: auto; }
ul.files { font-size: 13px; }
`;

export function table1Html(report: Report): string {
  const t = report.table1;
  if (t.columns.length === 0) return `<p>Table 1: ${escapeHtml(table1EmptyReason(t))}</p>`;
  const head =
    '<tr><th class="label" rowspan="2"></th>' +
    t.columns.map((c) => `<th colspan="3">${escapeHtml(columnLabel(c))}</th>`).join('') +
    '</tr><tr>' +
    t.columns.map(() => '<th>ours: mean ± std (n)</th><th>paper</th><th>Δ</th>').join('') +
    '</tr>';
  const body = t.rows
    .map((row) => {
      const cells = t.columns
        .map((c) => {
          const cell = row.cells[c];
          const paper = PUBLISHED_TABLE1[c]?.[row.key];
          let ours = '—';
          if (cell && cell.n > 0) {
            ours = escapeHtml(formatMeanStd(cell));
            if (cell.modality !== null) ours += ` <small>(m${cell.modality})</small>`;
            if (cell.nDiverged > 0) ours += ` <small>+${cell.nDiverged} diverged</small>`;
            if (cell.lrs.length > 1) ours += ` <small title="pools several learning rates">lr×${cell.lrs.length}</small>`;
            if (cell.currentMode) {
              ours += `<br><small class="current-mode" title="${escapeHtml(CURRENT_MODE_LABEL)}">balancing mode: ${escapeHtml(formatMeanStd(cell.currentMode))}</small>`;
            }
          } else if (cell && cell.nDiverged > 0) ours = `<small>${cell.nDiverged} diverged</small>`;
          const diff = cell?.diff ?? null;
          const cls = diff === null ? '' : diff >= 0 ? 'pos' : 'neg';
          const paperText = paper ? escapeHtml(formatMeanStd(paper)) : '—';
          const paperNote = row.key === 'unimodal' && PUBLISHED_UNIMODAL_BEST[c] ? ` <small>(${escapeHtml(PUBLISHED_UNIMODAL_BEST[c]!)})</small>` : '';
          return `<td>${ours}</td><td class="paper">${paperText}${paperNote}</td><td class="${cls}">${escapeHtml(formatDiff(diff))}</td>`;
        })
        .join('');
      return `<tr><td class="label">${escapeHtml(row.label)}</td>${cells}</tr>`;
    })
    .join('\n');
  const notes: string[] = [
    'Test accuracy A(f) (%) of ŷ of the best-validation model in regular mode, mean ± sample std (n) over finished, non-diverged trials with distinct modalities; Δ = ours − paper. The uni-modal row is the better of the two SE networks (modality in brackets).',
  ];
  if (t.rows.some((r) => t.columns.some((c) => r.cells[c]?.currentMode))) {
    notes.push(
      `"balancing mode": ${escapeHtml(CURRENT_MODE_LABEL)}, i.e. measured with one MMTM gate replaced by its running average when the epoch ended inside a re-balancing window; shown where it differs from A(f).`,
    );
  }
  if (t.grayBranch) {
    const g = t.grayBranch;
    notes.push(
      `Colored-and-gray MNIST, footnote 1: the gray-scale branch ŷ1 of the guided multi-modal networks reaches ${escapeHtml(formatMeanStd(g))} ` +
        `(paper: ${escapeHtml(formatMeanStd(g.paper))}, Δ ${escapeHtml(formatDiff(g.diff))}). The paper's reading: the monochromatic colored image cannot help the prediction and hurts the ensemble ŷ.`,
    );
  } else if (t.columns.includes('cmnist')) {
    notes.push('Colored-and-gray MNIST, footnote 1: the paper\'s gray branch of the guided networks reaches 99.16 ± 0.14; no guided CMNIST trial here yet.');
  }
  return `<div class="scroll"><table id="table1">${head}\n${body}</table></div><ul class="notes">${notes.map((n) => `<li>${n}</li>`).join('')}</ul>`;
}

function conditionsHtml(report: Report): string {
  const rows = report.data.conditionSummary;
  if (rows.length === 0) return '';
  const f = (x: number | null, d = 2) => escapeHtml(formatNumber(x, d));
  const pm = (m: number | null, s: number | null, d = 2) => (m === null ? '—' : `${f(m, d)} ± ${f(s, d)}`);
  const body = rows
    .map(
      (r) =>
        `<tr><td class="label">${escapeHtml(r.studyId)}</td><td class="label">${escapeHtml(r.dataset + (r.datasetVariant ? ` (${r.datasetVariant})` : ''))}</td>` +
        `<td class="label">${escapeHtml(r.architecture)}</td><td class="label">${escapeHtml(r.modalities ?? '')}</td><td class="label">${escapeHtml(r.algorithm ?? '')}</td>` +
        `<td class="label">${escapeHtml(r.profile ?? '')}</td><td>${r.lr ?? ''}</td><td>${r.l1 ?? ''}</td><td>${r.alpha ?? ''}</td><td>${r.q ?? ''}</td>` +
        `<td>${r.n}</td><td>${pm(r.testAccMean, r.testAccStd)}</td><td>${pm(r.dUtilMean, r.dUtilStd, 3)}</td><td>${pm(r.dSpeedMean, r.dSpeedStd, 3)}</td>` +
        `<td>${pm(r.rFMean, r.rFStd, 4)}</td><td>${f(r.divergedFraction)}</td></tr>`,
    )
    .join('\n');
  return (
    '<h2>Conditions</h2><p class="intro">The store\'s <code>condition_summary</code> view: one row per study and condition (all finished trials, diverged ones included in n).</p>' +
    '<div class="scroll"><table id="conditions"><tr><th class="label">study</th><th class="label">dataset</th><th class="label">architecture</th><th class="label">modalities</th>' +
    '<th class="label">algorithm</th><th class="label">profile</th><th>lr</th><th>λ</th><th>α</th><th>Q</th><th>n</th><th>test acc (%)</th><th>E[d_util]</th>' +
    `<th>E[d_speed]</th><th>R(f)</th><th>diverged</th></tr>\n${body}</table></div>`
  );
}

function figureHtml(r: RenderedFigure): string {
  const id = escapeHtml(r.figure.id);
  return (
    `<figure class="fig" id="fig-${id}" data-figure="${id}" data-width="${r.width}" data-height="${r.height}">${r.svg}` +
    `<figcaption>${escapeHtml(r.figure.caption)} <a href="figures/${id}.svg">SVG</a> · <a href="figures/${id}.png">PNG</a></figcaption></figure>`
  );
}

export function renderReportHtml(report: Report, figures: readonly RenderedFigure[]): string {
  const studies = report.data.studies
    .map((s) => `${escapeHtml(s.name)}${s.preset && s.preset !== s.name ? ` <small>(preset ${escapeHtml(s.preset)})</small>` : ''}`)
    .join(', ');
  const nTrials = report.data.counts.reduce((sum, c) => sum + c.trials, 0);
  const nDone = report.data.counts.reduce((sum, c) => sum + c.done, 0);
  const sections = SECTIONS.map(({ section, title, intro }) => {
    const fs = figures.filter((f) => f.figure.section === section);
    if (fs.length === 0) return '';
    return `<section id="${section}"><h2>${escapeHtml(title)}</h2><p class="intro">${escapeHtml(intro)}</p><div class="figures">${fs.map(figureHtml).join('\n')}</div></section>`;
  }).join('\n');
  const tables = report.tables.map((t) => `<li><a href="tables/${escapeHtml(t.name)}.csv">${escapeHtml(t.name)}.csv</a>: ${escapeHtml(t.title)}</li>`).join('');
  const notes = report.notes.length ? `<ul class="notes">${report.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(report.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>${escapeHtml(report.title)}</h1>
<p>Studies: ${studies} · ${nDone} of ${nTrials} trials finished · generated ${escapeHtml(report.generatedAt.toISOString())} · Wu et al., ICML 2022 (greedy multi-modal learning)</p></header>
<main>
${notes}
<section id="table1-section"><h2>Table 1: test accuracy (%)</h2>${table1Html(report)}</section>
${conditionsHtml(report)}
${sections}
<section id="files"><h2>Tables (CSV)</h2><ul class="files">${tables}</ul></section>
</main>
</body>
</html>
`;
}

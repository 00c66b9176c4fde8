/**
 * The study report: report data → Table 1, figures and CSV tables (pure, `buildReport` in build.ts), then written to
 * a directory as index.html + figures/*.svg + figures/*.png + tables/*.csv (`writeReport`).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Report } from './build.ts';
import { toCsv } from './csv.ts';
import { renderReportHtml } from './html.ts';
import { renderSvg, scopeSvgIds, svgToPng, type RenderedFigure } from './render.ts';

export { buildReport, type Report, type ReportOptions, type ReportTable } from './build.ts';
export type { RenderedFigure } from './render.ts';

export interface WrittenReport {
  outDir: string;
  indexHtml: string;
  figures: RenderedFigure[];
  files: string[];
}

/**
 * Renders every figure and writes the report directory. `onProgress` is called after each figure (the CLI draws a
 * progress bar: a big sweep has hundreds of learning curves).
 */
export async function writeReport(
  report: Report,
  outDir: string,
  options: { png?: boolean; onProgress?: (done: number, total: number) => void } = {},
): Promise<WrittenReport> {
  const figuresDir = path.join(outDir, 'figures');
  const tablesDir = path.join(outDir, 'tables');
  fs.mkdirSync(figuresDir, { recursive: true });
  fs.mkdirSync(tablesDir, { recursive: true });
  const files: string[] = [];
  const rendered: RenderedFigure[] = [];
  const seen = new Set<string>();
  for (const figure of report.figures) {
    if (seen.has(figure.id)) throw new Error(`two figures share the id "${figure.id}"`);
    seen.add(figure.id);
    const { svg, width, height } = await renderSvg(figure.spec);
    const svgFile = path.join(figuresDir, `${figure.id}.svg`);
    fs.writeFileSync(svgFile, svg);
    files.push(svgFile);
    if (options.png ?? true) {
      const pngFile = path.join(figuresDir, `${figure.id}.png`);
      fs.writeFileSync(pngFile, svgToPng(svg));
      files.push(pngFile);
    }
    rendered.push({ figure, svg: scopeSvgIds(svg, figure.id), width, height });
    options.onProgress?.(rendered.length, report.figures.length);
  }
  for (const table of report.tables) {
    const file = path.join(tablesDir, `${table.name}.csv`);
    fs.writeFileSync(file, toCsv(table.rows, table.columns));
    files.push(file);
  }
  const indexHtml = path.join(outDir, 'index.html');
  fs.writeFileSync(indexHtml, renderReportHtml(report, rendered));
  files.push(indexHtml);
  return { outDir, indexHtml, figures: rendered, files };
}

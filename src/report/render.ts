/**
 * Renderers: Vega-Lite → Vega → SVG (headless vega View, no browser, no canvas) and SVG → PNG (resvg, a Rust
 * rasteriser shipped as prebuilt npm binaries). Figures name the DejaVu Sans family; resvg is handed those font files
 * explicitly so that PNGs carry the same glyphs as the SVGs shown in a browser.
 */
import fs from 'node:fs';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import type { Figure } from './figures.ts';
import { loadFontMetrics, textWidth, type FontMetrics } from './font-metrics.ts';

export interface CompiledFigure {
  vega: vega.Spec;
  svg: string;
  width: number;
  height: number;
}

/** A report figure with its SVG (ids scoped to the figure, so that many can share one HTML page). */
export interface RenderedFigure {
  figure: Figure;
  svg: string;
  width: number;
  height: number;
}

/** Compiles a Vega-Lite spec and renders it to an SVG string; Vega-Lite warnings fail loudly (they mean a wrong spec). */
export async function renderSvg(spec: TopLevelSpec): Promise<CompiledFigure> {
  installTextMetrics();
  const warnings: string[] = [];
  const logger = {
    level: () => logger,
    error: (...args: unknown[]) => {
      throw new Error(`vega-lite: ${args.map(String).join(' ')}`);
    },
    warn: (...args: unknown[]) => {
      warnings.push(args.map(String).join(' '));
      return logger;
    },
    info: () => logger,
    debug: () => logger,
  };
  const compiled = vegaLite.compile(spec, { logger: logger as never }).spec;
  if (warnings.length > 0) throw new Error(`vega-lite warnings for "${titleOf(spec)}": ${warnings.join('; ')}`);
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const size = /<svg[^>]*\bwidth="([\d.]+)"[^>]*\bheight="([\d.]+)"/.exec(svg);
    if (!size) throw new Error(`vega produced an SVG without a size for "${titleOf(spec)}"`);
    return { vega: compiled, svg, width: Number(size[1]), height: Number(size[2]) };
  } finally {
    view.finalize();
  }
}

function titleOf(spec: TopLevelSpec): string {
  const t = (spec as { title?: unknown }).title;
  return typeof t === 'string' ? t : JSON.stringify(t ?? '(untitled)');
}

/** Font files tried in order; Debian's fonts-dejavu-core installs the first ones. */
const FONT_CANDIDATES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans-Bold.ttf',
  '/Library/Fonts/DejaVuSans.ttf',
];

let fontFilesCache: string[] | null = null;

/** The DejaVu Sans files on this machine; throws with the fix when none is installed (PNG text would be blank). */
export function figureFontFiles(): string[] {
  if (fontFilesCache) return fontFilesCache;
  const extra = process.env.MMSWEEP_FONT_FILE ? [process.env.MMSWEEP_FONT_FILE] : [];
  const found = [...extra, ...FONT_CANDIDATES].filter((f) => fs.existsSync(f));
  if (found.length === 0) {
    throw new Error(
      'no DejaVu Sans font file found for the PNG figures (looked in ' +
        FONT_CANDIDATES.join(', ') +
        '). Install it (Debian/Ubuntu: apt-get install fonts-dejavu-core) or point MMSWEEP_FONT_FILE at a .ttf file.',
    );
  }
  fontFilesCache = found;
  return found;
}

let metricsInstalled = false;

/**
 * Makes vega lay text out with DejaVu Sans' real advance widths (regular, and bold where a title or axis title asks
 * for it) instead of its 0.8 · fontSize per character estimate.
 */
function installTextMetrics(): void {
  if (metricsInstalled) return;
  const files = figureFontFiles();
  const regularFile = files.find((f) => /DejaVuSans\.ttf$/.test(f)) ?? files[0];
  const boldFile = files.find((f) => /DejaVuSans-Bold\.ttf$/.test(f)) ?? regularFile;
  const regular = loadFontMetrics(regularFile);
  const bold: FontMetrics = boldFile === regularFile ? regular : loadFontMetrics(boldFile);
  // vega re-exports vega-scenegraph's mutable `textMetrics` (its typings omit it); a user-set `width` is honoured.
  const metrics = (vega as unknown as { textMetrics: { width: (item: Record<string, unknown>, text: unknown) => number } }).textMetrics;
  metrics.width = (item, text) => {
    const size = item.fontSize != null ? Number(item.fontSize) || 0 : 11;
    const value = text == null ? '' : String(text).trim();
    if (size <= 0 || value === '') return 0;
    const weight = item.fontWeight;
    const isBold = weight === 'bold' || weight === 'bolder' || (typeof weight === 'number' && weight >= 600);
    return textWidth(isBold ? bold : regular, value, size);
  };
  metricsInstalled = true;
}

/** Rasterises an SVG at `scale` × its size (2 = crisp on high-density screens and in print). */
export function svgToPng(svg: string, scale = 2): Buffer {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: false, fontFiles: figureFontFiles(), defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

/**
 * Makes element ids of an SVG unique within an HTML page (several inline SVGs may each define `clip1`), rewriting
 * `id="x"` and its `url(#x)` / `href="#x"` references with a prefix.
 */
export function scopeSvgIds(svg: string, prefix: string): string {
  const ids = new Set([...svg.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]));
  if (ids.size === 0) return svg;
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (m, id: string) => (ids.has(id) ? `url(#${prefix}-${id})` : m))
    .replace(/href="#([^"]+)"/g, (m, id: string) => (ids.has(id) ? `href="#${prefix}-${id}"` : m));
}

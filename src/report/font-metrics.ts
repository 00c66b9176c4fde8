/**
 * Text widths from the TrueType font the figures use. Without a canvas, vega estimates a text's width as
 * 0.8 · fontSize per character, ~40 % wider than DejaVu Sans really is, which pushes legends and concatenated panels
 * apart. Reading the advance widths from the font file (cmap + hmtx tables) gives vega the widths a browser and
 * resvg will actually draw (kerning aside).
 */
import fs from 'node:fs';

export interface FontMetrics {
  unitsPerEm: number;
  /** Advance width of a code point in font units (the font's default glyph for unmapped ones). */
  advance(codePoint: number): number;
}

function tableOffsets(buf: Buffer): Map<string, number> {
  const numTables = buf.readUInt16BE(4);
  const tables = new Map<string, number>();
  for (let i = 0; i < numTables; i++) {
    const rec = 12 + 16 * i;
    tables.set(buf.toString('latin1', rec, rec + 4), buf.readUInt32BE(rec + 8));
  }
  return tables;
}

function cmapLookup(buf: Buffer, cmap: number): (cp: number) => number {
  const numSub = buf.readUInt16BE(cmap + 2);
  let format4 = -1;
  let format12 = -1;
  for (let i = 0; i < numSub; i++) {
    const rec = cmap + 4 + 8 * i;
    const platform = buf.readUInt16BE(rec);
    const encoding = buf.readUInt16BE(rec + 2);
    const sub = cmap + buf.readUInt32BE(rec + 4);
    const format = buf.readUInt16BE(sub);
    if (format === 12 && (platform === 3 || platform === 0)) format12 = sub;
    if (format === 4 && ((platform === 3 && encoding === 1) || platform === 0)) format4 = sub;
  }
  if (format12 >= 0) {
    const nGroups = buf.readUInt32BE(format12 + 12);
    return (cp) => {
      let lo = 0;
      let hi = nGroups - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        const g = format12 + 16 + 12 * mid;
        const start = buf.readUInt32BE(g);
        const end = buf.readUInt32BE(g + 4);
        if (cp < start) hi = mid - 1;
        else if (cp > end) lo = mid + 1;
        else return buf.readUInt32BE(g + 8) + (cp - start);
      }
      return 0;
    };
  }
  if (format4 < 0) throw new Error('font has no Unicode cmap (format 4 or 12)');
  const segX2 = buf.readUInt16BE(format4 + 6);
  const ends = format4 + 14;
  const starts = ends + segX2 + 2;
  const deltas = starts + segX2;
  const rangeOffsets = deltas + segX2;
  return (cp) => {
    if (cp > 0xffff) return 0;
    for (let i = 0; i < segX2; i += 2) {
      if (buf.readUInt16BE(ends + i) < cp) continue;
      const start = buf.readUInt16BE(starts + i);
      if (start > cp) return 0;
      const delta = buf.readInt16BE(deltas + i);
      const ro = buf.readUInt16BE(rangeOffsets + i);
      if (ro === 0) return (cp + delta) & 0xffff;
      const glyph = buf.readUInt16BE(rangeOffsets + i + ro + 2 * (cp - start));
      return glyph === 0 ? 0 : (glyph + delta) & 0xffff;
    }
    return 0;
  };
}

export function loadFontMetrics(file: string): FontMetrics {
  const buf = fs.readFileSync(file);
  const tables = tableOffsets(buf);
  const head = tables.get('head');
  const hhea = tables.get('hhea');
  const hmtx = tables.get('hmtx');
  const cmap = tables.get('cmap');
  if (head === undefined || hhea === undefined || hmtx === undefined || cmap === undefined) {
    throw new Error(`${file} is not a TrueType font with head/hhea/hmtx/cmap tables`);
  }
  const unitsPerEm = buf.readUInt16BE(head + 18);
  const numberOfHMetrics = buf.readUInt16BE(hhea + 34);
  const glyphOf = cmapLookup(buf, cmap);
  const cache = new Map<number, number>();
  return {
    unitsPerEm,
    advance(cp) {
      let w = cache.get(cp);
      if (w === undefined) {
        const glyph = Math.min(glyphOf(cp), numberOfHMetrics - 1);
        w = buf.readUInt16BE(hmtx + 4 * glyph);
        cache.set(cp, w);
      }
      return w;
    },
  };
}

/** Width in pixels of `text` at `fontSize` px. */
export function textWidth(metrics: FontMetrics, text: string, fontSize: number): number {
  let units = 0;
  for (const ch of text) units += metrics.advance(ch.codePointAt(0)!);
  return (units * fontSize) / metrics.unitsPerEm;
}

import { describe, expect, it } from 'vitest';
import {
  binEdges,
  defaultBinCount,
  densityCurve,
  gaussianKde,
  histogram,
  mean,
  pearson,
  quantile,
  sampleStd,
  silvermanBandwidth,
} from '../../src/report/stats.ts';
import { loadFontMetrics, textWidth } from '../../src/report/font-metrics.ts';
import { figureFontFiles } from '../../src/report/render.ts';

describe('report statistics', () => {
  it('mean and sample std match hand values', () => {
    expect(mean([45, 46, 47])).toBe(46);
    expect(sampleStd([45, 46, 47])).toBeCloseTo(1, 12);
    // 88, 90, 91, 92: deviations −2.25, −0.25, 0.75, 1.75 → Σ² = 8.75, /3 → √2.91667
    expect(sampleStd([88, 90, 91, 92])).toBeCloseTo(Math.sqrt(8.75 / 3), 12);
    expect(sampleStd([5])).toBeNaN();
  });

  it('quantiles interpolate linearly between order statistics (type 7)', () => {
    expect(quantile([0, 1, 3], 0.25)).toBeCloseTo(0.5, 12);
    expect(quantile([0, 1, 3], 0.75)).toBeCloseTo(2, 12);
    expect(quantile([3, 0, 1], 0.5)).toBe(1);
  });

  it("Silverman's bandwidth and the Gaussian KDE equal a hand computation", () => {
    // values 0, 1, 3: σ̂ = √(7/3) = 1.5275, IQR = 2 − 0.5 = 1.5 → 1.5/1.34 = 1.1194 < σ̂;
    // h = 0.9 · 1.1194 · 3^(−1/5) = 0.808732 (numpy: 0.808732170430083).
    const values = [0, 1, 3];
    const h = silvermanBandwidth(values);
    expect(h).toBeCloseTo(0.9 * (1.5 / 1.34) * Math.pow(3, -0.2), 12);
    expect(h).toBeCloseTo(0.808732170430083, 12);
    // f̂(x) = Σ exp(−((x−xi)/h)²/2) / (3 h √(2π)), evaluated independently with numpy:
    const expected: [number, number][] = [
      [-1, 0.08428289564203978],
      [0, 0.24115610975134083],
      [1, 0.24871324329104358],
      [2, 0.16083803504418315],
      [4, 0.076725762102337],
    ];
    const got = gaussianKde(
      values,
      h,
      expected.map(([x]) => x),
    );
    expected.forEach(([, d], i) => expect(got[i]).toBeCloseTo(d, 12));
  });

  it('the density curve integrates to ~1 and is null without spread', () => {
    const values = [0.3, 0.4, 0.5, -0.1, 0, 0.1];
    const curve = densityCurve(values, { gridSize: 2001, lo: -3, hi: 3 })!;
    let area = 0;
    for (let i = 1; i < curve.points.length; i++) {
      const a = curve.points[i - 1];
      const b = curve.points[i];
      area += ((b.x - a.x) * (a.density + b.density)) / 2;
    }
    expect(area).toBeCloseTo(1, 6);
    expect(densityCurve([0.2, 0.2, 0.2])).toBeNull();
    // With IQR = 0 but σ̂ > 0 the bandwidth falls back to σ̂ alone.
    const tied = [0, 0, 0, 0, 1];
    expect(silvermanBandwidth(tied)).toBeCloseTo(0.9 * sampleStd(tied) * Math.pow(5, -0.2), 12);
  });

  it('Pearson correlation matches a hand computation', () => {
    // x̄ = 2.5, ȳ = 5; Σdxdy = 11, Σdx² = 5, Σdy² = 26 → r = 11/√130
    expect(pearson([1, 2, 3, 4], [2, 4, 5, 9])).toBeCloseTo(11 / Math.sqrt(130), 12);
    expect(pearson([1, 2, 3], [3, 2, 1])).toBeCloseTo(-1, 12);
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(() => pearson([1, 2], [1])).toThrow(/2 x values but 1 y values/);
  });

  it('histograms use [start, end) bins with the last bin closed and density = count / (n · width)', () => {
    const edges = binEdges(-0.1, 0.5, 5);
    expect(edges.map((e) => Number(e.toFixed(10)))).toEqual([-0.1, 0.02, 0.14, 0.26, 0.38, 0.5]);
    const bins = histogram([0.3, 0.4, 0.5], edges);
    expect(bins.map((b) => b.count)).toEqual([0, 0, 0, 1, 2]);
    expect(bins[4].density).toBeCloseTo(2 / (3 * 0.12), 10);
    expect(histogram([0.02], edges).map((b) => b.count)).toEqual([0, 1, 0, 0, 0]);
    // All values equal: one unit-wide range around them.
    expect(binEdges(2, 2, 1)).toEqual([1.5, 2.5]);
    expect(defaultBinCount(3)).toBe(5);
    expect(defaultBinCount(80)).toBe(9);
    expect(defaultBinCount(10_000)).toBe(30);
  });

  it('reads advance widths from the DejaVu Sans font file', () => {
    const regular = loadFontMetrics(figureFontFiles().find((f) => f.endsWith('DejaVuSans.ttf'))!);
    expect(regular.unitsPerEm).toBe(2048);
    // DejaVu Sans: "i" is narrower than "m"; a space is 651/2048 em.
    expect(regular.advance(' '.codePointAt(0)!)).toBe(651);
    expect(textWidth(regular, 'm', 10)).toBeGreaterThan(textWidth(regular, 'i', 10) * 2);
    expect(textWidth(regular, 'ŷ', 20)).toBeGreaterThan(0);
  });
});

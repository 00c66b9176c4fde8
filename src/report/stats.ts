/**
 * The small statistics the report needs, written out so that every number in a table or figure can be checked by
 * hand: mean, sample standard deviation, quantiles, Pearson correlation, histograms and a Gaussian kernel density
 * estimate with Silverman's bandwidth.
 */

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Sample standard deviation (n − 1 in the denominator, as the paper's "± std over 3 runs"); NaN when n < 2. */
export function sampleStd(values: readonly number[]): number {
  const n = values.length;
  if (n < 2) return Number.NaN;
  // Identical values: exactly 0 (the float mean of e.g. three 0.2s is not 0.2, which would leave a spurious 1e-17).
  if (values.every((v) => v === values[0])) return 0;
  const m = mean(values);
  let ss = 0;
  for (const v of values) ss += (v - m) * (v - m);
  return Math.sqrt(ss / (n - 1));
}

/** Quantile with linear interpolation between order statistics (Hyndman–Fan type 7, R's and numpy's default). */
export function quantile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** Pearson's product-moment correlation; NaN when fewer than two pairs or either variable is constant. */
export function pearson(xs: readonly number[], ys: readonly number[]): number {
  if (xs.length !== ys.length) throw new Error(`pearson: ${xs.length} x values but ${ys.length} y values`);
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i] - mx;
    const dy = ys[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return Number.NaN;
  return sxy / Math.sqrt(sxx * syy);
}

/**
 * Silverman's rule-of-thumb bandwidth for a Gaussian kernel: h = 0.9 · min(σ̂, IQR / 1.34) · n^(−1/5), with σ̂ the
 * sample std. When the IQR is 0 (more than half the values tie) σ̂ alone is used; NaN when σ̂ is 0 or n < 2
 * (no spread to estimate a density from).
 */
export function silvermanBandwidth(values: readonly number[]): number {
  const n = values.length;
  const sd = sampleStd(values);
  if (!(sd > 0)) return Number.NaN;
  const iqr = quantile(values, 0.75) - quantile(values, 0.25);
  const spread = iqr > 0 ? Math.min(sd, iqr / 1.34) : sd;
  return 0.9 * spread * Math.pow(n, -0.2);
}

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Gaussian KDE f̂(x) = (1 / (n h)) Σ φ((x − x_i) / h) evaluated at each point of `at`. */
export function gaussianKde(values: readonly number[], bandwidth: number, at: readonly number[]): number[] {
  const n = values.length;
  if (!(bandwidth > 0)) throw new Error(`gaussianKde: bandwidth must be positive, got ${bandwidth}`);
  return at.map((x) => {
    let sum = 0;
    for (const v of values) {
      const z = (x - v) / bandwidth;
      sum += Math.exp(-0.5 * z * z);
    }
    return (sum * INV_SQRT_2PI) / (n * bandwidth);
  });
}

export interface DensityCurve {
  bandwidth: number;
  points: { x: number; density: number }[];
}

/**
 * KDE with Silverman's bandwidth on an evenly spaced grid of `gridSize` points over [lo, hi] (default: the data range
 * widened by three bandwidths, where the curve has decayed to ~1 % of a single kernel's peak). Null when the values
 * have no spread.
 */
export function densityCurve(
  values: readonly number[],
  options: { gridSize?: number; lo?: number; hi?: number } = {},
): DensityCurve | null {
  const bandwidth = silvermanBandwidth(values);
  if (!(bandwidth > 0)) return null;
  const gridSize = options.gridSize ?? 161;
  const lo = options.lo ?? Math.min(...values) - 3 * bandwidth;
  const hi = options.hi ?? Math.max(...values) + 3 * bandwidth;
  const xs = Array.from({ length: gridSize }, (_, i) => lo + ((hi - lo) * i) / (gridSize - 1));
  const ds = gaussianKde(values, bandwidth, xs);
  return { bandwidth, points: xs.map((x, i) => ({ x, density: ds[i] })) };
}

export interface HistogramBin {
  start: number;
  end: number;
  count: number;
  /** count / (n · width): bar areas sum to 1, so the bars share the density curve's scale. */
  density: number;
}

/**
 * Edges of `binCount` equal-width bins covering [lo, hi]. A degenerate range (all values equal) becomes a unit-width
 * range centred on the value so that it still draws as one bar.
 */
export function binEdges(lo: number, hi: number, binCount: number): number[] {
  if (!(binCount >= 1)) throw new Error(`binEdges: binCount must be ≥ 1, got ${binCount}`);
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  return Array.from({ length: binCount + 1 }, (_, i) => (i === binCount ? hi : lo + ((hi - lo) * i) / binCount));
}

/** Counts per bin; bins are [start, end) except the last, which also holds its right edge. */
export function histogram(values: readonly number[], edges: readonly number[]): HistogramBin[] {
  const k = edges.length - 1;
  const counts = new Array<number>(k).fill(0);
  for (const v of values) {
    if (v < edges[0] || v > edges[k]) continue;
    let i = k - 1;
    // Linear scan keeps the edge semantics obvious; histograms here have at most a few dozen bins.
    for (let j = 0; j < k; j++) {
      if (v < edges[j + 1]) {
        i = j;
        break;
      }
    }
    counts[i]++;
  }
  const n = values.length;
  return counts.map((count, i) => {
    const width = edges[i + 1] - edges[i];
    return { start: edges[i], end: edges[i + 1], count, density: n > 0 ? count / (n * width) : 0 };
  });
}

/**
 * Default number of histogram bins for n values: ⌈√n⌉ clamped to [5, 30] (enough resolution at the paper's 80-model
 * sweeps, no comb of empty bins at 3 seeds).
 */
export function defaultBinCount(n: number): number {
  return Math.min(30, Math.max(5, Math.ceil(Math.sqrt(n))));
}

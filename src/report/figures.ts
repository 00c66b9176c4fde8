/**
 * Pure builders: report data in, figures (Vega-Lite specs with their data inlined) and CSV rows out. Every plotted
 * number is computed here (bins, densities, means, bands, correlations), not by Vega transforms, so the tests can
 * read it back from the spec and the CSV and compare it with a hand computation.
 *
 * The public entry point of the figures; each family lives in its own file under figures/.
 */
export { FIGURE_FONT, groupByCondition, slug, type ConditionGroup, type Figure, type FigureSection } from './figures/common.ts';
export {
  QUANTITY_LABELS,
  buildDistributions,
  type DistributionFigure,
  type DistributionPanel,
  type DistributionQuantity,
} from './figures/distributions.ts';
export { buildProxyScatter, type ScatterFigure } from './figures/proxy.ts';
export { buildSweeps, poolByLearningRate, type SweepFigure, type SweepMetric, type SweepPoint } from './figures/sweeps.ts';
export { buildL1, type L1Figures, type L1Point } from './figures/l1.ts';
export { buildCurves, curveRows, rebalanceShares, type CurveFigure } from './figures/curves.ts';
export { buildTimelines, type TimelineFigure } from './figures/timeline.ts';

/**
 * The study report end to end on a real Postgres database: hand-made results (test/report/fixture.ts) written
 * through the store's API, loaded through its views, turned into tables and figures whose numbers are checked
 * against hand computations, rendered to SVG/PNG/HTML, opened in headless Chromium, and produced by the CLI.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/report/csv.ts';
import { UnknownStudyError } from '../../db/errors.ts';
import { loadReportData } from '../../src/report/data.ts';
import type { CurveFigure, DistributionFigure, ScatterFigure, TimelineFigure } from '../../src/report/figures.ts';
import type { ReportData } from '../../src/report/model.ts';
import { buildReport, writeReport, type Report, type WrittenReport } from '../../src/report/report.ts';
import { table1Text } from '../../src/report/table1.ts';
import { insertFixture, T0 } from './fixture.ts';
import { createTempDatabase, type TempDatabase } from './pg.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const artifacts = path.join(repoRoot, 'test-artifacts');
const outDir = path.join(artifacts, 'report-test');
const STUDIES = ['rep-cmnist', 'rep-mn40-sweep', 'rep-mn40-l1'];

let tmp: TempDatabase;
let data: ReportData;
let report: Report;
let written: WrittenReport;

function readTable(name: string): Record<string, string>[] {
  return parseCsv(fs.readFileSync(path.join(outDir, 'tables', `${name}.csv`), 'utf8'));
}

function close(actual: string | number, expected: number, digits = 9): void {
  expect(Number(actual)).toBeCloseTo(expected, digits);
}

beforeAll(async () => {
  tmp = await createTempDatabase('mmsweep_report');
  await insertFixture(tmp.handle.db);
  data = await loadReportData(tmp.handle.db, STUDIES);
  report = buildReport(data, { now: new Date(T0.getTime() + 120 * 60_000) });
  fs.rmSync(outDir, { recursive: true, force: true });
  written = await writeReport(report, outDir);
});

afterAll(async () => {
  await tmp?.drop();
});

describe('report data from the results store', () => {
  it('loads every training trial of the studies with its condition and result', () => {
    expect(data.studies.map((s) => s.id).sort()).toEqual([...STUDIES].sort());
    // The pending trial (cm-rand-0) never started: counted, not listed.
    expect(data.trials).toHaveLength(23);
    expect(data.counts.find((c) => c.studyName === 'rep-cmnist')).toMatchObject({ pending: 1, failed: 1 });
    const uni = data.trials.find((t) => t.trialKey === 'cm-uni1-0')!;
    expect(uni.architecture).toBe('unimodal-se');
    expect(uni.unimodalModality).toBe(1);
    const diverged = data.trials.find((t) => t.trialKey === 'cm-van-3')!;
    expect(diverged.result!.diverged).toBe(true);
    expect(diverged.result!.testAcc).toBeNaN();
    expect(data.trials.find((t) => t.trialKey === 'cm-rand-0')).toBeUndefined();
    expect(data.trials.find((t) => t.trialKey === 'cm-rubi-0')!.status).toBe('failed');
    expect(data.epochs.get('cm-gui-0')!.map((e) => e.rebalanceSteps)).toEqual([0, 4, 2, 0]);
  });

  it('names unknown studies and lists the known ones', async () => {
    const error = await loadReportData(tmp.handle.db, ['rep-cmnist', 'nope']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnknownStudyError);
    expect((error as Error).message).toMatch(/no study "nope" in the results store\. Studies in this database: .*rep-cmnist/);
  });
});

describe('tables', () => {
  it('Table 1 holds hand-computed means, sample stds, n, and the difference to the paper', () => {
    const rows = readTable('table1');
    const cell = (row: string, dataset: string) => rows.find((r) => r.row === row && r.dataset === dataset)!;
    // CMNIST vanilla: 45, 46, 47 → 46 ± 1 (3); the diverged fourth trial is counted apart. Paper 45.26.
    const van = cell('vanilla', 'cmnist');
    expect([van.n, van.n_diverged]).toEqual(['3', '1']);
    close(van.mean, 46);
    close(van.std, 1);
    close(van.paper_mean, 45.26);
    close(van.diff, 0.74);
    // Guided: 90, 92, 91 → 91 ± 1; paper 91.01 → Δ −0.01.
    const gui = cell('guided', 'cmnist');
    close(gui.mean, 91);
    close(gui.std, 1);
    close(gui.diff, -0.01);
    // Uni-modal best: m1 (99.0, 99.5 → 99.25 ± √0.125) beats m0 (40, 42).
    const uni = cell('unimodal', 'cmnist');
    expect([uni.modality, uni.n]).toEqual(['1', '2']);
    close(uni.mean, 99.25);
    close(uni.std, Math.sqrt(0.125));
    close(uni.diff, 99.25 - 99.14);
    // RUBi failed and random is pending: no numbers, the paper's value is still shown.
    expect(cell('rubi', 'cmnist')).toMatchObject({ n: '0', mean: '', paper_mean: '44.79' });
    // Gray branch ŷ1 of the guided networks: 99.0, 99.2, 99.4 → 99.2 ± 0.2 vs 99.16 ± 0.14.
    const gray = cell('cmnist-guided-gray-branch', 'cmnist');
    close(gray.mean, 99.2);
    close(gray.std, 0.2);
    close(gray.diff, 0.04);
    // ModelNet40 vanilla pools the sweep's two learning rates (L1 trials excluded): 88, 90, 91, 92.
    const mn = cell('vanilla', 'modelnet40');
    expect([mn.n, mn.lrs]).toEqual(['4', '0.01 0.1']);
    close(mn.mean, 90.25);
    close(mn.std, Math.sqrt(8.75 / 3));
  });

  it('prints Table 1 for the terminal', () => {
    const text = table1Text(report.table1);
    expect(text).toMatch(/multi-modal \(vanilla\)\s+46\.00 ± 1\.00 \(3\)\s+45\.26 ± 0\.46\s+\+0\.74/);
    expect(text).toMatch(/uni-modal \(best\)\s+99\.25 ± 0\.35 \(2\) m1/);
    expect(text).toContain('CMNIST guided, gray branch ŷ1: 99.20 ± 0.20 (3) (paper 99.16 ± 0.14, Δ +0.04)');
    expect(text).toContain('pools lr ∈ {0.01, 0.1}');
  });

  it('conditions.csv is the store view condition_summary', () => {
    const rows = readTable('conditions');
    const van = rows.find((r) => r.study === 'rep-cmnist' && r.architecture === 'mmtm' && r.modalities === 'distinct' && r.algorithm === 'vanilla')!;
    // The view counts the diverged trial in n and skips its NULL accuracy in the mean.
    expect(van.n).toBe('4');
    close(van.test_acc_mean, 46);
    close(van.d_util_mean, 0.4);
    close(van.diverged_fraction, 0.25);
  });

  it('distributions.csv: shared bins, counts and KDE bandwidths per condition', () => {
    const rows = readTable('distributions').filter((r) => r.quantity === 'd_util' && r.dataset === 'cmnist');
    // All CMNIST d_util values span [−0.1, 0.5]; 5 bins of width 0.12.
    expect(rows.map((r) => [r.condition, r.n, r.bin_counts])).toEqual([
      ['cmnist · distinct · vanilla', '3', '0 0 0 1 2'],
      ['cmnist · duplicated m1 · vanilla', '3', '2 1 0 0 0'],
      ['cmnist · distinct · guided', '3', '1 1 1 0 0'],
    ]);
    rows.forEach((r) => close(r.bin_width, 0.12));
    close(rows[0].mean, 0.4);
    close(rows[1].mean, 0);
    // Vanilla: σ̂ = 0.1, IQR = 0.45 − 0.35 = 0.1 → h = 0.9 · (0.1/1.34) · 3^(−1/5).
    close(rows[0].kde_bandwidth, 0.9 * (0.1 / 1.34) * Math.pow(3, -0.2), 12);
  });

  it('sweeps.csv: mean, std, min and max over seeds per learning rate', () => {
    const rows = readTable('sweeps').filter((r) => r.dataset === 'modelnet40');
    const at = (metric: string, lr: number) => rows.find((r) => r.metric === metric && Number(r.lr) === lr)!;
    expect(at('test accuracy (%)', 0.01)).toMatchObject({ n: '2', min: '88', max: '90', mean: '89' });
    close(at('test accuracy (%)', 0.01).std, Math.SQRT2);
    expect(at('test accuracy (%)', 0.1)).toMatchObject({ min: '91', max: '92', mean: '91.5' });
    close(at('d_util', 0.01).mean, -0.15);
    expect(at('d_util', 0.1)).toMatchObject({ min: '-0.3', max: '0' });
    // CMNIST has one learning rate: no sweep.
    expect(readTable('sweeps').some((r) => r.dataset === 'cmnist')).toBe(false);
  });

  it('l1.csv: R(f) mean ± std and mean |d_util|, |d_speed| per λ (λ = 0 from the sweep at the same lr)', () => {
    const rows = readTable('l1');
    expect(rows.map((r) => Number(r.lambda))).toEqual([0, 1e-5, 1e-3]);
    close(rows[0].meanRf, 0);
    close(rows[0].meanAbsDUtil, 0.15); // |0.0|, |−0.3|
    close(rows[1].meanRf, 0.15);
    close(rows[1].stdRf, Math.sqrt(0.005));
    close(rows[1].meanAbsDSpeed, 0.2); // |0.1|, |−0.3|
    close(rows[2].meanRf, 0.6);
    close(rows[2].meanAbsDUtil, 0.5);
    close(rows[2].meanAbsDSpeed, 0.425);
  });

  it('proxy-correlation.csv: Pearson r of d_speed with d_util over a study', () => {
    const rows = readTable('proxy-correlation');
    const all = rows.find((r) => r.study === 'rep-cmnist' && r.condition === '(all)')!;
    expect(all.n).toBe('9');
    // numpy.corrcoef of the nine (d_util, d_speed) pairs of the fixture.
    close(all.pearson_r, 0.9069227623106352, 12);
  });
});

describe('figures', () => {
  it('the distribution figure plots the histogram counts and the Silverman KDE', () => {
    const fig = report.figures.find((f) => f.id === 'dist-d-util-cmnist') as DistributionFigure;
    const spec = fig.spec as unknown as { vconcat: { layer: { data: { values: Record<string, number>[] } }[] }[] };
    const bars = spec.vconcat[0].layer[0].data.values;
    expect(bars.map((b) => b.count)).toEqual([0, 0, 0, 1, 2]);
    expect(bars[4].density).toBeCloseTo(2 / (3 * 0.12), 10);
    // The curve's points equal (1/(3h)) Σ φ((x − xi)/h) for the vanilla values 0.3, 0.4, 0.5.
    const h = 0.9 * (0.1 / 1.34) * Math.pow(3, -0.2);
    const curve = spec.vconcat[0].layer[1].data.values;
    expect(curve.length).toBeGreaterThan(100);
    for (const p of [curve[0], curve[40], curve[80], curve[120]]) {
      const hand = [0.3, 0.4, 0.5].reduce((s, v) => s + Math.exp(-0.5 * ((p.x - v) / h) ** 2), 0) / (3 * h * Math.sqrt(2 * Math.PI));
      expect(p.density).toBeCloseTo(hand, 12);
    }
    // Zero and E[d_util] are marked.
    expect(spec.vconcat[0].layer[2].data.values[0].x).toBe(0);
    expect(spec.vconcat[0].layer[3].data.values[0].x).toBeCloseTo(0.4, 12);
  });

  it('the SVG draws the bars with heights proportional to the counts', () => {
    const svg = fs.readFileSync(path.join(outDir, 'figures', 'dist-d-util-cmnist.svg'), 'utf8');
    const group = /<g class="mark-rect role-mark concat_0_layer_0_marks"[^>]*>(.*?)<\/g>/s.exec(svg)![1];
    const heights = [...group.matchAll(/d="M[-\d.e]+,[-\d.e]+h[-\d.e]+v([-\d.e]+)h/g)].map((m) => Math.abs(Number(m[1])));
    expect(heights).toHaveLength(5);
    expect(heights.slice(0, 3)).toEqual([0, 0, 0]);
    expect(heights[4] / heights[3]).toBeCloseTo(2, 6);
    expect(svg).toContain('E[d_util] = 0.400');
  });

  it('the proxy scatter shows all nine points and r in its title', () => {
    const fig = report.figures.find((f) => f.id === 'proxy-rep-cmnist') as ScatterFigure;
    expect(fig.points).toHaveLength(9);
    expect(fig.title).toContain('Pearson r = 0.907, n = 9');
    const svg = fs.readFileSync(path.join(outDir, 'figures', 'proxy-rep-cmnist.svg'), 'utf8');
    expect(svg.match(/aria-roledescription="point"/g)).toHaveLength(9);
  });

  it('learning curves shade each epoch by its re-balancing share; the timeline shows workers and retries', () => {
    const curve = report.figures.find((f) => f.id === 'curve-cm-gui-0') as CurveFigure;
    expect(curve.shading).toEqual([
      { epoch: 1, share: 0 },
      { epoch: 2, share: 0.4 },
      { epoch: 3, share: 0.25 },
      { epoch: 4, share: 0 },
    ]);
    expect(report.figures.filter((f) => f.section === 'curves').map((f) => f.id).sort()).toEqual(['curve-cm-gui-0', 'curve-cm-van-0']);
    const timeline = report.figures.find((f) => f.id === 'timeline-rep-cmnist') as TimelineFigure;
    const retried = timeline.bars.find((b) => b.trialKey === 'cm-van-2')!;
    expect(retried).toMatchObject({ worker: 'w1', startMin: 10, endMin: 25, attempts: 2 });
    expect(timeline.bars.find((b) => b.trialKey === 'cm-rubi-0')).toMatchObject({ status: 'failed', attempts: 3 });
    // The pending trial never started: no bar.
    expect(timeline.bars.some((b) => b.trialKey === 'cm-rand-0')).toBe(false);
    const svg = fs.readFileSync(path.join(outDir, 'figures', 'timeline-rep-cmnist.svg'), 'utf8');
    expect(svg).toContain('×2');
    expect(svg).toContain('×3');
  });

  it('writes every figure as SVG and as a non-blank PNG at twice its size', () => {
    expect(written.figures.length).toBe(report.figures.length);
    expect(report.figures.length).toBeGreaterThanOrEqual(14);
    for (const f of written.figures) {
      const png = PNG.sync.read(fs.readFileSync(path.join(outDir, 'figures', `${f.figure.id}.png`)));
      expect(png.width).toBe(Math.round(f.width * 2));
      expect(png.height).toBe(Math.round(f.height * 2));
      let dark = 0;
      for (let i = 0; i < png.data.length; i += 4) if (png.data[i] < 100 && png.data[i + 1] < 100 && png.data[i + 2] < 100) dark++;
      // Axis labels and titles are drawn: text rendered with the loaded font, not left blank.
      expect(dark).toBeGreaterThan(500);
    }
  });

  it('index.html is self-contained and inlines every figure', () => {
    const html = fs.readFileSync(written.indexHtml, 'utf8');
    expect(html.match(/<figure class="fig"/g)).toHaveLength(report.figures.length);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html).not.toMatch(/<script/);
    expect(html).toContain('46.00 ± 1.00 (3)');
    expect(html).toContain('99.20 ± 0.20 (3)');
  });
});

describe('in a browser', () => {
  it('headless Chromium renders every figure with a non-zero size and no console errors', async () => {
    const { chromium } = await import('playwright-core');
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-report-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1400, height: 900 },
    });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
      await page.goto(`file://${written.indexHtml}`, { waitUntil: 'load' });
      const sizes = await page.$$eval('figure.fig > svg', (els) =>
        els.map((e) => {
          const r = e.getBoundingClientRect();
          return { id: e.parentElement!.getAttribute('data-figure'), w: r.width, h: r.height };
        }),
      );
      expect(sizes).toHaveLength(report.figures.length);
      for (const s of sizes) {
        expect(s.w, s.id!).toBeGreaterThan(50);
        expect(s.h, s.id!).toBeGreaterThan(50);
      }
      // Table 1 is laid out as a table with the five rows of the paper plus two header rows.
      expect(await page.$$eval('#table1 tr', (rows) => rows.length)).toBe(7);
      fs.mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, 'report-screenshot.png'), fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    }
  });
});

describe('mmsweep report (CLI)', () => {
  it('writes the report directory and prints Table 1', async () => {
    const cliOut = path.join(artifacts, 'report-cli');
    fs.rmSync(cliOut, { recursive: true, force: true });
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [path.join(repoRoot, 'bin/mmsweep.js'), 'report', 'rep-cmnist', '--out', cliOut, '--database-url', tmp.url, '--no-png'],
      { cwd: repoRoot, env: { ...process.env, DATABASE_URL: '' }, timeout: 90_000 },
    );
    expect(stdout).toMatch(/multi-modal \(vanilla\)\s+46\.00 ± 1\.00 \(3\)/);
    expect(stdout).toContain(`report: ${path.join(cliOut, 'index.html')}`);
    expect(fs.existsSync(path.join(cliOut, 'figures', 'dist-d-util-cmnist.svg'))).toBe(true);
    expect(fs.existsSync(path.join(cliOut, 'figures', 'dist-d-util-cmnist.png'))).toBe(false);
    const t1 = parseCsv(fs.readFileSync(path.join(cliOut, 'tables', 'table1.csv'), 'utf8'));
    expect(t1.find((r) => r.row === 'guided')!.mean).toBe('91');
  });
});

/** Pure pieces of the report: mappings from the store's columns, the curve cap, CSV quoting, SVG id scoping, and
 * a report of a study with nothing finished yet. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCsv, toCsv } from '../../src/report/csv.ts';
import { parseArchitecture } from '../../src/report/data.ts';
import { buildCurves, curveRows, poolByLearningRate } from '../../src/report/figures.ts';
import { datasetColumn, type ReportEpoch, type ReportTrial } from '../../src/report/model.ts';
import { scopeSvgIds } from '../../src/report/render.ts';
import { buildReport, writeReport } from '../../src/report/report.ts';
import { buildTable1, table1CsvRows, table1Text } from '../../src/report/table1.ts';

function trial(key: string, over: Partial<ReportTrial> = {}): ReportTrial {
  return {
    studyNames: ['s'],
    trialKey: key,
    column: 'cmnist',
    modalities: 'distinct',
    architecture: 'mmtm',
    unimodalModality: null,
    algorithm: 'vanilla',
    profile: 'code',
    lr: 0.01,
    seed: 0,
    l1: 0,
    alpha: null,
    q: null,
    status: 'done',
    attempts: 1,
    worker: null,
    startedAt: null,
    finishedAt: null,
    result: null,
    ...over,
  };
}

function epoch(trialKey: string, e: number): ReportEpoch {
  return {
    trialKey,
    epoch: e,
    trainAcc: 50,
    trainAcc0: 40,
    trainAcc1: 60,
    valAcc: 50,
    valAcc0: 40,
    valAcc1: 60,
    testAcc: null,
    testAcc0: null,
    testAcc1: null,
    loss: 1,
    lr: 0.01,
    dSpeed: 0.1,
    regularSteps: 10,
    rebalanceSteps: 0,
  };
}

describe('report building blocks', () => {
  it("maps the store's dataset variants and architectures to report columns", () => {
    expect(datasetColumn('cmnist', '')).toBe('cmnist');
    expect(datasetColumn('cmnist', 'sigma2=0.05')).toBe('cmnist:sigma2=0.05');
    expect(datasetColumn('modelnet40', '')).toBe('modelnet40');
    expect(datasetColumn('modelnet40', 'views=0,4,8')).toBe('modelnet40-3views');
    expect(datasetColumn('nvgesture', 'scratch')).toBe('nvgesture-scratch');
    expect(datasetColumn('nvgesture', 'pretrained')).toBe('nvgesture-pretrained');
    expect(parseArchitecture('mmtm')).toEqual({ architecture: 'mmtm', modality: null });
    expect(parseArchitecture('unimodal-se:m1')).toEqual({ architecture: 'unimodal-se', modality: 1 });
    expect(parseArchitecture('noop')).toBeNull();
  });

  it('caps learning-curve figures with picks spread over the conditions', () => {
    const trials = [
      ...Array.from({ length: 6 }, (_, i) => trial(`v${i}`, { seed: i })),
      ...Array.from({ length: 6 }, (_, i) => trial(`g${i}`, { seed: i, algorithm: 'guided' })),
    ];
    const epochs = new Map(trials.map((t) => [t.trialKey, [epoch(t.trialKey, 1), epoch(t.trialKey, 2)]]));
    const { figures, omitted } = buildCurves(trials, epochs, { maxCurves: 4 });
    expect(omitted).toBe(8);
    expect(figures.map((f) => f.trialKey)).toEqual(['v0', 'v3', 'g0', 'g3']);
  });

  it('draws a curve per branch: ŷ0, ŷ1 from the columns, every ŷk when the epoch carries branch accuracies', () => {
    const two = curveRows([epoch('t', 1)]);
    expect(two.map((r) => `${r.split} ${r.head} ${r.acc}`)).toEqual(['train ŷ 50', 'train ŷ0 40', 'train ŷ1 60', 'val ŷ 50', 'val ŷ0 40', 'val ŷ1 60']);
    const three = curveRows([{ ...epoch('t', 1), branchAcc: { train: [40, 60, 70], val: [41, 61, 71] } }]);
    expect(three.filter((r) => r.head === 'ŷ2').map((r) => [r.split, r.acc])).toEqual([
      ['train', 70],
      ['val', 71],
    ]);
    const threeView = { ...trial('m3', { algorithm: 'guided' }), column: 'modelnet40-3views' as const };
    const { figures } = buildCurves([threeView], new Map([['m3', [{ ...epoch('m3', 1), branchAcc: { train: [1, 2, 3], val: [4, 5, 6] } }]]]));
    expect(JSON.stringify(figures[0]!.spec)).toContain('accuracy of ŷ, ŷ0, ŷ1, ŷ2');
  });

  it('Table 1 reads the regular-mode A(f) for every algorithm; a differing balancing-mode number is shown beside, labelled', () => {
    const result = (testAcc: number, accF: number | null) => ({
      testAcc, accF, accF0: null, accF1: null, accF0Prime: null, accF1Prime: null, uM1GivenM0: null, uM0GivenM1: null,
      dUtil: null, dSpeed: null, rF: 0, bestEpoch: 3, diverged: false,
    });
    const table = buildTable1([
      // Code-profile guided: the trainer's own test pass ran re-balancing (70, 74), the clean re-evaluation 90, 92.
      trial('g0', { algorithm: 'guided', seed: 0, result: result(70, 90) }),
      trial('g1', { algorithm: 'guided', seed: 1, result: result(74, 92) }),
      // Vanilla: both numbers agree, and a result stored without accF counts with its testAcc.
      trial('v0', { seed: 0, result: result(45, 45) }),
      trial('v1', { seed: 1, result: result(47, null) }),
    ]);
    const guided = table.rows.find((r) => r.key === 'guided')!.cells.cmnist!;
    // By hand: mean(90, 92) = 91, sample std √2; balancing mode mean(70, 74) = 72, std 2√2.
    expect([guided.n, guided.mean, guided.std]).toEqual([2, 91, Math.SQRT2]);
    expect(guided.currentMode).toEqual({ n: 2, mean: 72, std: 2 * Math.SQRT2 });
    const vanilla = table.rows.find((r) => r.key === 'vanilla')!.cells.cmnist!;
    expect([vanilla.mean, vanilla.currentMode]).toEqual([46, null]);
    const csv = table1CsvRows(table).find((r) => r.row === 'guided')!;
    expect([csv.mean, csv.current_mode_mean, csv.current_mode_std]).toEqual([91, 72, 2 * Math.SQRT2]);
    expect(table1CsvRows(table).find((r) => r.row === 'vanilla')!.current_mode_mean).toBeNull();
    expect(table1Text(table)).toMatch(/\+ guided \(proposed\) \/ Colored.*: test acc\. in the trainer's balancing mode \(code profile, paper-spec D9\) 72\.00 ± 2\.83 \(2\)/);
  });

  it('Table 1 says why it is empty when every finished trial uses a dataset variant it leaves out (balance-cmnist-small)', () => {
    const result = { testAcc: 20, accF: 20, accF0: null, accF1: null, accF0Prime: null, accF1Prime: null, uM1GivenM0: null, uM0GivenM1: null, dUtil: null, dSpeed: null, rF: 0, bestEpoch: 1, diverged: false };
    const heldOut = 'cmnist:heldOutVal=5000';
    const variantOnly = buildTable1([
      trial('a', { column: heldOut, result }),
      trial('b', { column: heldOut, architecture: 'late-fusion', algorithm: 'agm', result }),
      trial('c', { column: heldOut, algorithm: 'guided' }), // not finished: not counted
    ]);
    expect(variantOnly.columns).toEqual([]);
    expect(variantOnly.excluded).toEqual([{ column: heldOut, n: 2 }]);
    const text = table1Text(variantOnly);
    expect(text).not.toMatch(/no finished trials/);
    expect(text).toMatch(/^Table 1: not drawn .*paper's dataset settings only.*cmnist:heldOutVal=5000: cmnist with validation on 5000 held-out training digits .* 2 finished trials\. .*tables\/conditions\.csv/);
    expect(table1Text(buildTable1([trial('u', { column: heldOut })]))).toBe('Table 1: no finished trials yet.');
    // Beside a drawn table the left-out variant is a note.
    const mixed = buildTable1([trial('v', { result }), trial('w', { column: 'cmnist:sigma2=0.05', result })]);
    expect(mixed.columns).toEqual(['cmnist']);
    expect(table1Text(mixed)).toMatch(/Not in Table 1 \(a dataset variant of the paper's setting\): cmnist:sigma2=0\.05: cmnist with color jitter σ² 0\.05 \(the paper: 0\.02\) — 1 finished trial\./);
  });

  it('pools learning rates: per rate for a grid over seeds, log-spaced bins for a log-uniform sample', () => {
    const grid = poolByLearningRate([
      { lr: 0.1, value: 1 },
      { lr: 0.01, value: 2 },
      { lr: 0.1, value: 3 },
    ]);
    expect(grid.binned).toBe(false);
    expect(grid.pools.map((p) => [p.lr, p.values])).toEqual([
      [0.01, [2]],
      [0.1, [1, 3]],
    ]);
    // Nine distinct rates 10^-4 … 10^0 (half-decade steps): ⌈√9⌉ = 3 bins of 4/3 decades, three rates each.
    const sample = poolByLearningRate(Array.from({ length: 9 }, (_, i) => ({ lr: 10 ** (-4 + i / 2), value: i })));
    expect(sample.binned).toBe(true);
    expect(sample.pools.map((p) => p.values)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
    ]);
    expect(Math.log10(sample.pools[0].lr)).toBeCloseTo(-4 + 2 / 3, 12);
    expect(Math.log10(sample.pools[1].lr)).toBeCloseTo(-2, 12);
    expect(sample.pools[2].to).toBeCloseTo(1, 12);
  });

  it('writes CSV that quotes commas and quotes, and reads it back', () => {
    const rows = [{ a: 'x, "y"', b: 1.5, c: null, d: Number.NaN }];
    const text = toCsv(rows);
    expect(text).toBe('a,b,c,d\n"x, ""y""",1.5,,\n');
    expect(parseCsv(text)).toEqual([{ a: 'x, "y"', b: '1.5', c: '', d: '' }]);
    expect(toCsv([], ['p', 'q'])).toBe('p,q\n');
  });

  it('scopes SVG ids so that several inline figures cannot clash', () => {
    const svg = '<svg><clipPath id="clip1"><rect/></clipPath><g clip-path="url(#clip1)"></g><use href="#clip1"/></svg>';
    expect(scopeSvgIds(svg, 'fig-a')).toBe(
      '<svg><clipPath id="fig-a-clip1"><rect/></clipPath><g clip-path="url(#fig-a-clip1)"></g><use href="#fig-a-clip1"/></svg>',
    );
  });

  it('reports a study with nothing finished: Table 1 with the paper only, no figures, a note', async () => {
    const data = {
      studies: [{ id: 'empty', name: 'empty', preset: null, status: 'running' }],
      trials: [trial('p0', { status: 'running' })],
      timeline: [{ studyName: 'empty', trialKey: 'p0', worker: 'w', status: 'running', attempts: 1, startedAt: null, finishedAt: null }],
      counts: [{ studyName: 'empty', trials: 1, pending: 0, running: 1, done: 0, failed: 0 }],
      conditionSummary: [],
      epochs: new Map<string, ReportEpoch[]>(),
    };
    const report = buildReport(data);
    expect(report.figures).toEqual([]);
    expect(report.notes[0]).toMatch(/^1 trial\(s\) not finished yet/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-report-empty-'));
    try {
      const written = await writeReport(report, dir);
      const csv = fs.readFileSync(path.join(dir, 'tables', 'table1.csv'), 'utf8');
      expect(csv).toMatch(/^row,row_label,dataset,n,mean,std,/);
      // The column is shown with the paper's values and no numbers of ours.
      expect(parseCsv(csv).map((r) => [r.row, r.n, r.mean, r.paper_mean])).toEqual([
        ['unimodal', '0', '', '99.14'],
        ['vanilla', '0', '', '45.26'],
        ['rubi', '0', '', '44.79'],
        ['random', '0', '', '74.07'],
        ['guided', '0', '', '91.01'],
      ]);
      expect(fs.readFileSync(written.indexHtml, 'utf8')).toContain('no guided CMNIST trial here yet');
      const none = buildReport({ ...data, trials: [], timeline: [] });
      expect(none.table1.columns).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonicalJson } from '../../src/spec/canonical.ts';
import { trialKey, planStudy } from '../../src/spec/keys.ts';
import { logSpaced, logUniformSamples } from '../../src/spec/random.ts';
import { expandStudy, parseStudySpec, lrValues } from '../../src/spec/study.ts';
import { extendStudySpec } from '../../src/spec/study-model.ts';
import { CALIBRATION_EPOCHS, CALIBRATION_GRAY_EPOCHS, getPreset, listPresets, PRESETS } from '../../src/spec/presets.ts';
import { parseTrialSpec } from '../../src/spec/trial.ts';
import { LATE_FUSION_METHODS } from '../../src/spec/methods.ts';

describe('canonical JSON and trial keys', () => {
  it('sorts keys at every depth, drops undefined members, normalises numbers', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: undefined, x: -0 }], c: 0.1 + 0.2 } })).toBe('{"a":{"c":0.3,"d":[3,{"x":0,"z":1}]},"b":1}');
    expect(() => canonicalJson({ lr: Number.NaN })).toThrow(/non-finite/);
  });

  it('the key is the sha256 of the canonical, fully defaulted spec', () => {
    const expected = createHash('sha256').update('{"epochs":1,"kind":"noop","seed":0,"sleepMs":100}').digest('hex');
    expect(trialKey({ kind: 'noop' })).toBe(expected);
    expect(trialKey({ seed: 0, sleepMs: 100, kind: 'noop', epochs: 1 })).toBe(expected);
  });

  it('defaults and key order do not change a key; any real difference does', () => {
    const a = trialKey({ dataset: { name: 'cmnist' }, lr: 0.1, seed: 0 });
    expect(trialKey({ seed: 0, lr: 0.1, momentum: 0.9, dataset: { sigma2: 0.02, name: 'cmnist' } })).toBe(a);
    expect(trialKey({ dataset: { name: 'cmnist' }, lr: 0.2, seed: 0 })).not.toBe(a);
    expect(trialKey({ dataset: { name: 'cmnist' }, lr: 0.1, seed: 1 })).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the CMNIST palette is in the spec, so in the key: hue-wheel by default, rgb-corners by name', () => {
    const a = trialKey({ dataset: { name: 'cmnist' }, lr: 0.1, seed: 0 });
    expect(trialKey({ dataset: { name: 'cmnist', palette: 'hue-wheel' }, lr: 0.1, seed: 0 })).toBe(a);
    expect(trialKey({ dataset: { name: 'cmnist', palette: 'rgb-corners' }, lr: 0.1, seed: 0 })).not.toBe(a);
    expect(canonicalJson(parseTrialSpec({ dataset: { name: 'cmnist' }, lr: 0.1, seed: 0 }))).toContain('"palette":"hue-wheel"');
    expect(() => parseTrialSpec({ dataset: { name: 'cmnist', palette: 'sepia' }, lr: 0.1, seed: 0 })).toThrow(
      /dataset\.palette: .*'hue-wheel' \| 'rgb-corners'|dataset\.palette: .*"hue-wheel"\|"rgb-corners"/,
    );
  });
});

describe('seeded hyper-parameter samples', () => {
  it('log-uniform samples are reproducible from the seed, inside the range, uniform in the exponent', () => {
    const a = logUniformSamples(1e-5, 1, 2000, 7);
    expect(logUniformSamples(1e-5, 1, 2000, 7)).toEqual(a);
    expect(logUniformSamples(1e-5, 1, 2000, 8)).not.toEqual(a);
    for (const lr of a) expect(lr >= 1e-5 && lr <= 1).toBe(true);
    const exponents = a.map(Math.log10);
    const mean = exponents.reduce((s, x) => s + x, 0) / exponents.length;
    expect(Math.abs(mean - -2.5)).toBeLessThan(0.1); // uniform on [-5, 0]: mean -2.5, sd of the mean ≈ 0.032
    expect(exponents.filter((x) => x < -4).length / a.length).toBeGreaterThan(0.15); // ≈ 0.2 per unit interval
    expect(exponents.filter((x) => x < -4).length / a.length).toBeLessThan(0.25);
  });

  it("log-spaced grids reproduce the paper's nine ModelNet40 LRs and ten L1 λ", () => {
    expect(logSpaced(1e-3, 1, 9).map((x) => Number(x.toPrecision(3)))).toEqual([0.001, 0.00237, 0.00562, 0.0133, 0.0316, 0.075, 0.178, 0.422, 1]);
    expect(logSpaced(1e-9, 1e-3, 10).map((x) => Number(x.toPrecision(3)))).toEqual([1e-9, 4.64e-9, 2.15e-8, 1e-7, 4.64e-7, 2.15e-6, 1e-5, 4.64e-5, 2.15e-4, 1e-3]);
  });
});

describe('presets', () => {
  const counts = Object.fromEntries(listPresets().map((p) => [p.name, p.trials]));

  it("have the paper's sizes: 80/27/60-model sweeps each with its duplicated control, 30 L1 models, Table 1, Q, α, 3 views", () => {
    expect(counts['cmnist-greedy']).toBe(160);
    expect(counts['modelnet40-greedy']).toBe(54);
    expect(counts['nvgesture-greedy']).toBe(120);
    expect(counts['modelnet40-l1']).toBe(30);
    for (const d of ['cmnist', 'modelnet40', 'nvgesture']) expect(counts[`table1-${d}`]).toBe(18); // 4 algorithms × 3 + 2 SE × 3
    expect(counts['modelnet40-q']).toBe(15);
    expect(counts['modelnet40-alpha']).toBe(15);
    expect(counts['modelnet40-3views']).toBe(6); // §6.4: vanilla and guided × 3 on three views
  });

  it('every study has a -small variant with at most 8 trials and a few epochs', () => {
    for (const p of PRESETS.filter((p) => !p.name.endsWith('-small') && !p.name.startsWith('noop'))) {
      const small = getPreset(`${p.name}-small`);
      const trials = expandStudy(small);
      // The balance presets compare every method: one trial each is their minimum.
      expect(trials.length).toBeLessThanOrEqual(p.name.startsWith('balance-') ? small.conditions.length : 8);
      if (p.name === 'balance-cmnist') expect(trials.length).toBe(10);
      for (const t of trials) if (t.spec.kind === 'train') expect(t.spec.maxEpochs).toBeLessThanOrEqual(3);
    }
  });

  it('balance-cremad: every late-fusion method × 3 seeds on GPU workers, in OGM-GE\'s CREMA-D training setting', () => {
    const spec = getPreset('balance-cremad');
    expect(spec.queue).toBe('gpu');
    const trials = expandStudy(spec).map((t) => t.spec);
    const algorithms = ['vanilla', ...LATE_FUSION_METHODS];
    expect(trials).toHaveLength(3 * algorithms.length);
    expect(new Set(trials.map((t) => (t.kind === 'train' ? t.algorithm : null)))).toEqual(new Set(algorithms));
    for (const t of trials) {
      if (t.kind !== 'train' || t.dataset.name !== 'cremad') throw new Error('expected CREMA-D trials');
      expect([t.architecture, t.lr, t.momentum, t.weightDecay, t.batchSize, t.maxEpochs, t.width]).toEqual(['late-fusion', 0.001, 0.9, 1e-4, 64, 100, 1]);
      expect([t.dataset.frames, t.dataset.imageSize]).toEqual([2, 224]);
      if (t.algorithm === 'ogm-ge') expect(t.ogmGe!.alpha).toBe(0.8);
      if (t.algorithm === 'agm') expect([t.agm!.alpha, t.agm!.exponentCap]).toEqual([1, 10]);
    }
    expect(getPreset('balance-cremad-small').queue).toBe('cpu');
    expect(expandStudy(getPreset('balance-cremad-small'))).toHaveLength(algorithms.length);
  });

  it('the CMNIST sweep: 20 distinct LRs in [1e-5, 1] from the recorded seed, 4 inits, gray+gray control with the same LRs', () => {
    const spec = getPreset('cmnist-greedy');
    const [distinct, control] = spec.conditions;
    const lrs = lrValues(distinct.lr!);
    expect(new Set(lrs).size).toBe(20);
    for (const lr of lrs) expect(lr >= 1e-5 && lr <= 1).toBe(true);
    expect(distinct.seeds).toEqual([0, 1, 2, 3]);
    expect(control.base.modalities).toBe('duplicate-m1');
    expect(lrValues(control.lr!)).toEqual(lrs);
    expect('logUniform' in distinct.lr! && distinct.lr.logUniform.seed).toBeTypeOf('number');
  });

  it("the CMNIST calibration: Kim et al.'s seven σ², gray, and rgb-corners at 0.02, in the stated protocol", () => {
    const trials = expandStudy(getPreset('cmnist-calibration')).map((t) => t.spec);
    expect(trials).toHaveLength(9);
    const sigma2 = (t: (typeof trials)[number]) => (t.kind === 'train' && t.dataset.name === 'cmnist' ? [t.dataset.sigma2, t.dataset.palette, t.unimodalModality] : null);
    expect(trials.map(sigma2)).toEqual([
      // the σ² the ±6 tolerance is judged at and gray first, so that a run cut short still answers the question
      ...[0.02, 0.035, 0.05].map((v) => [v, 'hue-wheel', 0]),
      [0.02, 'hue-wheel', 1],
      ...[0.025, 0.03, 0.04, 0.045].map((v) => [v, 'hue-wheel', 0]),
      [0.02, 'rgb-corners', 0],
    ]);
    for (const t of trials) {
      if (t.kind !== 'train') throw new Error('calibration trials train');
      const epochs = t.unimodalModality === 1 ? CALIBRATION_GRAY_EPOCHS : CALIBRATION_EPOCHS;
      expect([t.architecture, t.algorithm, t.profile, t.lr, t.momentum, t.batchSize, t.maxEpochs, t.width]).toEqual(['unimodal-se', 'vanilla', 'paper', 0.01, 0.9, 128, epochs, 1]);
      expect(t.subset).toEqual({});
    }
  });

  it('the committed reproduction record parses: Table 1 (18 trials) and a 20-LR sweep with its gray+gray control', () => {
    const load = (name: string) => parseStudySpec(JSON.parse(readFileSync(new URL(`../../docs/reproduction/${name}`, import.meta.url), 'utf8')));
    const table1 = expandStudy(load('table1-cmnist.json'));
    expect(table1).toHaveLength(18);
    const greedy = load('cmnist-greedy.json');
    expect(greedy.conditions.map((c) => c.base.modalities)).toEqual(['distinct', 'duplicate-m1']);
    expect(new Set(lrValues(greedy.conditions[0].lr!)).size).toBeGreaterThanOrEqual(20);
    expect(lrValues(greedy.conditions[1].lr!)).toEqual(lrValues(greedy.conditions[0].lr!));
    for (const t of [...table1, ...expandStudy(greedy)]) {
      if (t.spec.kind !== 'train' || t.spec.dataset.name !== 'cmnist') throw new Error('the record trains CMNIST');
      expect([t.spec.dataset.palette, t.spec.dataset.sigma2, t.spec.profile]).toEqual(['hue-wheel', 0.02, 'paper']);
    }
  });

  it('NVGesture LRs lie in [1e-4, 10^-1.5]; every preset has unique keys', () => {
    for (const lr of lrValues(getPreset('nvgesture-greedy').conditions[0].lr!)) expect(lr >= 1e-4 && lr <= 10 ** -1.5).toBe(true);
    for (const p of PRESETS) {
      const keys = planStudy(p.build()).map((t) => t.key);
      expect(new Set(keys).size).toBe(keys.length);
    }
  });
});

describe('study specs', () => {
  const spec = parseStudySpec({
    name: 's',
    conditions: [
      { label: 'swept', base: { dataset: { name: 'cmnist' } }, lr: { grid: [0.1, 0.01] }, seeds: [0, 1] },
      { label: 'fixed', base: { dataset: { name: 'cmnist' }, lr: 0.5 }, seeds: [0] },
    ],
  });

  it('expands conditions × axes × seeds in a stable order', () => {
    const trials = expandStudy(spec);
    expect(trials.map((t) => t.spec.kind === 'train' && [t.label, t.spec.lr, t.spec.seed])).toEqual([
      ['swept', 0.1, 0],
      ['swept', 0.1, 1],
      ['swept', 0.01, 0],
      ['swept', 0.01, 1],
      ['fixed', 0.5, 0],
    ]);
  });

  it('extend adds seeds everywhere and LRs where there is an LR axis; existing keys stay', () => {
    const extended = extendStudySpec(spec, { seeds: [2], lr: [0.001] });
    const before = planStudy(spec).map((t) => t.key);
    const after = planStudy(extended).map((t) => t.key);
    expect(after).toHaveLength(3 * 3 + 2); // swept: 3 LRs × 3 seeds; fixed: 2 seeds
    for (const key of before) expect(after).toContain(key);
    expect(extendStudySpec(extended, { seeds: [2] })).toEqual(extended); // idempotent
  });

  it('identical trials of two conditions are one trial', () => {
    const twice = parseStudySpec({
      name: 'dup',
      conditions: [
        { label: 'a', base: { kind: 'noop' }, seeds: [0, 1] },
        { label: 'b', base: { kind: 'noop', sleepMs: 100 }, seeds: [1, 2] },
      ],
    });
    expect(expandStudy(twice)).toHaveLength(3);
  });

  it('rejects bad studies naming the field and the condition', () => {
    expect(() => parseStudySpec({ name: 'bad name!', conditions: [{ label: 'x', base: { kind: 'noop' } }] })).toThrow(/name/);
    expect(() => parseStudySpec({ name: 'x', conditions: [{ label: 'neg', base: { dataset: { name: 'cmnist' }, lr: -1 } }] })).toThrow(/condition 0 \(neg\)[\s\S]*lr/);
    expect(() => parseStudySpec({ name: 'x', conditions: [] })).toThrow(/conditions/);
  });
});

describe('streamed expansion of large studies', () => {
  it('iterateKeyedTrials gives, trial for trial, the spec, canonical JSON and key of parsing each trial on its own', async () => {
    const { iterateKeyedTrials } = await import('../../src/spec/keys.ts');
    const { canonicalJson } = await import('../../src/spec/canonical.ts');
    const { parseTrialSpec } = await import('../../src/spec/trial.ts');
    const spec = parseStudySpec({
      name: 'grid',
      conditions: [
        { label: 'g', base: { dataset: { name: 'cmnist' }, algorithm: 'guided' }, lr: { grid: [0.1, 0.01] }, alpha: [0.05, 0.1], q: [1, 5], seeds: [0, 7, 2 ** 31 - 1, 3] },
        { label: 'n', base: { kind: 'noop', sleepMs: 0 }, seeds: [5, 6] },
      ],
    });
    // The independent computation: every combination built and parsed from scratch, in the documented order.
    const expected: string[] = [];
    for (const lr of [0.1, 0.01]) for (const alpha of [0.05, 0.1]) for (const q of [1, 5]) for (const seed of [0, 7, 2 ** 31 - 1, 3])
      expected.push(canonicalJson(parseTrialSpec({ dataset: { name: 'cmnist' }, algorithm: 'guided', lr, alpha, q, seed })));
    for (const seed of [5, 6]) expected.push(canonicalJson(parseTrialSpec({ kind: 'noop', sleepMs: 0, seed })));
    const streamed = [...iterateKeyedTrials(spec)];
    expect(streamed.map((t) => t.canonical)).toEqual(expected);
    expect(streamed.map((t) => t.key)).toEqual(expected.map((c) => trialKey(JSON.parse(c))));
    expect(streamed.map((t) => canonicalJson(t.spec))).toEqual(expected);
  });
});

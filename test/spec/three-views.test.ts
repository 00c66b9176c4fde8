import { describe, expect, it } from 'vitest';
import { conditionOf } from '../../db/conditions.ts';
import { datasetColumn } from '../../src/report/model.ts';
import { getPreset, listPresets, MODELNET40_THREE_VIEWS } from '../../src/spec/presets.ts';
import { expandStudy, parseStudySpec } from '../../src/spec/study.ts';
import { InvalidSpecError, parseTrialSpec, type TrainTrialSpec } from '../../src/spec/trial.ts';

/** Three-view ModelNet40 (paper §6.4 last paragraph, paper-spec §8.6): what a spec may ask for, and the presets. */

const threeViews = (extra: Record<string, unknown> = {}) =>
  parseTrialSpec({ dataset: { name: 'modelnet40', views: [0, 4, 8] }, lr: 0.1, seed: 0, ...extra });

/** The error parseTrialSpec throws for `extra`, so that a test can check its fields and message. */
function refusal(extra: Record<string, unknown>, views: number[] = [0, 4, 8]): InvalidSpecError {
  try {
    parseTrialSpec({ dataset: { name: 'modelnet40', views }, lr: 0.1, seed: 0, ...extra });
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidSpecError);
    return e as InvalidSpecError;
  }
  throw new Error(`spec with ${JSON.stringify(extra)} on views ${views} was accepted`);
}

describe('three-view ModelNet40 specs', () => {
  it('accepts vanilla, guided and random on three distinct views', () => {
    for (const algorithm of ['vanilla', 'guided', 'random']) {
      const spec = threeViews({ algorithm }) as TrainTrialSpec;
      expect(spec.dataset).toMatchObject({ name: 'modelnet40', views: [0, 4, 8] });
      expect(spec).toMatchObject({ algorithm, modalities: 'distinct', architecture: 'mmtm' });
    }
  });

  it('refuses the duplicated-input controls with three views, naming modalities', () => {
    for (const modalities of ['duplicate-m0', 'duplicate-m1']) {
      const e = refusal({ modalities });
      expect(e.fields).toEqual(['modalities']);
      expect(e.message).toContain(`modalities: '${modalities}' is a two-view control, but dataset.views [0, 4, 8] has three views`);
    }
  });

  it('refuses RUBi with three views, naming algorithm', () => {
    const e = refusal({ algorithm: 'rubi' });
    expect(e.fields).toEqual(['algorithm']);
    expect(e.message).toMatch(/algorithm: 'rubi' is defined for two modalities only.*dataset\.views \[0, 4, 8\]/);
  });

  it('refuses the uni-modal SE baseline with three views, naming architecture', () => {
    const e = refusal({ architecture: 'unimodal-se' });
    expect(e.fields).toEqual(['architecture']);
    expect(e.message).toMatch(/architecture: 'unimodal-se' is a uni-modal baseline that uses one view.*give two views/);
  });

  it('reports every conflict of one spec at once', () => {
    expect(refusal({ algorithm: 'rubi', modalities: 'duplicate-m0', architecture: 'unimodal-se' }).fields).toEqual([
      'modalities',
      'algorithm',
      'architecture',
    ]);
  });

  it('refuses a repeated view index, with two or three views, naming dataset.views', () => {
    for (const views of [[0, 0], [0, 4, 0], [3, 3, 3]]) {
      const e = refusal({}, views);
      expect(e.fields).toEqual(['dataset.views']);
      expect(e.message).toContain(`view ${views[0]} is given twice in [${views.join(', ')}]`);
      expect(e.message).toContain("'duplicate-m0'");
    }
  });

  it('keeps every two-view construction valid: controls, RUBi, uni-modal baselines', () => {
    const twoViews = { dataset: { name: 'modelnet40' }, lr: 0.1, seed: 0 };
    expect(parseTrialSpec({ ...twoViews, modalities: 'duplicate-m0' })).toMatchObject({ modalities: 'duplicate-m0', dataset: { views: [0, 6] } });
    expect(parseTrialSpec({ ...twoViews, algorithm: 'rubi' })).toMatchObject({ algorithm: 'rubi' });
    expect(parseTrialSpec({ ...twoViews, architecture: 'unimodal-se', unimodalModality: 1 })).toMatchObject({ architecture: 'unimodal-se' });
    expect(parseTrialSpec({ ...twoViews, dataset: { name: 'modelnet40', views: [4, 8] }, algorithm: 'rubi' })).toMatchObject({ algorithm: 'rubi' });
  });

  it('a study condition with a three-view RUBi is refused before any trial runs, naming the condition', () => {
    expect(() =>
      parseStudySpec({
        name: 'bad-3views',
        conditions: [{ label: 'rubi 3 views', base: { dataset: { name: 'modelnet40', views: [0, 4, 8] }, lr: 0.1, algorithm: 'rubi' } }],
      }),
    ).toThrow(/condition 0 \(rubi 3 views\)[\s\S]*algorithm: 'rubi' is defined for two modalities only/);
  });
});

describe('three-view ModelNet40 presets', () => {
  it('vanilla and guided on views 0, 4, 8 in Table 1\'s ModelNet40 setting, 3 runs each (1 when small)', () => {
    const counts = Object.fromEntries(listPresets().map((p) => [p.name, p.trials]));
    expect(counts['modelnet40-3views']).toBe(6);
    expect(counts['modelnet40-3views-small']).toBe(2);
    expect(MODELNET40_THREE_VIEWS).toEqual([0, 4, 8]);
    const trials = expandStudy(getPreset('modelnet40-3views'));
    expect(trials.map((t) => t.spec.kind === 'train' && [t.label, t.spec.algorithm, t.spec.seed])).toEqual([
      ['vanilla', 'vanilla', 0],
      ['vanilla', 'vanilla', 1],
      ['vanilla', 'vanilla', 2],
      ['guided', 'guided', 0],
      ['guided', 'guided', 1],
      ['guided', 'guided', 2],
    ]);
    for (const t of trials) {
      expect(t.spec).toMatchObject({ lr: 0.1, alpha: 0.01, q: 5, modalities: 'distinct', architecture: 'mmtm', dataset: { name: 'modelnet40', views: [0, 4, 8] } });
    }
  });

  it('each trial is its Table 1 ModelNet40 counterpart with three views instead of two (full and small)', () => {
    for (const s of ['', '-small']) {
      const table1 = expandStudy(getPreset(`table1-modelnet40${s}`));
      for (const t of expandStudy(getPreset(`modelnet40-3views${s}`))) {
        const spec = t.spec as TrainTrialSpec;
        const twin = table1.find((u) => u.label === t.label && u.spec.seed === spec.seed)!.spec as TrainTrialSpec;
        expect(spec).toEqual({ ...twin, dataset: { ...twin.dataset, views: [0, 4, 8] } });
      }
    }
  });

  it('its trials land in the report column of the paper\'s three-view results', () => {
    for (const name of ['modelnet40-3views', 'modelnet40-3views-small']) {
      for (const t of expandStudy(getPreset(name))) {
        const c = conditionOf(t.spec);
        expect(c.datasetVariant).toBe('views=0,4,8');
        expect(datasetColumn(c.dataset, c.datasetVariant)).toBe('modelnet40-3views');
      }
    }
  });
});

import { describe, expect, it } from 'vitest';
import { formatResult, specFromFlags } from '../../src/cli/commands/train.ts';
import type { TrialResult } from '../../src/spec/contracts.ts';
import { parseTrialSpec } from '../../src/spec/trial.ts';

/** `mmsweep train`'s human summary and its --views flag (three-view ModelNet40, paper-spec §8.6). */

const base: TrialResult = {
  testAcc: 91.5,
  accF: 91.25,
  accF0: 88,
  accF1: 80,
  accF0Prime: 66,
  accF1Prime: 72,
  uM1GivenM0: 0.25,
  uM0GivenM1: 0.1,
  dUtil: 0.15,
  dSpeed: -0.125,
  rF: 0.0123456,
  bestEpoch: 7,
  stepsT: 8400,
  diverged: false,
  backend: 'cpu',
  device: 'cpu',
  epochs: 12,
  profile: 'code',
  wallSeconds: 123.45,
};

describe('mmsweep train summary', () => {
  it('two modalities: the A(f0) … A(f1′) line and the u(m1|m0), u(m0|m1) line, with or without perModality', () => {
    const expected = [
      'trained 12 epochs on cpu (code profile)',
      'test acc 91.50 % (best val epoch 7, step 8400)',
      "A(f0) 88.00  A(f0') 66.00  A(f1) 80.00  A(f1') 72.00",
      'u(m1|m0) 0.2500  u(m0|m1) 0.1000  d_util 0.1500  d_speed -0.1250  R(f) 0.012346',
      '123.5 s',
      '',
    ].join('\n');
    expect(formatResult(base)).toBe(expected);
    const perModality = [
      { name: 'front', accF: 88, accFPrime: 66, u: 0.25 },
      { name: 'rear', accF: 80, accFPrime: 72, u: 0.1 },
    ];
    expect(formatResult({ ...base, perModality })).toBe(expected);
  });

  it('three modalities: one line per modality with A(f_k), A(f_k′), u(rest|m_k), then d_util, d_speed, R(f)', () => {
    // u = (88 − 66)/88 = 0.25, (80 − 72)/80 = 0.1, A(f2) = 0 → u undefined; d_util = max u − min u = 0.15.
    const r: TrialResult = {
      ...base,
      dSpeed: 0.375,
      perModality: [
        { name: 'front', accF: 88, accFPrime: 66, u: 0.25 },
        { name: 'v005', accF: 80, accFPrime: 72, u: 0.1 },
        { name: 'v009', accF: 0, accFPrime: 0, u: null },
      ],
    };
    expect(formatResult(r)).toBe(
      [
        'trained 12 epochs on cpu (code profile)',
        'test acc 91.50 % (best val epoch 7, step 8400)',
        "m0 front  A(f0) 88.00  A(f0') 66.00  u(rest|m0) 0.2500",
        "m1 v005   A(f1) 80.00  A(f1') 72.00  u(rest|m1) 0.1000",
        "m2 v009   A(f2) 0.00  A(f2') 0.00  u(rest|m2) n/a",
        'd_util 0.1500  d_speed 0.3750  R(f) 0.012346',
        '123.5 s',
        '',
      ].join('\n'),
    );
  });

  it('a diverged three-view run says so first', () => {
    const r = { ...base, diverged: true, perModality: ['front', 'v005', 'v009'].map((name) => ({ name, accF: 2.5, accFPrime: 2.5, u: 0 })) };
    expect(formatResult(r).split('\n').slice(0, 3)).toEqual([
      'DIVERGED after 12 epochs',
      'test acc 91.50 % (best val epoch 7, step 8400)',
      "m0 front  A(f0) 2.50  A(f0') 2.50  u(rest|m0) 0.0000",
    ]);
  });
});

describe('mmsweep train --views', () => {
  it('sets dataset.views of modelnet40, keeping the other dataset options', () => {
    const spec = parseTrialSpec(specFromFlags({ dataset: 'modelnet40', data: '/data/mv', views: '0,4,8', lr: '0.1', seed: '0', algorithm: 'guided' }));
    expect(spec).toMatchObject({ algorithm: 'guided', dataset: { name: 'modelnet40', root: '/data/mv', views: [0, 4, 8] } });
  });

  it('is refused for datasets without views, and bad indices are refused naming dataset.views', () => {
    expect(() => specFromFlags({ views: '0,4,8', lr: '0.1', seed: '0' })).toThrow(/--views: only modelnet40 has views \(the dataset is cmnist\)/);
    expect(() => parseTrialSpec(specFromFlags({ dataset: 'modelnet40', views: '0,x,8', lr: '0.1', seed: '0' }))).toThrow(/dataset\.views\.1:/);
    expect(() => parseTrialSpec(specFromFlags({ dataset: 'modelnet40', views: '0,4,4', lr: '0.1', seed: '0' }))).toThrow(/dataset\.views: view 4 is given twice/);
    expect(() => parseTrialSpec(specFromFlags({ dataset: 'modelnet40', views: '0,4,8', modalities: 'duplicate-m0', lr: '0.1', seed: '0' }))).toThrow(
      /modalities: 'duplicate-m0' is a two-view control/,
    );
  });
});

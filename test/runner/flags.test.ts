import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { specFromFlags } from '../../src/cli/commands/train.ts';
import { parseTrialSpec } from '../../src/spec/trial.ts';

describe('mmsweep train flags → TrialSpec', () => {
  it('maps every knob and lets flags override the spec file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-flags-'));
    const file = path.join(dir, 'spec.json');
    fs.writeFileSync(file, JSON.stringify({ dataset: { name: 'cmnist', sigma2: 0.03 }, lr: 0.5, seed: 9, subset: { val: 100 }, fidelity: { gateScale: 2 } }));
    const raw = specFromFlags({
      spec: file, dataset: 'cmnist', lr: '0.01', seed: '2', algorithm: 'guided', alpha: '0.2', q: '7', l1: '1e-5',
      profile: 'paper', subset: '512', subsetTest: '64', maxEpochs: '3', batchSize: '32', width: '0.5', backend: 'cpu',
      modalities: 'duplicate-m1', rubiBias: '1', fidelity: 'evalInCurrentMode=true,speedLogBase=e',
    });
    const spec = parseTrialSpec(raw);
    expect(spec).toMatchObject({
      kind: 'train', lr: 0.01, seed: 2, algorithm: 'guided', alpha: 0.2, q: 7, l1: 1e-5, profile: 'paper', maxEpochs: 3,
      batchSize: 32, width: 0.5, backend: 'cpu', modalities: 'duplicate-m1', rubiBiasModality: 1,
      subset: { train: 512, val: 100, test: 64 },
      fidelity: { gateScale: 2, evalInCurrentMode: true, speedLogBase: 'e' },
    });
    // The file's dataset options survive a --dataset naming the same dataset.
    expect(spec.kind === 'train' && spec.dataset).toMatchObject({ name: 'cmnist', sigma2: 0.03 });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--palette and --sigma2 set the CMNIST dataset fields; the palette defaults to hue-wheel', () => {
    expect(parseTrialSpec(specFromFlags({ lr: '0.1', seed: '1', palette: 'rgb-corners', sigma2: '0.035' }))).toMatchObject({
      dataset: { name: 'cmnist', palette: 'rgb-corners', sigma2: 0.035 },
    });
    expect(parseTrialSpec(specFromFlags({ lr: '0.1', seed: '1' }))).toMatchObject({ dataset: { name: 'cmnist', palette: 'hue-wheel', sigma2: 0.02 } });
    expect(() => parseTrialSpec(specFromFlags({ lr: '0.1', seed: '1', sigma2: 'wide' }))).toThrow(/dataset\.sigma2:/);
    expect(() => specFromFlags({ lr: '0.1', seed: '1', dataset: 'nvgesture', sigma2: '0.03' })).toThrow(/--sigma2: only cmnist/);
  });

  it('a non-numeric number flag reaches the schema as NaN and is rejected naming the field', () => {
    expect(() => parseTrialSpec(specFromFlags({ lr: 'fast', seed: '1' }))).toThrow(/lr:/);
  });
});

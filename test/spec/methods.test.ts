import { describe, expect, it } from 'vitest';
import { conditionOf } from '../../db/conditions.ts';
import { trialKey } from '../../src/spec/keys.ts';
import { parseTrialSpec, type TrainTrialSpec } from '../../src/spec/trial.ts';

const parse = (input: Record<string, unknown>) => parseTrialSpec({ dataset: { name: 'cmnist' }, lr: 0.01, ...input }) as TrainTrialSpec;
const message = (input: Record<string, unknown>) => {
  try {
    parse(input);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the spec to be refused');
};

describe('method hyperparameters in the TrialSpec', () => {
  it('leaves the keys of the paper’s specs unchanged (computed with the code before the methods existed)', () => {
    expect(trialKey({ dataset: { name: 'cmnist' }, lr: 0.01, seed: 0 })).toBe('69cfcdd7edadbf342a0601900d16ea7f3aef55d492ba79323c848e3fd1906ce2');
    expect(trialKey({ dataset: { name: 'cmnist' }, lr: 0.01, seed: 1, algorithm: 'guided', architecture: 'mmtm' })).toBe(
      '032caf691631a75354902126c7f63c1f7c1b27811e941e3af0162cfb1e85138c',
    );
    const vanilla = parse({});
    expect(vanilla.architecture).toBe('mmtm');
    expect('ogmGe' in vanilla || 'gradientBlending' in vanilla).toBe(false);
  });

  it('fills the published defaults of the chosen method, resolves late fusion, and hashes the values', () => {
    const ogm = parse({ algorithm: 'ogm-ge' });
    expect(ogm.architecture).toBe('late-fusion');
    expect(ogm.ogmGe).toEqual({ alpha: 0.1, coefficient: 'published', noise: true, startEpoch: 1, endEpoch: 50 });
    expect(trialKey(ogm)).toBe(trialKey({ dataset: { name: 'cmnist' }, lr: 0.01, algorithm: 'ogm-ge', ogmGe: { alpha: 0.1 } }));
    expect(trialKey(ogm)).not.toBe(trialKey({ dataset: { name: 'cmnist' }, lr: 0.01, algorithm: 'ogm-ge', ogmGe: { alpha: 0.8 } }));
    const gb = parse({ algorithm: 'gradient-blending', dataset: { name: 'cmnist', heldOutValidation: 5000 } });
    expect(gb.gradientBlending).toEqual({ superEpoch: 1 });
    // AGM: the official code's AV-MNIST setting (alpha 2.5, modulated for the whole run, no exponent cap, clip guard on).
    const agm = parse({ algorithm: 'agm' });
    expect(agm.architecture).toBe('late-fusion');
    expect(agm.agm).toEqual({ alpha: 2.5, startEpoch: 1, endEpoch: 1000, exponentCap: null, gradientClip: true });
    expect(parse({ algorithm: 'agm', agm: { exponentCap: 10 } }).agm!.exponentCap).toBe(10);
    expect(trialKey(agm)).not.toBe(trialKey({ dataset: { name: 'cmnist' }, lr: 0.01, algorithm: 'agm', agm: { exponentCap: 10 } }));
    expect(parseTrialSpec(agm)).toEqual(agm);
    // Parsing a parsed spec again gives the same spec (keys are computed that way).
    expect(parseTrialSpec(ogm)).toEqual(ogm);
  });

  it('refuses mismatched methods, architectures and hyperparameters with a message naming the fix', () => {
    expect(message({ ogmGe: { alpha: 0.5 } })).toMatch(/ogmGe holds the hyperparameters of 'ogm-ge', but the algorithm is 'vanilla'/);
    expect(message({ algorithm: 'ogm-ge', architecture: 'mmtm' })).toMatch(/set architecture 'late-fusion'/);
    expect(message({ algorithm: 'guided', architecture: 'late-fusion' })).toMatch(/'guided' acts on the MMTM net/);
    expect(message({ architecture: 'late-fusion', dataset: { name: 'modelnet40' } })).toMatch(/'late-fusion' is built for cmnist and cremad, not modelnet40/);
    expect(message({ algorithm: 'gradient-blending' })).toMatch(/heldOutValidation/);
    expect(message({ algorithm: 'ogm-ge', ogmGe: { alhpa: 0.5 } })).toMatch(/alhpa.*alpha/s);
    expect(message({ algorithm: 'ogm-ge', ogmGe: { alpha: -1 } })).toMatch(/ogmGe\.alpha/);
    expect(message({ agm: { alpha: 1 } })).toMatch(/agm holds the hyperparameters of 'agm', but the algorithm is 'vanilla'/);
    expect(message({ algorithm: 'agm', architecture: 'mmtm' })).toMatch(/set architecture 'late-fusion'/);
    expect(message({ algorithm: 'agm', agm: { exponentCap: 0 } })).toMatch(/agm\.exponentCap/);
  });
});

describe('CREMA-D in the TrialSpec', () => {
  const cremad = (input: Record<string, unknown> = {}) => parse({ dataset: { name: 'cremad' }, ...input });
  it('resolves the late-fusion net and the published loader settings, and refuses the MMTM nets', () => {
    const spec = cremad();
    expect(spec.architecture).toBe('late-fusion');
    expect(spec.profile).toBe('paper');
    expect(spec.dataset).toEqual({ name: 'cremad', frames: 2, imageSize: 224, splitSeed: 0, valFraction: 0.1 });
    expect(cremad({ algorithm: 'gradient-blending' }).gradientBlending).toEqual({ superEpoch: 1 });
    expect(message({ dataset: { name: 'cremad' }, architecture: 'mmtm' })).toMatch(/cremad is trained with the late-fusion net.*'mmtm' is not built for it/);
    expect(message({ dataset: { name: 'cremad' }, architecture: 'unimodal-se' })).toMatch(/'unimodal-se' is not built for it/);
    expect(message({ dataset: { name: 'cremad' }, algorithm: 'guided' })).toMatch(/'guided' acts on the MMTM net.*mmpareto, agm \(cremad has no MMTM net\)/);
    expect(message({ dataset: { name: 'cremad', valFraction: 1 } })).toMatch(/dataset\.valFraction/);
    expect(message({ dataset: { name: 'cremad', frames: 0 } })).toMatch(/dataset\.frames/);
  });

  it('names the loader settings that differ from the published ones in the condition columns', () => {
    expect(conditionOf(cremad())).toMatchObject({ dataset: 'cremad', datasetVariant: '', architecture: 'late-fusion' });
    expect(conditionOf(cremad({ dataset: { name: 'cremad', frames: 1, imageSize: 32 } })).datasetVariant).toBe('frames=1,imageSize=32');
  });
});

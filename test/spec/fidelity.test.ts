import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { specFromFlags } from '../../src/cli/commands/train.ts';
import { FIDELITY_PROFILES, fidelitySwitchesSchema, resolveFidelity, trialFidelity } from '../../src/spec/fidelity.ts';
import { trialKey } from '../../src/spec/keys.ts';
import { InvalidSpecError, parseTrialSpec, type TrainTrialSpec } from '../../src/spec/trial.ts';

const train = (input: Record<string, unknown>) => parseTrialSpec({ lr: 0.01, seed: 0, ...input }) as TrainTrialSpec;

describe('the profile of a spec that names none (issue 13: defaults that learn)', () => {
  it('resolves per dataset: paper where no code was released (CMNIST, NVGesture), code for ModelNet40', () => {
    expect(train({ dataset: { name: 'cmnist' } }).profile).toBe('paper');
    expect(train({ dataset: { name: 'nvgesture' } }).profile).toBe('paper');
    expect(train({ dataset: { name: 'modelnet40' } }).profile).toBe('code');
    expect(train({ dataset: { name: 'cmnist' }, profile: 'code' }).profile).toBe('code');
    expect(train({ dataset: { name: 'modelnet40' }, profile: 'paper' }).profile).toBe('paper');
  });

  it('the key hashes the resolved profile: a bare spec and its explicit twin are one trial', () => {
    for (const [name, profile] of [['cmnist', 'paper'], ['nvgesture', 'paper'], ['modelnet40', 'code']] as const) {
      const bare = { dataset: { name }, lr: 0.01, seed: 0 };
      expect(trialKey(bare)).toBe(trialKey({ ...bare, profile }));
      expect(trialKey(bare)).not.toBe(trialKey({ ...bare, profile: profile === 'paper' ? 'code' : 'paper' }));
    }
    // By hand: the key is the sha256 of the sorted-key JSON of the parsed spec, which holds "profile":"paper".
    const parsed = train({ dataset: { name: 'cmnist' } });
    const json = sortedJson(parsed);
    expect(json).toContain('"profile":"paper"');
    expect(trialKey({ dataset: { name: 'cmnist' }, lr: 0.01, seed: 0 })).toBe(createHash('sha256').update(json).digest('hex'));
  });
});

/** JSON with object keys sorted at every depth, undefined members dropped (written here, not the project's). */
function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${sortedJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

describe('resolved switches', () => {
  it("the paper profile re-balances θk only ('branchOnly', D4); both profiles watch loss + λ‖θ‖₁ and keep λ·sign(θ) in G", () => {
    expect(FIDELITY_PROFILES.paper.rebalanceUpdates).toBe('branchOnly');
    expect(FIDELITY_PROFILES.code.rebalanceUpdates).toBe('all');
    for (const profile of ['code', 'paper'] as const) {
      expect(FIDELITY_PROFILES[profile]).toMatchObject({ plateauLoss: 'lossPlusL1', muGradientIncludesL1: true });
    }
  });

  it('D10/D11 are ModelNet40 quirks: off for NVGesture and CMNIST in every profile, on for ModelNet40 in code', () => {
    expect(resolveFidelity('code', {}, 'modelnet40')).toMatchObject({ augmentValidation: true, augmentUtilizationMeans: true });
    for (const dataset of ['nvgesture', 'cmnist'] as const) {
      expect(resolveFidelity('code', {}, dataset)).toMatchObject({ augmentValidation: false, augmentUtilizationMeans: false });
    }
    expect(trialFidelity(train({ dataset: { name: 'nvgesture' }, profile: 'code' }))).toMatchObject({ augmentValidation: false });
    expect(trialFidelity(train({ dataset: { name: 'modelnet40' }, fidelity: { augmentValidation: false } })).augmentValidation).toBe(false);
  });

  it('refuses a ModelNet40 loader quirk switched on for another dataset, naming the field and the fix', () => {
    for (const name of ['nvgesture', 'cmnist']) {
      let error: unknown;
      try {
        train({ dataset: { name }, profile: 'code', fidelity: { augmentValidation: true, augmentUtilizationMeans: true } });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidSpecError);
      expect((error as InvalidSpecError).fields).toEqual(['fidelity.augmentValidation', 'fidelity.augmentUtilizationMeans']);
      expect((error as Error).message).toMatch(new RegExp(`augmentValidation replicates a quirk of the released modelnet40 loader.*${name} inference is unaugmented.*drop the override`));
    }
    expect(() => train({ dataset: { name: 'modelnet40' }, fidelity: { augmentValidation: true } })).not.toThrow();
  });

  it('--fidelity overrides the new switches; a bad value names the switch', () => {
    const spec = parseTrialSpec(
      specFromFlags({ lr: '0.01', fidelity: 'rebalanceUpdates=branchOnly,plateauLoss=loss,muGradientIncludesL1=false' }),
    ) as TrainTrialSpec;
    expect(trialFidelity(spec)).toMatchObject({ rebalanceUpdates: 'branchOnly', plateauLoss: 'loss', muGradientIncludesL1: false });
    expect(trialFidelity(train({ dataset: { name: 'cmnist' }, fidelity: { rebalanceUpdates: 'all' } })).rebalanceUpdates).toBe('all');
    expect(() => parseTrialSpec(specFromFlags({ lr: '0.01', fidelity: 'plateauLoss=ce' }))).toThrow(/fidelity\.plateauLoss:/);
    expect(() => parseTrialSpec(specFromFlags({ lr: '0.01', fidelity: 'muGradientIncludesL1=maybe' }))).toThrow(/fidelity\.muGradientIncludesL1:/);
    // Every switch of the schema has a value in both profiles (a switch missing from one would fail to parse).
    for (const profile of ['code', 'paper'] as const) expect(() => fidelitySwitchesSchema.parse(FIDELITY_PROFILES[profile])).not.toThrow();
  });

  it('a bare `mmsweep train` spec is valid: seed defaults to 0', () => {
    const spec = parseTrialSpec(specFromFlags({ dataset: 'cmnist', algorithm: 'guided', lr: '0.01' })) as TrainTrialSpec;
    expect([spec.seed, spec.profile]).toEqual([0, 'paper']);
  });
});

import { describe, expect, it } from 'vitest';
import { specFromFlags } from '../../src/cli/commands/train.ts';
import { runMmsweep } from './run-cli.ts';

/** `mmsweep train --algorithm <method> --method-params k=v,…`: the method's block of the TrialSpec, checked by the schema. */
describe('mmsweep train --method-params', () => {
  it('fills the chosen method’s hyperparameter block', () => {
    expect(specFromFlags({ algorithm: 'ogm-ge', lr: '0.01', methodParams: 'alpha=0.8,noise=false' })).toMatchObject({
      algorithm: 'ogm-ge',
      ogmGe: { alpha: 0.8, noise: false },
    });
    expect(specFromFlags({ algorithm: 'mmpareto', methodParams: 'gamma=2' })).toMatchObject({ mmPareto: { gamma: 2 } });
    // `null` is a value (AGM's uncapped exponent), not the string 'null'.
    expect(specFromFlags({ algorithm: 'agm', methodParams: 'alpha=1.5,exponentCap=null,gradientClip=false' })).toMatchObject({
      agm: { alpha: 1.5, exponentCap: null, gradientClip: false },
    });
    expect(() => specFromFlags({ algorithm: 'guided', methodParams: 'alpha=1' })).toThrow(/algorithm 'guided' has no method hyperparameters/);
    expect(() => specFromFlags({ methodParams: 'alpha=1' })).toThrow(/algorithm 'vanilla' has no method hyperparameters/);
  });

  it('the real command exits 2 naming the field: a misspelt hyperparameter, a method on the MMTM net', async () => {
    const a = await runMmsweep(['train', '--lr', '0.01', '--algorithm', 'ogm-ge', '--method-params', 'alhpa=0.8']);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toMatch(/ogmGe\.alhpa: unknown key \(did you mean alpha\?\)/);
    const b = await runMmsweep(['train', '--lr', '0.01', '--algorithm', 'pmr', '--architecture', 'mmtm']);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/set architecture 'late-fusion'/);
  }, 60_000);
});

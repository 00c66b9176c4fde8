import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runMmsweep } from './run-cli.ts';

// Issue 17, U4: every invalid input exits with 2, including the usage errors commander itself reports (it exits
// with 1 unless told otherwise), and an unknown study named on the command line.
describe('usage errors exit with 2, help with 0', () => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-usage-'));
  const env = { MMSWEEP_HOME: home, DATABASE_URL: '' };
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it.each([
    [['run', '--bogus'], /unknown option '--bogus'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['sql'], /missing required argument/],
    [['study', 'status', 'a', 'b', 'c'], /too many arguments|unknown/],
  ])('mmsweep %j', async (args, message) => {
    const outcome = await runMmsweep(args, env);
    expect(outcome.stderr).toMatch(message);
    expect(outcome.exitCode).toBe(2);
  });

  it('--help exits with 0', async () => {
    const outcome = await runMmsweep(['run', '--help'], env);
    expect(outcome.stdout).toMatch(/Usage: mmsweep run/);
    expect(outcome.exitCode).toBe(0);
  });

  it('an unknown study exits with 2 and says which studies exist', async () => {
    const outcome = await runMmsweep(['report', 'no-such-study'], env);
    expect(outcome.stderr).toMatch(/no study "no-such-study" in the results store\. This database has no studies yet/);
    expect(outcome.exitCode).toBe(2);
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runInProcess } from '../cli/run-cli.ts';
import { claimTrialAttempt, openDatabase, recordResult, registerTrials, upsertStudy, type DbHandle } from '../../db/index.ts';
import { register as registerExport } from '../../src/cli/commands/export.ts';
import { register as registerResults } from '../../src/cli/commands/results.ts';
import { register as registerSql } from '../../src/cli/commands/sql.ts';
import { cmnistSpec, result } from './store.suite.ts';
import { createServerDatabase, tempDir } from './targets.ts';

/** `mmsweep results | sql | export` run in-process against a fresh database on the server (via DATABASE_URL). */
describe('results-store CLI commands', () => {
  let database: Awaited<ReturnType<typeof createServerDatabase>>;
  let handle: DbHandle;
  const savedUrl = process.env.DATABASE_URL;
  const dir = tempDir('mmsweep-cli-');

  beforeAll(async () => {
    database = await createServerDatabase();
    handle = await openDatabase({ url: database.url });
    process.env.DATABASE_URL = database.url;
    await upsertStudy(handle.db, { id: 'cli', name: 'CLI study', spec: {} });
    const specs = [
      { key: 'cli-v1', spec: cmnistSpec({ seed: 1 }), acc: 40 },
      { key: 'cli-v2', spec: cmnistSpec({ seed: 2 }), acc: 50 },
      { key: 'cli-g1', spec: cmnistSpec({ seed: 1, algorithm: 'guided' }), acc: 90 },
    ];
    await registerTrials(handle.db, 'cli', specs.map((s) => ({ trialKey: s.key, spec: s.spec })));
    for (const s of specs) {
      await claimTrialAttempt(handle.db, s.key, 1, { worker: 'w' });
      await recordResult(handle.db, s.key, 1, result({ testAcc: s.acc }));
    }
  });
  afterAll(async () => {
    if (savedUrl === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = savedUrl;
    await handle?.close();
    await database?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const run = runInProcess;

  it('results prints the aggregates per condition, as JSON, CSV or a table', async () => {
    const json = await run(registerResults, ['results', 'cli', '--by', 'algorithm', '--format', 'json']);
    expect(json.exitCode).toBe(0);
    const rows = JSON.parse(json.stdout) as Record<string, unknown>[];
    expect(rows.map((r) => [r.algorithm, r.n, r.test_acc_mean])).toEqual([['guided', 1, 90], ['vanilla', 2, 45]]);
    expect(rows[1].test_acc_std).toBeCloseTo(Math.SQRT2 * 5, 12);

    const csv = await run(registerResults, ['results', 'CLI study', '--by', 'algorithm,lr', '--format', 'csv']);
    expect(csv.stdout.split('\n')[0]).toBe('algorithm,lr,n,test_acc_mean,test_acc_std,acc_f_mean,acc_f_std,d_util_mean,d_util_std,d_speed_mean,d_speed_std,r_f_mean,r_f_std,diverged_fraction');
    expect(csv.stdout.split('\n')[1]).toMatch(/^guided,0\.01,1,90,,/);

    const table = await run(registerResults, ['results', 'cli']);
    expect(table.stdout).toMatch(/^dataset\s+dataset_variant\s+architecture/);
    expect(table.stdout).toContain('(2 rows)');
  });

  it('results names an unknown study or grouping column', async () => {
    const missing = await run(registerResults, ['results', 'nope']);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/no study "nope"/);
    const badBy = await run(registerResults, ['results', 'cli', '--by', 'seed']);
    expect(badBy.exitCode).toBe(2);
    expect(badBy.stderr).toMatch(/cannot group by seed/);
  });

  it('sql prints a query and refuses writes with exit code 2', async () => {
    const ok = await run(registerSql, ['sql', 'select trial_key, test_acc from trial_outcomes order by trial_key', '--format', 'csv']);
    expect(ok.stdout).toBe('trial_key,test_acc\ncli-g1,90\ncli-v1,40\ncli-v2,50\n');
    const refused = await run(registerSql, ['sql', "update results set test_acc = 100"]);
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toMatch(/^mmsweep: refused: mmsweep sql runs queries read-only/);
    const again = await run(registerSql, ['sql', 'select max(test_acc)::int as m from results', '--format', 'json']);
    expect(JSON.parse(again.stdout)).toEqual([{ m: 90 }]);
  });

  it('export writes CSV to stdout and Parquet to a file', async () => {
    const csv = await run(registerExport, ['export', 'cli']);
    const lines = csv.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0].startsWith('study_id,trial_key,position,label,dataset')).toBe(true);
    const file = path.join(dir, 'cli.parquet');
    const parquet = await run(registerExport, ['export', 'cli', '--format', 'parquet', '--out', file]);
    expect(parquet.exitCode).toBe(0);
    const bytes = fs.readFileSync(file);
    const rows = (await parquetReadObjects({ file: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) })) as Record<string, unknown>[];
    expect(rows.map((r) => [r.trial_key, r.algorithm, r.test_acc])).toEqual([
      ['cli-v1', 'vanilla', 40],
      ['cli-v2', 'vanilla', 50],
      ['cli-g1', 'guided', 90],
    ]);
  });
});

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { spawn } from 'node:child_process';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { embeddedFiles, embeddedServerInfo, GuestSandbox, openDatabase, registerTrials, rowsOf, runReadOnlyQuery, upsertStudy, type DbHandle } from '../../db/index.ts';
import { register as registerSql } from '../../src/cli/commands/sql.ts';
import { cmnistSpec } from '../db/store.suite.ts';
import { copyPgliteTemplate, createServerDatabase, SERVER_ADMIN_URL, tempDir } from '../db/targets.ts';
import { repoRoot, runInProcess, runMmsweep } from './run-cli.ts';

/**
 * Issue 17: every reproduction of the hostile-input report, asserting the new behaviour. The security cases run
 * against the real Postgres server with a superuser DATABASE_URL and against the embedded database.
 */

const scratch = tempDir('mmsweep-hostile-');
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function withEnv(vars: Record<string, string | undefined>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

/** S1: what a superuser connection could do inside a READ ONLY transaction before; each must be refused now. */
function dangerousQueries(marker: string, victimPid: () => number | null) {
  return [
    ['COPY … TO PROGRAM', `copy (select 1) to program 'touch ${marker}'`],
    ['COPY … TO a server file', `copy (select 1) to '${marker}'`],
    ['pg_read_file', `select pg_read_file('/etc/passwd')`],
    ['pg_ls_dir', `select pg_ls_dir('/')`],
    ['lo_import', `select lo_import('/etc/passwd')`],
    ['pg_reload_conf', `select pg_reload_conf()`],
    ['pg_terminate_backend of another session', () => `select pg_terminate_backend(${victimPid() ?? 'pg_backend_pid()'})`],
    // SET ROLE is checked against the session user (the superuser), so a bare SET LOCAL ROLE is escapable:
    ['switching the role back inside the statement', `select set_config('role', 'postgres', true) as r, query_to_xml('select pg_read_file(''/etc/passwd'') as f', true, false, '')::text as x`],
    ['switching the session authorization', `select set_config('session_authorization', 'postgres', true)`],
    ['dynamic SQL reading a server file', `select query_to_xml('select pg_read_file(''/etc/passwd'') as f', true, false, '')::text`],
    ['a statement smuggled behind the query', `select 1) q; copy (select 1) to program 'touch ${marker}'; select (1`],
    ['a write', `update trials set status = 'failed'`],
  ] as const;
}

async function expectRefusedEverywhere(handle: DbHandle, marker: string, victimPid: () => number | null) {
  for (const [what, q] of dangerousQueries(marker, victimPid)) {
    const query = typeof q === 'function' ? q() : q;
    const out = await runInProcess(registerSql, ['sql', query]);
    expect(out.exitCode, `${what}: ${out.stderr}`).not.toBe(0);
    expect(out.stderr, what).toMatch(/^mmsweep: (refused|query failed)/);
    expect(out.stdout, what).toBe('');
  }
  expect(fs.existsSync(marker)).toBe(false);
  const [row] = (await handle.db.execute('select count(*)::int as n from trials where status = \'failed\'' as never)) as unknown as { n: number }[];
  expect(row?.n ?? (row as unknown as { rows: { n: number }[] })?.rows?.[0]?.n).toBe(0);
}

describe('S1: mmsweep sql with a superuser DATABASE_URL on the real Postgres server', () => {
  let database: Awaited<ReturnType<typeof createServerDatabase>>;
  let handle: DbHandle;
  let victim: postgres.Sql;
  let victimPid: number | null = null;
  let restore: () => void;
  const marker = path.join(scratch, 'server-pwned');

  beforeAll(async () => {
    database = await createServerDatabase();
    handle = await openDatabase({ url: database.url });
    await upsertStudy(handle.db, { id: 'hostile', name: 'hostile', spec: {} });
    await registerTrials(handle.db, 'hostile', [{ trialKey: 'h1', spec: cmnistSpec({ seed: 1 }) }]);
    victim = postgres(database.url, { max: 1, onnotice: () => {} });
    victimPid = (await victim`select pg_backend_pid() as pid`)[0].pid as number;
    restore = withEnv({ DATABASE_URL: database.url });
    const [su] = await victim`select rolsuper from pg_roles where rolname = current_user`;
    expect(su.rolsuper).toBe(true); // the premise: the URL names a superuser
  });
  afterAll(async () => {
    restore?.();
    await victim?.end();
    await handle?.close();
    await database?.drop();
  });

  it('refuses COPY TO PROGRAM, server files, large objects, signals, reloads and role escapes', async () => {
    await expectRefusedEverywhere(handle, marker, () => victimPid);
    // The other session was not terminated.
    expect((await victim`select 1 as one`)[0].one).toBe(1);
  });

  it('runs plain selects of tables and views, as mmsweep_readonly', async () => {
    const out = await runInProcess(registerSql, ['sql', 'select trial_key, status from trials', '--format', 'csv']);
    expect(out).toMatchObject({ exitCode: 0, stdout: 'trial_key,status\nh1,pending\n' });
    const view = await runInProcess(registerSql, ['sql', 'select study_id, trials, pending from study_progress;', '--format', 'json']);
    expect(JSON.parse(view.stdout)).toEqual([{ study_id: 'hostile', trials: 1, pending: 1 }]);
    const who = await runInProcess(registerSql, ['sql', 'select current_user as u', '--format', 'csv']);
    expect(who.stdout).toBe('u\nmmsweep_readonly\n');
  });

  it('the role is NOLOGIN, no superuser, in none of the server-file, program or signal roles', async () => {
    const [role] = await victim`select rolsuper, rolcanlogin, rolcreaterole, rolcreatedb,
        array(select b.rolname::text from pg_roles b where b.oid <> r.oid and pg_has_role(r.oid, b.oid, 'MEMBER')) as member_of
      from pg_roles r where rolname = 'mmsweep_readonly'`;
    expect(role).toEqual({ rolsuper: false, rolcanlogin: false, rolcreaterole: false, rolcreatedb: false, member_of: [] });
  });

  it('the real command: mmsweep sql "copy (select 1) to program …" exits 2 and runs nothing', async () => {
    const out = await runMmsweep(['sql', `copy (select 1) to program 'touch ${marker}'`], { DATABASE_URL: database.url });
    expect(out.exitCode).toBe(2);
    expect(out.stderr).toMatch(/refused: mmsweep sql runs queries read-only/);
    expect(fs.existsSync(marker)).toBe(false);
  }, 60_000);

  it('refuses and says why when the read-only role is unsafe', async () => {
    const admin = postgres(SERVER_ADMIN_URL.replace(/\/[^/]*$/, `/${database.name}`), { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe('grant pg_read_server_files to mmsweep_readonly');
      const unsafe = await runInProcess(registerSql, ['sql', `select pg_read_file('/etc/passwd')`]);
      expect(unsafe.exitCode).toBe(1);
      expect(unsafe.stderr).toMatch(/mmsweep_readonly is a member of pg_read_server_files .*revoke/);
      expect(unsafe.stdout).toBe('');
    } finally {
      await admin.unsafe('revoke pg_read_server_files from mmsweep_readonly');
      await admin.end();
    }
  });
});

describe('S1: a non-superuser application role (as infra/distributed/init-roles.sh makes it)', () => {
  it('migrates, and mmsweep sql reads as mmsweep_readonly', async () => {
    const admin = postgres(SERVER_ADMIN_URL, { max: 1, onnotice: () => {} });
    const app = `mmsweep_app_ok_${process.pid}`;
    const db = `mmsweep_test_app_${process.pid}_${Date.now().toString(36)}`;
    try {
      await admin.unsafe(`create role ${app} login nosuperuser nocreatedb nocreaterole`);
      await admin.unsafe(`create database ${db} owner ${app}`);
      await admin.unsafe(`grant mmsweep_readonly to ${app}`);
      const url = SERVER_ADMIN_URL.replace('postgres://postgres@', `postgres://${app}@`).replace(/\/[^/]*$/, `/${db}`);
      const handle = await openDatabase({ url });
      await upsertStudy(handle.db, { id: 'app', name: 'app', spec: {} });
      await handle.close();
      const out = await runMmsweep(['sql', 'select id, current_user as u from studies', '--format', 'csv'], { DATABASE_URL: url });
      expect(out).toMatchObject({ exitCode: 0, stdout: `id,u\napp,mmsweep_readonly\n` });
      const refused = await runMmsweep(['sql', `select pg_read_file('/etc/passwd')`], { DATABASE_URL: url });
      expect(refused.exitCode).toBe(2);
      // Without the membership the role cannot be entered: refused, saying how to allow it.
      await admin.unsafe(`revoke mmsweep_readonly from ${app}`);
      const denied = await runMmsweep(['sql', 'select 1'], { DATABASE_URL: url });
      expect(denied.exitCode).toBe(1);
      expect(denied.stderr).toMatch(new RegExp(`may not SET ROLE to it .*GRANT mmsweep_readonly TO "${app}"`));
    } finally {
      await admin.unsafe(`drop database if exists ${db} with (force)`);
      await admin.unsafe(`drop role if exists ${app}`);
      await admin.end();
    }
  }, 120_000);
});

describe('S1: mmsweep sql on the embedded database', () => {
  let owner: DbHandle;
  let restore: () => void;
  const home = path.join(scratch, 'home-s1');
  const marker = path.join(scratch, 'embedded-pwned');

  beforeAll(async () => {
    await copyPgliteTemplate(path.join(home, 'db'));
    restore = withEnv({ DATABASE_URL: undefined, MMSWEEP_HOME: home });
    owner = await openDatabase();
    await upsertStudy(owner.db, { id: 'hostile', name: 'hostile', spec: {} });
    await registerTrials(owner.db, 'hostile', [{ trialKey: 'h1', spec: cmnistSpec({ seed: 1 }) }]);
  }, 120_000);
  afterAll(async () => {
    await owner?.close();
    restore?.();
  });

  it('refuses the same queries and reads tables and views', async () => {
    await expectRefusedEverywhere(owner, marker, () => null);
    const out = await runInProcess(registerSql, ['sql', 'select trial_key, current_user as u from trials', '--format', 'csv']);
    expect(out).toMatchObject({ exitCode: 0, stdout: 'trial_key,u\nh1,mmsweep_readonly\n' });
  }, 120_000);
});

describe('S3: secrets are never printed', () => {
  // Each form with the secret SECRETPW and what the masked form must be (written by hand).
  const forms: [string, string][] = [
    ['postgres://u:SECRETPW@127.0.0.1:1/db', 'postgres://u:***@127.0.0.1:1/db'],
    ['u:SECRETPW@127.0.0.1', 'u:***@127.0.0.1'],
    ['postgres://u@127.0.0.1:1/db?password=SECRETPW', 'postgres://u@127.0.0.1:1/db?password=***'],
    ['postgres://u@127.0.0.1:1/db?sslmode=disable&password=SECRETPW&application_name=x', 'postgres://u@127.0.0.1:1/db?sslmode=disable&password=***&application_name=x'],
    ['jdbc:postgresql://127.0.0.1:1/db?user=u&password=SECRETPW', 'jdbc:postgresql://127.0.0.1:1/db?user=u&password=***'],
    ['host=127.0.0.1 port=1 user=u password=SECRETPW dbname=db', 'host=127.0.0.1 port=1 user=u password=*** dbname=db'],
    ["host=127.0.0.1 password='SECRETPW with space' user=u", 'host=127.0.0.1 password=*** user=u'],
    ['postgres://u:SECRET%40PW@127.0.0.1:1/db', 'postgres://u:***@127.0.0.1:1/db'],
    ['postgres://u:SECRET@PW@127.0.0.1:1/db', 'postgres://u:***@127.0.0.1:1/db'],
    ['postgres://u@127.0.0.1:1/db?pass%77ord=SECRETPW', 'postgres://u@127.0.0.1:1/db?pass%77ord=***'],
    ['postgres://u@127.0.0.1:1/db', 'postgres://u@127.0.0.1:1/db'],
  ];

  it.each(forms)('maskSecrets(%s)', async (input, expected) => {
    const { maskSecrets, secretsOf } = await import('../../src/util/secrets.ts');
    expect(maskSecrets(input, secretsOf(input))).toBe(expected);
    // Inside a longer message too.
    expect(maskSecrets(`cannot connect (${input}): refused`, secretsOf(input))).toBe(`cannot connect (${expected}): refused`);
  });

  it('mmsweep db url and every error path print no password, for every form', async () => {
    const { register: registerDb } = await import('../../src/cli/commands/db.ts');
    for (const [url, expected] of forms) {
      const restore = withEnv({ DATABASE_URL: url });
      try {
        const shown = await runInProcess(registerDb, ['db', 'url']);
        expect(shown.stdout).toBe(`${expected}\n`);
        const failed = await runInProcess(registerSql, ['sql', 'select 1']);
        expect(failed.exitCode, url).not.toBe(0);
        expect(failed.stderr, url).toMatch(/^mmsweep: /);
        expect(`${failed.stdout}${failed.stderr}`, url).not.toMatch(/SECRET|%40PW|with space/);
      } finally {
        restore();
      }
    }
  }, 120_000);

  it('the real command masks a driver error and names bad percent-encoding (exit 2)', async () => {
    const refused = await runMmsweep(['sql', 'select 1'], { DATABASE_URL: 'postgres://u:SECRETPW@127.0.0.1:1/db' });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/cannot connect .*postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/db/);
    expect(refused.stderr).not.toContain('SECRETPW');
    const badEncoding = await runMmsweep(['sql', 'select 1'], { DATABASE_URL: 'postgres://u:SECRET%zzPW@127.0.0.1:1/db' });
    expect(badEncoding.exitCode).toBe(2);
    expect(badEncoding.stderr).toMatch(/DATABASE_URL has broken percent-encoding in its password: postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/db\. Write a literal % as %25/);
    expect(badEncoding.stderr).not.toMatch(/SECRET|URI malformed/);
    const badDb = await runMmsweep(['sql', 'select 1'], { DATABASE_URL: 'postgres://u@127.0.0.1:1/d%e9b' });
    expect(badDb.exitCode).toBe(2);
    expect(badDb.stderr).toMatch(/broken percent-encoding in its database name \("%e9"\)/);
  }, 60_000);
});

describe('W1: unknown keys are errors naming the key, with a "did you mean"', () => {
  it('TrialSpec, dataset, fidelity, nested objects and study objects', async () => {
    const { parseTrialSpec } = await import('../../src/spec/trial.ts');
    const { parseStudySpec } = await import('../../src/spec/study.ts');
    const message = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    const base = { dataset: { name: 'cmnist' }, lr: 0.1, seed: 0 };
    expect(message(() => parseTrialSpec({ ...base, maxEpoch: 1 }))).toBe('invalid trial spec:\n  maxEpoch: unknown key (did you mean maxEpochs?)');
    expect(message(() => parseTrialSpec({ ...base, fidelity: { gatescale: 2 } }))).toMatch(/fidelity\.gatescale: unknown key \(did you mean gateScale\?\)/);
    expect(message(() => parseTrialSpec({ ...base, dataset: { name: 'cmnist', sigma: 0.1 } }))).toMatch(/dataset\.sigma: unknown key \(did you mean sigma2\?\)/);
    expect(message(() => parseTrialSpec({ ...base, dataset: { name: 'cmnist', views: [0, 6] } }))).toMatch(/dataset\.views: unknown key/);
    expect(message(() => parseTrialSpec({ ...base, subset: { trian: 10 } }))).toMatch(/subset\.trian: unknown key \(did you mean train\?\)/);
    expect(message(() => parseTrialSpec({ ...base, zzz: 1 }))).toMatch(/ {2}zzz: unknown key$/);
    expect(message(() => parseTrialSpec({ kind: 'noop', sleepMS: 5 }))).toMatch(/sleepMS: unknown key \(did you mean sleepMs\?\)/);
    const study = (over: object, condition: object = {}) => ({ name: 's', ...over, conditions: [{ label: 'c', base, ...condition }] });
    expect(message(() => parseStudySpec(study({ concurency: 2 })))).toMatch(/concurency: unknown key \(did you mean concurrency\?\)/);
    expect(message(() => parseStudySpec(study({}, { seed: [1] })))).toMatch(/conditions\.0\.seed: unknown key \(did you mean seeds\?\)/);
    expect(message(() => parseStudySpec(study({}, { lr: { grid: [0.1], gird: [1] } })))).toMatch(/conditions\.0\.lr\.gird: unknown key \(did you mean grid\?\)/);
    expect(message(() => parseStudySpec(study({}, { base: { ...base, maxEpoch: 2 } })))).toMatch(/condition 0 \(c\): invalid trial spec:\n {2}maxEpoch: unknown key \(did you mean maxEpochs\?\)/);
  });

  it('is structural: a nested object added to a schema (as other helpers add fields) is checked without opting in', async () => {
    const { z } = await import('zod');
    const { parseStrict } = await import('../../src/spec/strict.ts');
    const schema = z.object({ dataset: z.object({ name: z.string(), palette: z.object({ seed: z.number().default(0) }).optional() }) });
    expect(parseStrict(schema, { dataset: { name: 'x', palette: { seed: 3 } } }, 'spec', '(spec)')).toEqual({ dataset: { name: 'x', palette: { seed: 3 } } });
    expect(() => parseStrict(schema, { dataset: { name: 'x', palette: { sead: 3 } } }, 'spec', '(spec)')).toThrow(/dataset\.palette\.sead: unknown key \(did you mean seed\?\)/);
    expect(() => parseStrict(schema, { dataset: { name: 'x', palete: {} } }, 'spec', '(spec)')).toThrow(/dataset\.palete: unknown key \(did you mean palette\?\)/);
  });

  it('the real commands exit 2: --spec with a typo, --fidelity foo=1, a study base with a typo, --spec holding a JSON string', async () => {
    const dir = path.join(scratch, 'w1');
    fs.mkdirSync(dir, { recursive: true });
    const typo = path.join(dir, 'typo.json');
    fs.writeFileSync(typo, JSON.stringify({ dataset: { name: 'cmnist' }, lr: 0.1, seed: 0, maxEpoch: 1 }));
    const a = await runMmsweep(['train', '--spec', typo]);
    expect(a.exitCode).toBe(2);
    expect(a.stderr).toMatch(/maxEpoch: unknown key \(did you mean maxEpochs\?\)/);
    const b = await runMmsweep(['train', '--lr', '0.1', '--seed', '0', '--fidelity', 'foo=1']);
    expect(b.exitCode).toBe(2);
    expect(b.stderr).toMatch(/fidelity\.foo: unknown key/);
    const str = path.join(dir, 'string.json');
    fs.writeFileSync(str, JSON.stringify('{"lr": 0.1}'));
    const c = await runMmsweep(['train', '--spec', str]);
    expect(c.exitCode).toBe(2);
    expect(c.stderr).toMatch(/must hold a JSON object .*got a string/);
    const studyFile = path.join(dir, 'study.json');
    fs.writeFileSync(studyFile, JSON.stringify({ name: 'typo', conditions: [{ label: 'c', base: { dataset: { name: 'cmnist' }, lr: 0.1, maxEpoch: 1 } }] }));
    const d = await runMmsweep(['study', 'plan', studyFile]);
    expect(d.exitCode).toBe(2);
    expect(d.stderr).toMatch(/maxEpoch: unknown key \(did you mean maxEpochs\?\)/);
    const e = await runMmsweep(['study', 'plan', path.join(dir, 'missing.json')]);
    expect(e.exitCode).toBe(2);
  }, 120_000);
});

describe('checkpoints: D1, W3, U1, U2', () => {
  const dir = path.join(scratch, 'ckpt');
  fs.mkdirSync(dir, { recursive: true });
  const noop = (seed: number, epochs = 3) => {
    const file = path.join(dir, `noop-${seed}-${epochs}.json`);
    fs.writeFileSync(file, JSON.stringify({ kind: 'noop', sleepMs: 5, epochs, seed }));
    return file;
  };
  const snapshot = (d: string) => Object.fromEntries(fs.readdirSync(d).map((f) => [f, fs.readFileSync(path.join(d, f)).toString('base64')]));
  const startEvent = (stdout: string) => JSON.parse(stdout.split('\n').find((l) => l.includes('"type":"start"'))!.replace(/^@mmsweep /, ''));

  it('D1: a directory holding another trial\'s checkpoints is refused before training (exit 2), nothing touched', async () => {
    const ck = path.join(dir, 'd1');
    const a = await runMmsweep(['train', '--spec', noop(1), '--checkpoint-dir', ck]);
    expect(a.exitCode, a.stderr).toBe(0);
    const before = snapshot(ck);
    expect(Object.keys(before).sort()).toEqual(['epoch-0002.ckpt', 'epoch-0003.ckpt']);
    for (const args of [[], ['--resume']]) {
      const b = await runMmsweep(['train', '--spec', noop(2, 1), '--checkpoint-dir', ck, ...args]);
      expect(b.exitCode).toBe(2);
      expect(b.stderr).toMatch(/--checkpoint-dir .* holds checkpoints of another trial: epoch-0003\.ckpt \(trial [0-9a-f]{12}\), epoch-0002\.ckpt/);
      expect(b.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(snapshot(ck)).toEqual(before);
    }
  }, 120_000);

  it('pruning deletes only this trial\'s files', async () => {
    const { checkpointPath, pruneCheckpoints, writeCheckpointFile } = await import('../../src/train/checkpoint.ts');
    const ck = path.join(dir, 'prune');
    for (const e of [1, 2, 3]) writeCheckpointFile(checkpointPath(ck, e), { trialKey: 'mine', payload: {}, blobs: {} });
    for (const e of [7, 8]) writeCheckpointFile(checkpointPath(ck, e), { trialKey: 'theirs', payload: {}, blobs: {} });
    fs.writeFileSync(checkpointPath(ck, 9), 'not a checkpoint');
    pruneCheckpoints(ck, 1, 'mine');
    expect(fs.readdirSync(ck).sort()).toEqual(['epoch-0003.ckpt', 'epoch-0007.ckpt', 'epoch-0008.ckpt', 'epoch-0009.ckpt']);
  });

  it('U1: a --checkpoint-dir that is a file or cannot be created fails before epoch 1 with exit 2, no stack trace', async () => {
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    for (const [target, message] of [
      [file, /--checkpoint-dir .*a-file: not a directory/],
      [path.join(file, 'below'), /--checkpoint-dir .*below: not a directory/],
      ['/proc/mmsweep-hostile-ck', /--checkpoint-dir \/proc\/mmsweep-hostile-ck: cannot create it/],
    ] as const) {
      const out = await runMmsweep(['train', '--spec', noop(3), '--checkpoint-dir', target, '--events']);
      expect(out.exitCode, out.stderr).toBe(2);
      expect(out.stderr).toMatch(message);
      expect(out.stderr).not.toMatch(/\n\s+at /);
      expect(out.stdout).not.toContain('"type":"epoch"');
    }
  }, 120_000);

  it('U2/W3: --resume skips an edited or broken newest checkpoint, names it, and continues from the older one', async () => {
    const ck = path.join(dir, 'u2');
    const spec = noop(4);
    expect((await runMmsweep(['train', '--spec', spec, '--checkpoint-dir', ck])).exitCode).toBe(0);
    const newest = path.join(ck, 'epoch-0003.ckpt');
    // W3: an edit inside the header (same length, so only the checksum can tell).
    const original = fs.readFileSync(newest);
    const edited = Buffer.from(original.toString('latin1').replace('"epoch":3', '"epoch":9'), 'latin1');
    expect(edited.equals(original)).toBe(false);
    fs.writeFileSync(newest, edited);
    const resumed = await runMmsweep(['train', '--spec', spec, '--checkpoint-dir', ck, '--resume', '--events']);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`--resume skipped checkpoint ${newest}: checksum mismatch`);
    expect(resumed.stderr).toContain(`--resume continues from ${path.join(ck, 'epoch-0002.ckpt')}`);
    expect(startEvent(resumed.stdout)).toMatchObject({ resumedFromEpoch: 2 });

    // A broken header JSON behind a valid checksum (a hostile edit that recomputes it) names the file too.
    const { createHash } = await import('node:crypto');
    const good = fs.readFileSync(newest);
    const body = Buffer.from(good.subarray(0, good.length - 32));
    body.write('!', 16, 'latin1');
    fs.writeFileSync(newest, Buffer.concat([body, createHash('sha256').update(body).digest()]));
    const again = await runMmsweep(['train', '--spec', spec, '--checkpoint-dir', ck, '--resume', '--events']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toContain(`--resume skipped checkpoint ${newest}: broken checkpoint header`);
    expect(startEvent(again.stdout)).toMatchObject({ resumedFromEpoch: 2 });
  }, 120_000);

  it('D1 and W3 with real CMNIST training: trial B is refused; an edited testAcc in A\'s header is not reported', async () => {
    const ck = path.join(dir, 'cmnist');
    const small = ['--lr', '0.01', '--subset', '200', '--subset-val', '100', '--subset-test', '100', '--width', '0.25', '--json', '--checkpoint-dir', ck];
    const a = await runMmsweep(['train', ...small, '--seed', '1', '--max-epochs', '2'], {}, 600_000);
    expect(a.exitCode, a.stderr).toBe(0);
    const resultA = JSON.parse(a.stdout.trim().split('\n').at(-1)!);
    const b = await runMmsweep(['train', ...small, '--seed', '2', '--max-epochs', '1'], {}, 600_000);
    expect(b.exitCode).toBe(2);
    expect(fs.readdirSync(ck).sort()).toEqual(['epoch-0001.ckpt', 'epoch-0002.ckpt']);
    // The report's edit: testAcc in the newest checkpoint's history, same length.
    const newest = path.join(ck, 'epoch-0002.ckpt');
    const text = fs.readFileSync(newest).toString('latin1');
    const testAcc = `"testAcc":${resultA.testAcc}`;
    expect(text).toContain(testAcc);
    const forged = resultA.testAcc === 7 ? 8 : 7;
    fs.writeFileSync(newest, Buffer.from(text.split(testAcc).join(`"testAcc":${forged}`), 'latin1'));
    const resumed = await runMmsweep(['train', ...small, '--seed', '1', '--max-epochs', '2', '--resume'], {}, 600_000);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`--resume skipped checkpoint ${newest}: checksum mismatch`);
    // Epoch 2 was trained again from epoch 1: the result is the original one, not the forged value.
    expect(JSON.parse(resumed.stdout.trim().split('\n').at(-1)!).testAcc).toBe(resultA.testAcc);
  }, 900_000);
});

describe('W2: a changed StudySpec under an existing name', () => {
  const base = { dataset: { name: 'cmnist' }, lr: 0.01, maxEpochs: 3, width: 0.25 };
  const studyOf = (over: { base?: object; seeds?: number[]; extra?: object[] } = {}) => ({
    name: 'w2',
    conditions: [{ label: 'vanilla', base: { ...base, ...(over.base ?? {}) }, seeds: over.seeds ?? [0, 1] }, ...(over.extra ?? [])],
  });

  it('is refused with the difference shown; additions need --extend', async () => {
    const { parseStudySpec } = await import('../../src/spec/study.ts');
    const { checkStudyRerun } = await import('../../src/spec/study-change.ts');
    const stored = parseStudySpec(studyOf());
    expect(checkStudyRerun(stored, parseStudySpec(studyOf()))).toEqual({ additions: [], changes: [] });
    expect(checkStudyRerun(null, parseStudySpec(studyOf({ base: { maxEpochs: 9 } })))).toEqual({ additions: [], changes: [] });
    expect(() => checkStudyRerun(stored, parseStudySpec(studyOf({ base: { maxEpochs: 5 } })), { extend: true })).toThrow(
      /study "w2" already exists with a different spec:\n {2}condition "vanilla": base\.maxEpochs 3 → 5\n/,
    );
    const more = parseStudySpec(studyOf({ seeds: [0, 1, 2, 3], extra: [{ label: 'guided', base: { ...base, algorithm: 'guided' } }] }));
    expect(() => checkStudyRerun(stored, more)).toThrow(/adds to it:\n {2}condition "vanilla": seeds \+ \[2,3\]\n {2}condition "guided" added\nAdd --extend/);
    expect(checkStudyRerun(stored, more, { extend: true }).additions).toHaveLength(2);
    // Fewer seeds than stored (e.g. after `study extend`) is no change: the stored ones are kept.
    expect(checkStudyRerun(parseStudySpec(studyOf({ seeds: [0, 1, 2] })), stored)).toEqual({ additions: [], changes: [] });
    expect(() => checkStudyRerun(more, stored)).toThrow(/condition "guided" removed/);
  });

  it('mmsweep study start of the edited spec exits 2 before contacting Temporal, and condition_summary separates configurations', async () => {
    const database = await createServerDatabase();
    const handle = await openDatabase({ url: database.url });
    try {
      const { parseStudySpec } = await import('../../src/spec/study.ts');
      const { planStudy } = await import('../../src/spec/keys.ts');
      const stored = parseStudySpec(studyOf());
      await upsertStudy(handle.db, { id: 'w2', name: 'w2', spec: stored });
      const edited = path.join(scratch, 'w2-edited.json');
      fs.writeFileSync(edited, JSON.stringify(studyOf({ base: { maxEpochs: 5 } })));
      const out = await runMmsweep(['study', 'start', edited, '--address', '127.0.0.1:1'], { DATABASE_URL: database.url });
      expect(out.exitCode, out.stderr).toBe(2);
      expect(out.stderr).toMatch(/already exists with a different spec:\n {2}condition "vanilla": base\.maxEpochs 3 → 5/);

      // Two configurations that agree on every condition column but the epoch cap: two rows, not one pooled n = 4.
      const { claimTrialAttempt, recordResult } = await import('../../db/index.ts');
      const { result } = await import('../db/store.suite.ts');
      const trials = [...planStudy(stored), ...planStudy(parseStudySpec(studyOf({ base: { maxEpochs: 5 } })))];
      await registerTrials(handle.db, 'w2', trials.map((t) => ({ trialKey: t.key, spec: t.spec })));
      for (const [i, t] of trials.entries()) {
        await claimTrialAttempt(handle.db, t.key, 1, { worker: 'w' });
        await recordResult(handle.db, t.key, 1, result({ testAcc: 10 * (i + 1) }));
      }
      const rows = (await handle.db.execute(
        `select n, test_acc_mean from condition_summary where study_id = 'w2' order by test_acc_mean` as never,
      )) as unknown as { n: number; test_acc_mean: number }[];
      expect(rows.map((r) => [r.n, r.test_acc_mean])).toEqual([[2, 15], [2, 35]]);
    } finally {
      await handle.close();
      await database.drop();
    }
  }, 120_000);
});

describe('provenance', () => {
  it('code_version names version, commit (+dirty) and lockfile hash, survives the workflow\'s upsert; trials.backend/device are written', async () => {
    const { codeVersion } = await import('../../infra/provenance.ts');
    const { createHash } = await import('node:crypto');
    const { execFileSync } = await import('node:child_process');
    const { repoRoot } = await import('./run-cli.ts');
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    const lock = createHash('sha256').update(fs.readFileSync(path.join(repoRoot, 'package-lock.json'))).digest('hex').slice(0, 16);
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim().slice(0, 12);
    const version = codeVersion();
    expect(version).toMatch(new RegExp(`^mmsweep ${pkg.version.replace(/\./g, '\\.')} git ${head}(-dirty)? lock sha256:${lock}$`));

    const database = await createServerDatabase();
    const handle = await openDatabase({ url: database.url });
    try {
      const { claimTrialAttempt, recordResult, findStudy, getTrial } = await import('../../db/index.ts');
      const { result } = await import('../db/store.suite.ts');
      await upsertStudy(handle.db, { id: 'p', name: 'p', spec: {}, codeVersion: version });
      await upsertStudy(handle.db, { id: 'p', name: 'p', spec: { again: true } }); // as registerTrials does
      expect((await findStudy(handle.db, 'p'))?.codeVersion).toBe(version);
      await registerTrials(handle.db, 'p', [{ trialKey: 'p1', spec: cmnistSpec({ seed: 1 }) }]);
      await claimTrialAttempt(handle.db, 'p1', 1, { worker: 'w' });
      await recordResult(handle.db, 'p1', 1, result({ backend: 'tensorflow', device: 'libtensorflow on test CPU' }));
      expect(await getTrial(handle.db, 'p1')).toMatchObject({ backend: 'tensorflow', device: 'libtensorflow on test CPU' });
    } finally {
      await handle.close();
      await database.drop();
    }
  }, 60_000);
});

describe('U4 and S4 (partly)', () => {
  it('export --out refuses to overwrite without --force (exit 2)', async () => {
    const database = await createServerDatabase();
    const handle = await openDatabase({ url: database.url });
    const restore = withEnv({ DATABASE_URL: database.url });
    try {
      const { register: registerExport } = await import('../../src/cli/commands/export.ts');
      await upsertStudy(handle.db, { id: 'ex', name: 'ex', spec: {} });
      const out = path.join(scratch, 'existing.csv');
      fs.writeFileSync(out, 'precious');
      const refused = await runInProcess(registerExport, ['export', 'ex', '--out', out]);
      expect(refused.exitCode).toBe(2);
      expect(refused.stderr).toMatch(/existing\.csv exists; add --force/);
      expect(fs.readFileSync(out, 'utf8')).toBe('precious');
      const forced = await runInProcess(registerExport, ['export', 'ex', '--out', out, '--force']);
      expect(forced.exitCode).toBe(0);
      expect(fs.readFileSync(out, 'utf8')).toMatch(/^study_id,trial_key/);
    } finally {
      restore();
      await handle.close();
      await database.drop();
    }
  }, 60_000);

  it('the embedded database directory is mode 0700', async () => {
    const dataDir = path.join(scratch, 'home-s4', 'db');
    await copyPgliteTemplate(dataDir);
    fs.chmodSync(dataDir, 0o755);
    const handle = await openDatabase({ url: '', dataDir, serve: false });
    try {
      expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    } finally {
      await handle.close();
    }
  }, 120_000);
});

/** Modes of everything under `dir` that are not `dirMode` (directories) or `fileMode` (files). */
function looseModes(dir: string, dirMode = 0o700, fileMode = 0o600): string[] {
  const loose: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const mode = fs.statSync(file).mode & 0o777;
    if ((entry.isDirectory() && mode !== dirMode) || (entry.isFile() && mode !== fileMode)) loose.push(`${file} ${mode.toString(8)}`);
  }
  return loose;
}

/** Inodes of the TCP sockets this process listens on (from /proc: what `ss -ltnp` would list for it). */
function listeningTcpInodes(): string[] {
  const mine = new Set<string>();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/self/fd/${fd}`));
      if (m) mine.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const listening: string[] = [];
  for (const table of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A' && mine.has(cols[9])) listening.push(cols[9]); // 0A: LISTEN
    }
  }
  return listening;
}

/** A client process, waited for without blocking this process (which serves the embedded database). */
function spawnAsync(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** psql as another local user (nobody): what any other account on the machine could do. */
async function psqlAsNobody(url: string): Promise<{ status: number | null; output: string }> {
  const out = await spawnAsync('runuser', ['-u', 'nobody', '--', 'psql', url, '-w', '-Atc', 'select count(*) from studies'], { PATH: process.env.PATH });
  return { status: out.status, output: `${out.stdout}${out.stderr}` };
}

describe('S4: the embedded database is its owner\'s alone', () => {
  // A home in a directory every user can traverse, as a home directory or a project checkout often is.
  const open = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-s4-'));
  fs.chmodSync(open, 0o755);
  afterAll(() => fs.rmSync(open, { recursive: true, force: true }));
  const asRoot = process.getuid?.() === 0;

  it('files 0600 and directories 0700 inside the database directory, on open and after close', async () => {
    const dataDir = path.join(open, 'modes', 'db');
    await copyPgliteTemplate(dataDir);
    for (const entry of fs.readdirSync(dataDir, { withFileTypes: true, recursive: true })) {
      fs.chmodSync(path.join(entry.parentPath, entry.name), entry.isDirectory() ? 0o755 : 0o644);
    }
    const handle = await openDatabase({ url: '', dataDir });
    try {
      expect(looseModes(dataDir)).toEqual([]);
      expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
      expect(fs.statSync(embeddedFiles(dataDir).lock).mode & 0o777).toBe(0o600);
      expect(fs.statSync(embeddedFiles(dataDir).server).mode & 0o777).toBe(0o600);
      await upsertStudy(handle.db, { id: 'modes', name: 'modes', spec: {} }); // new rows, maybe new files
    } finally {
      await handle.close();
    }
    expect(looseModes(dataDir)).toEqual([]);
    expect(fs.readdirSync(dataDir, { recursive: true }).length).toBeGreaterThan(100); // PGlite's files are there
  }, 120_000);

  it('served on a Unix socket in a 0700 directory, no TCP listener; psql of the owner works, another user is refused', async () => {
    const dataDir = path.join(open, 'sock', 'db');
    await copyPgliteTemplate(dataDir);
    const before = listeningTcpInodes();
    const restore = withEnv({ MMSWEEP_DB_PORT: undefined });
    const handle = await openDatabase({ url: '', dataDir });
    restore();
    try {
      await upsertStudy(handle.db, { id: 's4', name: 's4', spec: {} });
      expect(handle.url).toBe(`postgres://postgres@localhost/postgres?host=${dataDir}.sock`);
      expect(listeningTcpInodes()).toEqual(before);
      expect(fs.statSync(`${dataDir}.sock`).mode & 0o777).toBe(0o700);
      // Beside it, the socket that hands snapshots to guest queries (mmsweep sql): the owner's user only, too.
      expect(embeddedServerInfo(dataDir)?.snapshot).toBe(path.join(`${dataDir}.sock`, 'snapshot.sock'));
      expect(fs.statSync(path.join(`${dataDir}.sock`, 'snapshot.sock')).mode & 0o777).toBe(0o600);
      const own = await spawnAsync('psql', [handle.url!, '-Atc', 'select count(*) from studies']);
      expect(`${own.stdout}${own.stderr}`).toBe('1\n');
      if (asRoot) {
        const other = await psqlAsNobody(handle.url!);
        expect(other.status).not.toBe(0);
        expect(other.output).toMatch(/Permission denied/);
      }
    } finally {
      await handle.close();
    }
    expect(fs.existsSync(path.join(`${dataDir}.sock`, '.s.PGSQL.5432'))).toBe(false);
    expect(fs.existsSync(path.join(`${dataDir}.sock`, 'snapshot.sock'))).toBe(false);
  }, 120_000);

  it('on a TCP port (MMSWEEP_DB_PORT) every connection needs the per-home password', async () => {
    const dataDir = path.join(open, 'tcp', 'db');
    await copyPgliteTemplate(dataDir);
    const restore = withEnv({ MMSWEEP_DB_PORT: '0' });
    let handle: DbHandle | undefined;
    try {
      handle = await openDatabase({ url: '', dataDir });
      await upsertStudy(handle.db, { id: 'tcp', name: 'tcp', spec: {} });
      const url = new URL(handle.url!);
      expect(url.hostname).toBe('127.0.0.1');
      expect(url.password).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(fs.readFileSync(`${dataDir}.password`, 'utf8').trim()).toBe(url.password);
      expect(fs.statSync(`${dataDir}.password`).mode & 0o777).toBe(0o600);
      expect(handle.displayName).not.toContain(url.password);
      // Snapshots for guest queries still come through a socket in a 0700 directory, not the TCP port.
      expect(embeddedServerInfo(dataDir)?.snapshot).toBe(path.join(`${dataDir}.sock`, 'snapshot.sock'));
      expect(fs.statSync(`${dataDir}.sock`).mode & 0o777).toBe(0o700);
      // mmsweep db url prints it to the owner (the server file is 0600), masked unless asked for, like DATABASE_URL's.
      const { register: registerDb } = await import('../../src/cli/commands/db.ts');
      const restoreHome = withEnv({ MMSWEEP_HOME: path.dirname(dataDir), DATABASE_URL: undefined });
      try {
        const masked = await runInProcess(registerDb, ['db', 'url']);
        expect(masked.stdout).toBe(`postgres://postgres:***@127.0.0.1:${url.port}/postgres\n`);
        expect(masked.stderr).toContain('connect with: psql "$(mmsweep db url --show-password)"');
        expect(masked.stderr).not.toContain(url.password);
        expect((await runInProcess(registerDb, ['db', 'url', '--show-password'])).stdout).toBe(`${handle.url}\n`);
      } finally {
        restoreHome();
      }
      const own = await spawnAsync('psql', [handle.url!, '-Atc', 'select id, status from studies']);
      expect(`${own.stdout}${own.stderr}`).toMatch(/^tcp\|\w+\n$/);
      const statusBefore = own.stdout.split('|')[1];
      expect(statusBefore).not.toBe('failed\n');
      for (const password of ['', 'wrong-password']) {
        const other = new URL(handle.url!);
        other.password = password;
        const refused = await spawnAsync('psql', [other.toString(), '-w', '-Atc', `update studies set status = 'failed'`]);
        expect(refused.status, password).not.toBe(0);
        expect(refused.stderr, password).toMatch(/password authentication failed|no password supplied/);
      }
      const wrong = postgres({ host: '127.0.0.1', port: Number(url.port), user: 'postgres', password: 'x'.repeat(32), database: 'postgres', max: 1, onnotice: () => {} });
      await expect(wrong`update studies set status = 'failed'`).rejects.toThrow(/password authentication failed/);
      await wrong.end();
      if (asRoot) {
        const bare = new URL(handle.url!);
        bare.password = '';
        const other = await psqlAsNobody(bare.toString());
        expect(other.status).not.toBe(0);
      }
      const status = await spawnAsync('psql', [handle.url!, '-Atc', 'select status from studies']);
      expect(status.stdout).toBe(statusBefore); // none of the refused updates ran
      // Garbage instead of a startup packet is answered with an error and the connection closed; a client that says
      // nothing does not keep close() waiting.
      const garbage = await new Promise<string>((resolve) => {
        const socket = net.connect(Number(url.port), '127.0.0.1', () => socket.write(Buffer.from([0, 0, 0, 8, 1, 2, 3, 4])));
        let got = '';
        socket.on('data', (d) => (got += d.toString('latin1')));
        socket.on('close', () => resolve(got));
      });
      expect(garbage).toMatch(/^E.*unsupported frontend protocol/s);
      const idle = net.connect(Number(url.port), '127.0.0.1');
      await new Promise((resolve) => idle.once('connect', resolve));
    } finally {
      restore();
      await handle?.close();
    }
  }, 120_000);
});

describe('U3: two mmsweep run on one MMSWEEP_HOME', () => {
  it('takePidLock: a live holder is reported, a dead one is taken over, release removes only our own lock', async () => {
    const { takePidLock } = await import('../../src/util/pid-lock.ts');
    const dir = path.join(scratch, 'u3-unit');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'run.lock');
    const sleeper = spawn('sleep', ['60']);
    try {
      fs.writeFileSync(file, JSON.stringify({ pid: sleeper.pid, study: 'other' }));
      expect(takePidLock(file)).toEqual({ holder: { pid: sleeper.pid, detail: { pid: sleeper.pid, study: 'other' } } });
      expect(JSON.parse(fs.readFileSync(file, 'utf8')).pid).toBe(sleeper.pid); // untouched
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((resolve) => sleeper.once('exit', resolve));
    }
    const lock = takePidLock(file, { study: 'mine' }); // the holder is dead now
    expect('release' in lock).toBe(true);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid, study: 'mine' });
    expect((fs.statSync(file).mode & 0o777).toString(8)).toBe('600');
    for (const garbage of ['', '{"pid":', 'not json']) {
      (lock as { release(): void }).release();
      fs.writeFileSync(file, garbage);
      const again = takePidLock(file);
      expect('release' in again, JSON.stringify(garbage)).toBe(true);
    }
    fs.writeFileSync(file, JSON.stringify({ pid: 1 })); // someone else's now (pid 1 lives)
    (lock as { release(): void }).release();
    expect(fs.existsSync(file)).toBe(true);
  });

  it('the second run exits 2 naming the home and the first run\'s pid, and the first runs on; Ctrl-C of the first frees the home', async () => {
    const home = path.join(scratch, 'u3-home');
    await copyPgliteTemplate(path.join(home, 'db'));
    const specFile = path.join(scratch, 'u3-study.json');
    fs.writeFileSync(specFile, JSON.stringify({ name: 'u3', conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs: 1000, epochs: 600 }, seeds: [0] }] }));
    const env = { ...process.env, MMSWEEP_HOME: home, DATABASE_URL: '', MMSWEEP_DEBUG: '' };
    const first = spawn(process.execPath, ['bin/mmsweep.js', 'run', specFile, '--slots', '1', '--no-progress'], { cwd: (await import('./run-cli.ts')).repoRoot, env });
    let firstErr = '';
    first.stderr.on('data', (d) => (firstErr += d));
    const firstExit = new Promise<number | null>((resolve) => first.on('close', (code) => resolve(code)));
    try {
      const lockFile = path.join(home, 'run.lock');
      for (let i = 0; i < 600 && !/started study u3|continuing study u3/.test(firstErr); i++) await new Promise((r) => setTimeout(r, 200));
      expect(firstErr).toMatch(/started study u3/);
      expect(JSON.parse(fs.readFileSync(lockFile, 'utf8'))).toMatchObject({ pid: first.pid, study: 'u3' });

      const second = await runMmsweep(['run', specFile, '--slots', '1', '--no-progress'], { MMSWEEP_HOME: home, DATABASE_URL: '' });
      expect(second.exitCode, second.stderr).toBe(2);
      expect(second.stderr).toContain(`another mmsweep run, process ${first.pid} (study u3, since `);
      expect(second.stderr).toContain(`is using MMSWEEP_HOME ${home}.`);
      expect(second.stderr).not.toMatch(/\n\s+at |Temporal dev server/);
      expect(first.exitCode).toBeNull(); // the first one runs on
      expect(JSON.parse(fs.readFileSync(lockFile, 'utf8')).pid).toBe(first.pid);

      first.kill('SIGINT');
      expect(await firstExit).toBe(130);
      expect(fs.existsSync(lockFile)).toBe(false);
    } finally {
      if (first.exitCode === null) first.kill('SIGKILL');
    }
  }, 300_000);
});

describe('the read-only role reads tables a later migration adds', () => {
  it('a table created by another role than the one that ran migration 0004 is readable by mmsweep sql after migrating', async () => {
    const { migrateDatabase } = await import('../../db/index.ts');
    const admin = postgres(SERVER_ADMIN_URL, { max: 1, onnotice: () => {} });
    const app = `mmsweep_app_regrant_${process.pid}`;
    const db = `mmsweep_test_regrant_${process.pid}_${Date.now().toString(36)}`;
    try {
      await admin.unsafe(`create role ${app} login nosuperuser nocreatedb nocreaterole`);
      await admin.unsafe(`create database ${db} owner ${app}`);
      await admin.unsafe(`grant mmsweep_readonly to ${app}`);
      const appUrl = SERVER_ADMIN_URL.replace('postgres://postgres@', `postgres://${app}@`).replace(/\/[^/]*$/, `/${db}`);
      const suUrl = SERVER_ADMIN_URL.replace(/\/[^/]*$/, `/${db}`);
      // Migration 0004 runs as the application role: its default privileges are that role's.
      await (await openDatabase({ url: appUrl })).close();
      // A later migration, run by an administrator (superuser), adds a table.
      const su = postgres(suUrl, { max: 1, onnotice: () => {} });
      await su.unsafe(`create table later_table (x int); insert into later_table values (42)`);
      await su.end();
      const before = await runMmsweep(['sql', 'select x from later_table'], { DATABASE_URL: appUrl });
      expect(before.exitCode).toBe(2); // the premise: not readable yet
      expect(before.stderr).toMatch(/permission denied for table later_table/);
      // The administrator's migration run ends by granting SELECT on every table to the read-only role.
      const handle = await openDatabase({ url: suUrl, migrate: false });
      try {
        await migrateDatabase(handle);
      } finally {
        await handle.close();
      }
      const after = await runMmsweep(['sql', 'select x from later_table', '--format', 'csv'], { DATABASE_URL: appUrl });
      expect(after).toMatchObject({ exitCode: 0, stdout: 'x\n42\n' });
      const write = await runMmsweep(['sql', 'delete from later_table'], { DATABASE_URL: appUrl });
      expect(write.exitCode).toBe(2); // SELECT only
    } finally {
      await admin.unsafe(`drop database if exists ${db} with (force)`);
      await admin.unsafe(`drop owned by ${app}`).catch(() => {});
      await admin.unsafe(`drop role if exists ${app}`);
      await admin.end();
    }
  }, 120_000);
});

describe('S2: a guest query on the embedded database runs on a snapshot, in a thread stopped at --timeout', () => {
  let owner: DbHandle;
  let restore: () => void;
  const home = path.join(scratch, 'home-s2');
  const cliEnv = { MMSWEEP_HOME: home, DATABASE_URL: '', MMSWEEP_DB_PORT: '' };

  beforeAll(async () => {
    await copyPgliteTemplate(path.join(home, 'db'));
    restore = withEnv({ DATABASE_URL: undefined, MMSWEEP_HOME: home, MMSWEEP_DB_PORT: undefined });
    // This process holds the database and serves it, as `mmsweep run` does; the guests are real `mmsweep sql` processes.
    owner = await openDatabase();
    await upsertStudy(owner.db, { id: 's2', name: 's2', spec: {} });
    await registerTrials(owner.db, 's2', [{ trialKey: 's2-a', spec: cmnistSpec({ seed: 1 }) }]);
  }, 120_000);
  afterAll(async () => {
    await owner?.close();
    restore?.();
  });

  const ownerRows = async <T,>(query: string) => rowsOf<T>(await owner.db.execute(sql.raw(query)));

  // Neither can end by itself within --timeout: pg_sleep(600) sleeps 10 minutes, and building a 900 MB value in PGlite
  // takes seconds (≈ 25 s at load 11 on this 2-core machine). The value is a constant the planner folds itself, so
  // the old EXPLAIN check stalled on it too.
  it.each([
    ['a sleep (the report: it froze the study)', 'select pg_sleep(600)'],
    ['a huge constant the planner evaluates', "select md5(repeat('x', 900000000)) as m"],
  ])('%s past --timeout is stopped: exit 1 with the message of the Postgres server path', async (_what, query) => {
    const out = await runMmsweep(['sql', query, '--timeout', '1000'], cliEnv, 300_000);
    expect(out).toEqual({ exitCode: 1, stdout: '', stderr: 'mmsweep: query cancelled after the 1000 ms statement timeout (raise it with --timeout)\n' });
    expect(await ownerRows<{ id: string }>('select id from studies')).toEqual([{ id: 's2' }]);
  }, 320_000);

  it("the owner goes on writing while a guest's query runs; the guest sees what was committed before it started", async () => {
    await upsertStudy(owner.db, { id: 's2-before', name: 's2-before', spec: {} });
    // The guest's query reads the clock before and after its sleep; the owner notes when each of its writes completes.
    // Before, the guest's statement ran on the owner's PGlite, on the thread that also serves the owner: no write of the
    // owner could complete between the two readings.
    const query = `select extract(epoch from clock_timestamp()) * 1000 as started, pg_sleep(5)::text as slept,
      extract(epoch from clock_timestamp()) * 1000 as ended, (select string_agg(id, ',' order by id) from studies) as ids`;
    const guest = runMmsweep(['sql', query, '--timeout', '120000', '--format', 'json'], cliEnv);
    let running = true;
    void guest.finally(() => (running = false));
    const completed: number[] = [];
    for (let i = 0; running; i++) {
      await upsertStudy(owner.db, { id: 's2-during', name: 's2-during', spec: { i } });
      completed.push(Date.now());
      await new Promise((r) => setTimeout(r, 50));
    }
    const out = await guest;
    expect(out.stderr).toBe('');
    const [{ ids, started, ended }] = JSON.parse(out.stdout) as { ids: string; started: number; ended: number }[];
    expect(ids).toMatch(/^s2,s2-before(,s2-during)?$/); // s2-during: when the snapshot came after the first write
    const during = completed.filter((t) => t > Number(started) && t < Number(ended));
    expect(during.length).toBeGreaterThan(0);
  }, 180_000);

  it("COPY … TO PROGRAM (the report: it wedged the owner for good) is refused, exit 2, and the owner answers", async () => {
    const out = await runMmsweep(['sql', "copy trials to program 'true'"], cliEnv);
    expect(out.exitCode).toBe(2);
    expect(out.stderr).toMatch(/^mmsweep: refused: mmsweep sql runs queries read-only and takes one SELECT, WITH, VALUES or TABLE query; this one starts with COPY/);
    expect(await ownerRows<{ trial_key: string }>('select trial_key from trials')).toEqual([{ trial_key: 's2-a' }]);
  }, 120_000);

  it('a guest cannot write: refused as before, and what runs in the sandbox changes only a discarded copy', async () => {
    for (const write of [`update trials set status = 'failed'`, `select 1) q; delete from trials; select (1`, `select set_config('transaction_read_only', 'off', true)`]) {
      const out = await runInProcess(registerSql, ['sql', write]);
      expect(out.exitCode, write).not.toBe(0);
      expect(out.stderr, write).toMatch(/^mmsweep: (refused|query failed)/);
    }
    // Even a superuser write committed in the sandbox (no read-only role, no READ ONLY) stays in the copy.
    const sandbox = await GuestSandbox.start(await owner.snapshot!());
    try {
      await sandbox.transaction(async (tx) => {
        await tx.exec(`update trials set status = 'failed'; insert into studies (id, name, spec) values ('evil', 'evil', '{}'); commit`);
        expect(rowsOf(await tx.query(`select (select status from trials) as status, (select count(*)::int from studies where id = 'evil') as evil`))).toEqual([{ status: 'failed', evil: 1 }]);
      }, { timeoutMs: 60_000 });
    } finally {
      await sandbox.close();
    }
    expect(await ownerRows('select status, (select count(*)::int from studies where id = \'evil\') as evil from trials')).toEqual([{ status: 'pending', evil: 0 }]);
  }, 120_000);

  it('a snapshot holds what was committed when it was taken, not a transaction still open on the owner', async () => {
    const ids = `select string_agg(id, ',' order by id) as ids from studies`;
    const committed = await ownerRows(ids);
    const client = postgres(owner.url!.replace(/\?host=.*/, ''), { host: new URL(owner.url!).searchParams.get('host')!, max: 1, onnotice: () => {} });
    try {
      await client.begin(async (tx) => {
        await tx`insert into studies (id, name, spec) values ('s2-open', 's2-open', '{}')`;
        // Taken between two statements of that transaction: crash recovery in the sandbox drops the uncommitted row.
        const sandbox = await GuestSandbox.start(await owner.snapshot!());
        try {
          const out = await runReadOnlyQuery(sandbox, ids, { timeoutMs: 60_000 });
          expect(out.rows).toEqual(committed);
        } finally {
          await sandbox.close();
        }
      });
    } finally {
      await client.end();
    }
    const sandbox = await GuestSandbox.start(await owner.snapshot!());
    try {
      const out = await runReadOnlyQuery(sandbox, `select count(*)::int as n from studies where id = 's2-open'`, { timeoutMs: 60_000 });
      expect(out.rows).toEqual([{ n: 1 }]);
    } finally {
      await sandbox.close();
    }
  }, 120_000);

  it('what the planner check refused now runs (recursion, series over a subquery); --max-rows still holds', async () => {
    const both = `with recursive t(n) as (select 1 union all select n + 1 from t where n < 3)
      select (select count(*)::int from t) as recursive, (select count(*)::int from generate_series(1, (select 4))) as series`;
    expect(await runInProcess(registerSql, ['sql', both, '--format', 'csv'])).toMatchObject({ exitCode: 0, stdout: 'recursive,series\n3,4\n' });
    const over = await runInProcess(registerSql, ['sql', 'select n from generate_series(1, 11) n', '--max-rows', '10']);
    expect(over.exitCode).toBe(2);
    expect(over.stderr).toMatch(/returns more than 10 rows \(--max-rows\)/);
    expect(over.stdout).toBe('');
    const exact = await runInProcess(registerSql, ['sql', 'select n from generate_series(1, 10) n', '--max-rows', '10', '--format', 'csv']);
    expect(exact.exitCode).toBe(0);
    expect(exact.stdout.trim().split('\n')).toHaveLength(11);
    for (const bad of ['0', '-1', '1.5', 'ten']) {
      const out = await runInProcess(registerSql, ['sql', 'select 1', '--max-rows', bad]);
      expect(out.exitCode, bad).toBe(2);
      expect(out.stderr).toContain(`--max-rows must be a positive integer, got "${bad}"`);
    }
  }, 120_000);

  it('without an owner, mmsweep sql holds the database only for the snapshot: a run started during its query owns it', async () => {
    const alone = path.join(scratch, 'home-s2-alone', 'db');
    await copyPgliteTemplate(alone);
    const guest = spawn(process.execPath, ['bin/mmsweep.js', 'sql', 'select pg_sleep(600)', '--timeout', '120000'], {
      cwd: repoRoot,
      env: { ...process.env, ...cliEnv, MMSWEEP_HOME: path.dirname(alone), MMSWEEP_DEBUG: '1' },
    });
    let stderr = '';
    guest.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => guest.on('close', resolve));
    try {
      for (let i = 0; i < 1200 && !/running the query/.test(stderr) && guest.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
      expect(stderr).toMatch(/^mmsweep: sql: snapshot of the embedded database: [\d.]+ MiB, taken in \d+ ms, opened in \d+ ms; running the query\n$/);
      expect(fs.existsSync(embeddedFiles(alone).lock)).toBe(false);
      const next = await openDatabase({ url: '', dataDir: alone }); // as `mmsweep run` would
      try {
        expect(next.owner).toBe(true);
        expect(guest.exitCode).toBe(null); // the guest's query still runs, on its copy
      } finally {
        await next.close();
      }
    } finally {
      guest.kill('SIGKILL');
      await exited;
    }
  }, 320_000);
});

describe('S2 on the server: the timeout is enforced there, so the embedded-only refusals do not apply', () => {
  it('pg_sleep is cancelled by the statement timeout; --max-rows holds', async () => {
    const database = await createServerDatabase();
    const handle = await openDatabase({ url: database.url });
    const restore = withEnv({ DATABASE_URL: database.url });
    try {
      const sleep = await runInProcess(registerSql, ['sql', 'select pg_sleep(30)', '--timeout', '300']);
      expect(sleep.exitCode).toBe(1);
      expect(sleep.stderr).toMatch(/cancelled after the 300 ms statement timeout/);
      const recursive = await runInProcess(registerSql, ['sql', 'with recursive t(n) as (select 1 union all select n + 1 from t where n < 3) select count(*)::int as n from t', '--format', 'csv']);
      expect(recursive).toMatchObject({ exitCode: 0, stdout: 'n\n3\n' });
      const over = await runInProcess(registerSql, ['sql', 'select n from generate_series(1, 11) n', '--max-rows', '10']);
      expect(over.exitCode).toBe(2);
      expect(over.stderr).toMatch(/returns more than 10 rows/);
    } finally {
      restore();
      await handle.close();
      await database.drop();
    }
  }, 60_000);
});

describe('U4: subsets, the data cache and MMSWEEP_HOME', () => {
  it('mmsweep train --subset / --subset-test larger than the data exits 2 naming the flag and the split size', async () => {
    const base = ['train', '--lr', '0.01', '--seed', '0', '--width', '0.25', '--max-epochs', '1'];
    const train = await runMmsweep([...base, '--subset', '60001'], {}, 300_000);
    expect(train.exitCode, train.stderr).toBe(2);
    expect(train.stderr).toContain('--subset (subset.train) is 60001, more than the 60000 examples of the cmnist train split; lower it or drop it');
    expect(train.stderr).not.toMatch(/\n\s+at /);
    const test = await runMmsweep([...base, '--subset', '100', '--subset-test', '10001'], {}, 300_000);
    expect(test.exitCode, test.stderr).toBe(2);
    expect(test.stderr).toContain('--subset-test (subset.test) is 10001, more than the 10000 examples of the cmnist test split');
  }, 600_000);

  it('a failed rename leaves no temp file; temp files of dead writers are swept, live ones kept', async () => {
    const { writeCacheFile } = await import('../../src/data/cache.ts');
    const dir = path.join(scratch, 'u4-cache');
    fs.mkdirSync(path.join(dir, 'target.bin', 'occupied'), { recursive: true }); // a directory where the file goes
    const bytes = new Uint8Array(1 << 20);
    expect(() => writeCacheFile(path.join(dir, 'target.bin'), { k: 1 }, [{ name: 'a', bytes }])).toThrow();
    expect(fs.readdirSync(dir)).toEqual(['target.bin']);

    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.once('exit', resolve));
    const deadTemp = `other.bin.tmp-${dead.pid}-0123abcd`;
    const liveTemp = `other.bin.tmp-1-0123abcd`; // pid 1 is alive: a writer still at work
    fs.writeFileSync(path.join(dir, deadTemp), 'left by a killed writer');
    fs.writeFileSync(path.join(dir, liveTemp), 'being written');
    writeCacheFile(path.join(dir, 'fresh.bin'), { k: 1 }, [{ name: 'a', bytes }]);
    expect(fs.readdirSync(dir).sort()).toEqual(['fresh.bin', liveTemp, 'target.bin'].sort());
  });

  it('the data cache lives under MMSWEEP_HOME: a moved home finds its cache (no regeneration, no stale path)', async () => {
    const { resolveCacheDir, readCacheFile, writeCacheFile } = await import('../../src/data/cache.ts');
    const { coloredCachePath } = await import('../../src/data/cmnist.ts');
    const before = path.join(scratch, 'u4-home-before');
    const after = path.join(scratch, 'u4-home-after');
    const restore = withEnv({ MMSWEEP_HOME: before, MMSWEEP_CACHE_DIR: undefined });
    try {
      expect(resolveCacheDir()).toBe(path.join(before, 'cache'));
      const coloring = { sigma2: 0.02, palette: 'hue-wheel', paletteSeed: 0 } as never;
      const file = coloredCachePath(resolveCacheDir(), 'train', coloring, 7);
      writeCacheFile(file, { k: 1 }, [{ name: 'a', bytes: new Uint8Array([1, 2, 3]) }]);
      fs.renameSync(before, after);
      process.env.MMSWEEP_HOME = after;
      const moved = coloredCachePath(resolveCacheDir(), 'train', coloring, 7);
      expect(moved.startsWith(path.join(after, 'cache'))).toBe(true);
      const read = readCacheFile(moved, { k: 1 }, ['a']);
      expect(read.status).toBe('ok');
      // An explicit MMSWEEP_CACHE_DIR still wins.
      process.env.MMSWEEP_CACHE_DIR = path.join(scratch, 'elsewhere');
      expect(resolveCacheDir()).toBe(path.join(scratch, 'elsewhere'));
    } finally {
      restore();
    }
  });
});

describe('W2 for stored specs past 64 KiB (their documents travel by sha256)', () => {
  const seeds = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  const big = (over: { seeds?: number[]; maxEpochs?: number } = {}) => ({
    name: 'w2-big',
    conditions: [{ label: 'vanilla', base: { dataset: { name: 'cmnist' }, lr: 0.01, maxEpochs: over.maxEpochs ?? 3, width: 0.25 }, seeds: over.seeds ?? seeds(0, 100_000) }],
  });

  it('compares 10⁵ stored seeds with 2·10⁵ new ones at once and shows the difference in a few lines', async () => {
    const { parseStudySpec } = await import('../../src/spec/study.ts');
    const { checkStudyRerun } = await import('../../src/spec/study-change.ts');
    const { INLINE_SPEC_BYTES } = await import('../../src/spec/study-model.ts');
    const { canonicalJson } = await import('../../src/spec/canonical.ts');
    const stored = parseStudySpec(big());
    expect(Buffer.byteLength(canonicalJson(stored))).toBeGreaterThan(INLINE_SPEC_BYTES); // the premise
    const more = parseStudySpec(big({ seeds: seeds(0, 200_000) }));
    let message = '';
    try {
      checkStudyRerun(stored, more);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('condition "vanilla": seeds + 100,000 values [100000,100001,100002,…,199999]\nAdd --extend');
    expect(message.length).toBeLessThan(400);
    expect(checkStudyRerun(stored, more, { extend: true }).additions).toEqual(['condition "vanilla": seeds + 100,000 values [100000,100001,100002,…,199999]']);
  }, 30_000);

  it('mmsweep study start of a changed large spec exits 2 before contacting Temporal, with a short message', async () => {
    const database = await createServerDatabase();
    const handle = await openDatabase({ url: database.url });
    try {
      const { parseStudySpec } = await import('../../src/spec/study.ts');
      await upsertStudy(handle.db, { id: 'w2-big', name: 'w2-big', spec: parseStudySpec(big()) });
      const changed = path.join(scratch, 'w2-big-changed.json');
      fs.writeFileSync(changed, JSON.stringify(big({ maxEpochs: 5, seeds: seeds(0, 150_000) })));
      const out = await runMmsweep(['study', 'start', changed, '--address', '127.0.0.1:1'], { DATABASE_URL: database.url });
      expect(out.exitCode, out.stderr).toBe(2);
      expect(out.stderr).toContain('already exists with a different spec:\n  condition "vanilla": base.maxEpochs 3 → 5\n  condition "vanilla": seeds + 50,000 values [100000,100001,100002,…,149999]');
      expect(out.stderr.length).toBeLessThan(1000);
    } finally {
      await handle.close();
      await database.drop();
    }
  }, 120_000);
});

describe('seeds beyond the results store', () => {
  // The store keeps a trial's seed in a Postgres integer column: 2^31 − 1 = 2147483647 is its largest value.
  const seedMessage = /a seed is at most 2147483647 \(2\^31 − 1/;

  it('a seed past 2^31 − 1 is refused where the spec is read, naming the key; 2^31 − 1 is accepted', async () => {
    const { parseTrialSpec } = await import('../../src/spec/trial.ts');
    const { parseStudySpec } = await import('../../src/spec/study.ts');
    const base = { dataset: { name: 'cmnist' }, lr: 0.1 };
    expect(parseTrialSpec({ ...base, seed: 2147483647 }).seed).toBe(2147483647);
    expect(() => parseTrialSpec({ ...base, seed: 2147483648 })).toThrow(seedMessage);
    expect(() => parseTrialSpec({ kind: 'noop', seed: 2 ** 40 })).toThrow(seedMessage);
    expect(() => parseStudySpec({ name: 's', conditions: [{ label: 'c', base, seeds: [0, 2147483648] }] })).toThrow(/conditions\.0\.seeds\.1: a seed is at most 2147483647/);
  });

  it('mmsweep train and mmsweep run exit 2 for it before training or starting anything', async () => {
    const dir = tempDir('mmsweep-seed-');
    try {
      const trial = path.join(dir, 'trial.json');
      fs.writeFileSync(trial, JSON.stringify({ dataset: { name: 'cmnist' }, lr: 0.1, seed: 4294967296 }));
      const train = await runMmsweep(['train', '--spec', trial], { MMSWEEP_HOME: dir });
      expect(train.exitCode).toBe(2);
      expect(train.stderr).toMatch(seedMessage);
      const study = path.join(dir, 'study.json');
      fs.writeFileSync(study, JSON.stringify({ name: 'big-seed', conditions: [{ label: 'c', base: { dataset: { name: 'cmnist' }, lr: 0.1 }, seeds: [2147483648] }] }));
      const run = await runMmsweep(['run', study], { MMSWEEP_HOME: dir });
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toMatch(seedMessage);
      expect(fs.readdirSync(dir).sort()).toEqual(['study.json', 'trial.json']); // no database, no Temporal state
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('the largest accepted seed is stored and read back unchanged by the real Postgres server', async () => {
    const database = await createServerDatabase();
    const handle = await openDatabase({ url: database.url });
    try {
      await upsertStudy(handle.db, { id: 'seeds', name: 'seeds', spec: {} });
      await registerTrials(handle.db, 'seeds', [{ trialKey: 'max-seed', spec: cmnistSpec({ seed: 2147483647 }) }]);
      const rows = rowsOf<{ seed: number }>(await handle.db.execute(sql`select seed from trials where trial_key = ${'max-seed'}`));
      expect(rows).toEqual([{ seed: 2147483647 }]);
    } finally {
      await handle.close();
      await database.drop();
    }
  }, 60_000);
});

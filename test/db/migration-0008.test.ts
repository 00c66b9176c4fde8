import fs from 'node:fs';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationsFolder, openDatabase, registerTrials, type DbHandle } from '../../db/index.ts';
import { cmnistSpec } from './store.suite.ts';
import { createServerDatabase, tempDir } from './targets.ts';

/**
 * Migration 0008 (issue 15) on a database written by the schema before it: study_trials loses its two foreign keys
 * to statement-level triggers that keep the same rules, and trials_status_idx leaves out pending trials. The data
 * stay as they were, the counts agree with a recount, and the rules the foreign keys enforced still hold.
 */

let database: Awaited<ReturnType<typeof createServerDatabase>>;
let raw: postgres.Sql;
let handle: DbHandle | undefined;

/** The migrations folder as it was before 0008: the same files, the journal cut after 0007. */
function migrationsBefore0008(): string {
  const dir = tempDir('mmsweep-migrations-0007-');
  fs.cpSync(migrationsFolder, dir, { recursive: true });
  const journalFile = path.join(dir, 'meta', '_journal.json');
  const journal = JSON.parse(fs.readFileSync(journalFile, 'utf8')) as { entries: { tag: string }[] };
  const cut = journal.entries.findIndex((e) => e.tag.startsWith('0008_'));
  expect(cut).toBe(8);
  journal.entries = journal.entries.slice(0, cut);
  fs.writeFileSync(journalFile, JSON.stringify(journal));
  return dir;
}

const progress = async () =>
  (await raw`select study_id, trials, pending, running, done, failed, diverged from study_progress order by study_id`).map((r) => ({ ...r }));

beforeAll(async () => {
  database = await createServerDatabase();
  raw = postgres(database.url, { max: 1, onnotice: () => {} });
  await migrate(drizzle(raw), { migrationsFolder: migrationsBefore0008() });
  // Data as the previous schema's code wrote them: two studies sharing a trial, one done (with its result), one
  // failed, two pending; plus a trial that belongs to no study.
  const spec = (seed: number) => JSON.stringify(cmnistSpec({ seed }));
  await raw.unsafe(`
    insert into studies (id, name, spec) values ('old-a', 'old-a', '{}'), ('old-b', 'old-b', '{}');
    insert into trials (trial_key, spec, kind, dataset, architecture, status, attempt) values
      ('k-done', '${spec(1)}', 'train', 'cmnist', 'mmtm', 'done', 1),
      ('k-failed', '${spec(2)}', 'train', 'cmnist', 'mmtm', 'failed', 1),
      ('k-pending', '${spec(3)}', 'train', 'cmnist', 'mmtm', 'pending', 0),
      ('k-shared', '${spec(4)}', 'train', 'cmnist', 'mmtm', 'pending', 0),
      ('k-alone', '${spec(5)}', 'train', 'cmnist', 'mmtm', 'pending', 0);
    insert into study_trials (study_id, trial_key, position, label) values
      ('old-a', 'k-done', 0, 'x'), ('old-a', 'k-failed', 1, 'x'), ('old-a', 'k-shared', 2, 'y'),
      ('old-b', 'k-pending', 0, 'z'), ('old-b', 'k-shared', 1, 'z');
    insert into results (trial_key, attempt, test_acc, acc_f, diverged) values ('k-done', 1, 91.5, 91.5, true);
  `);
  // The previous registration kept study_counts in its own statement; here, the same counts from scratch.
  await raw`select mmsweep_recount_studies(array['old-a', 'old-b'])`;
});

afterAll(async () => {
  await handle?.close();
  await raw?.end();
  await database?.drop();
});

describe('migration 0008 on a database of the previous schema', () => {
  it('keeps every row and count, and replaces the foreign keys and the status index', async () => {
    const before = {
      memberships: (await raw`select * from study_trials order by study_id, position`).map((r) => ({ ...r })),
      trials: (await raw`select trial_key, status, spec from trials order by trial_key`).map((r) => ({ ...r })),
      progress: await progress(),
    };
    expect(before.progress).toEqual([
      { study_id: 'old-a', trials: 3, pending: 1, running: 0, done: 1, failed: 1, diverged: 1 },
      { study_id: 'old-b', trials: 2, pending: 2, running: 0, done: 0, failed: 0, diverged: 0 },
    ]);
    const foreignKeys = async () =>
      (await raw`select conname from pg_constraint where conrelid = 'study_trials'::regclass and contype = 'f'`).map((r) => r.conname);
    expect(await foreignKeys()).toHaveLength(2);

    handle = await openDatabase({ url: database.url }); // migrates to the newest schema

    expect(await foreignKeys()).toEqual([]);
    expect((await raw`select * from study_trials order by study_id, position`).map((r) => ({ ...r }))).toEqual(before.memberships);
    expect((await raw`select trial_key, status, spec from trials order by trial_key`).map((r) => ({ ...r }))).toEqual(before.trials);
    expect(await progress()).toEqual(before.progress);
    const [index] = await raw`select indexdef from pg_indexes where indexname = 'trials_status_idx'`;
    expect(index.indexdef).toMatch(/WHERE \(status <> 'pending'::text\)$/);
  });

  it('registers into the migrated store: new trials pending, a shared done trial counted done', async () => {
    await raw`insert into studies (id, name, spec) values ('new-c', 'new-c', '{}')`;
    const keys = await raw`select trial_key, spec from trials where trial_key in ('k-done', 'k-shared') order by trial_key`;
    expect(
      await registerTrials(handle!.db, 'new-c', [
        { trialKey: 'k-new', spec: cmnistSpec({ seed: 6 }) },
        ...keys.map((k) => ({ trialKey: k.trial_key as string, spec: cmnistSpec({ seed: (k.spec as { seed: number }).seed }) })),
      ]),
    ).toEqual({ newTrials: 1, newMemberships: 3 });
    expect((await progress()).find((p) => p.study_id === 'new-c')).toEqual({
      study_id: 'new-c', trials: 3, pending: 2, running: 0, done: 1, failed: 0, diverged: 1,
    });
  });

  it('refuses memberships of missing studies or trials, as the foreign keys did', async () => {
    const code = (p: Promise<unknown>) => p.then(() => 'no error', (e: { code?: string }) => e.code);
    expect(await code(raw`insert into study_trials (study_id, trial_key, position) values ('old-a', 'no-such-trial', 9)`)).toBe('23503');
    expect(await code(raw`insert into study_trials (study_id, trial_key, position) values ('no-such-study', 'k-alone', 0)`)).toBe('23503');
    expect(await code(raw`update study_trials set trial_key = 'no-such-trial' where study_id = 'old-b' and trial_key = 'k-pending'`)).toBe('23503');
    // A key that memberships name cannot change; one that none names can.
    expect(await code(raw`update trials set trial_key = 'k-renamed' where trial_key = 'k-shared'`)).toBe('23503');
    expect(await code(raw`update studies set id = 'old-b2' where id = 'old-b'`)).toBe('23503');
    expect(await code(raw`update trials set trial_key = 'k-alone-2' where trial_key = 'k-alone'`)).toBe('no error');
    expect(await code(raw`insert into study_trials (study_id, trial_key, position) values ('old-b', 'k-alone-2', 2)`)).toBe('no error');
  });

  it('deletes the memberships of deleted trials and studies, and recounts', async () => {
    await raw`delete from trials where trial_key = 'k-shared'`;
    expect(await raw`select study_id from study_trials where trial_key = 'k-shared'`).toHaveLength(0);
    expect((await progress()).find((p) => p.study_id === 'old-a')).toMatchObject({ trials: 2, pending: 0 });
    await raw`delete from studies where id = 'old-b'`;
    expect(await raw`select trial_key from study_trials where study_id = 'old-b'`).toHaveLength(0);
    expect((await progress()).map((p) => p.study_id)).toEqual(['new-c', 'old-a']);
    // The trials stay: a trial is global, only its membership went with the study.
    expect(await raw`select trial_key from trials where trial_key = 'k-pending'`).toHaveLength(1);
  });
});

import fs from 'node:fs';
import { sql } from 'drizzle-orm';
import { parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CheckpointIntegrityError,
  claimTrialAttempt,
  conditionColumns,
  discardEpochsAfter,
  exportStudy,
  findStudy,
  getResult,
  getTrial,
  loadLatestCheckpoint,
  markTrialFailed,
  migrateDatabase,
  migrationsFolder,
  pendingTrialKeys,
  QueryError,
  ReadOnlyViolationError,
  recordEpoch,
  recordEpochs,
  recordResult,
  registerTrialBatch,
  registerTrials,
  rowsOf,
  runReadOnlyQuery,
  saveCheckpoint,
  studyProgress,
  studySummary,
  trialEpochs,
  trialOutcomes,
  upsertStudy,
  conditionOf,
  type Db,
  type TrialResultInput,
} from '../../db/index.ts';
import { canonicalJson } from '../../src/spec/canonical.ts';
import { seedSplice, trialKey } from '../../src/spec/keys.ts';
import { parseTrialSpec, type TrialSpec } from '../../src/spec/trial.ts';
import type { OpenTarget, Target } from './targets.ts';

/** One suite, run once per target (server, PGlite direct, PGlite through its socket). */

export function cmnistSpec(overrides: Record<string, unknown> = {}): TrialSpec {
  return parseTrialSpec({ dataset: { name: 'cmnist' }, lr: 0.01, seed: 0, ...overrides });
}

export function result(overrides: Partial<TrialResultInput> = {}): TrialResultInput {
  return {
    testAcc: 0.9,
    accF0: 0.8,
    accF1: 0.7,
    accF0Prime: 0.6,
    accF1Prime: 0.65,
    uM1GivenM0: 0.25,
    uM0GivenM1: 0.0714,
    dUtil: 0.1786,
    dSpeed: 0.3,
    rF: 0.01,
    bestEpoch: 3,
    stepsT: 1200,
    epochs: 5,
    diverged: false,
    ...overrides,
  };
}

async function rows<T = Record<string, unknown>>(db: Db, query: ReturnType<typeof sql>): Promise<T[]> {
  return rowsOf<T>(await db.execute(query));
}

export function defineStoreSuite(target: Target): void {
  describe(`results store on ${target.name}`, () => {
    let t: OpenTarget;
    let db: Db;

    beforeAll(async () => {
      t = await target.open();
      db = t.handle.db;
    });
    afterAll(async () => {
      await t?.cleanup();
    });

    it('migrates an empty database to the schema: tables, snake_case columns, indexes, views', async () => {
      const tables = await rows<{ table_name: string; table_type: string }>(
        db,
        sql`select table_name, table_type from information_schema.tables where table_schema = 'public' order by table_name`,
      );
      expect(tables.map((r) => `${r.table_name}:${r.table_type}`)).toEqual([
        'checkpoint_chunks:BASE TABLE',
        'checkpoints:BASE TABLE',
        'condition_summary:VIEW',
        'epochs:BASE TABLE',
        'results:BASE TABLE',
        'studies:BASE TABLE',
        'study_counts:BASE TABLE',
        'study_progress:VIEW',
        'study_specs:BASE TABLE',
        'study_trials:BASE TABLE',
        'trial_outcomes:VIEW',
        'trials:BASE TABLE',
      ]);
      const columns = await rows<{ column_name: string }>(
        db,
        sql`select column_name from information_schema.columns where table_schema = 'public' and table_name = 'results' order by ordinal_position`,
      );
      expect(columns.map((c) => c.column_name)).toEqual([
        'trial_key', 'attempt', 'test_acc', 'acc_f', 'acc_f0', 'acc_f1', 'acc_f0_prime', 'acc_f1_prime',
        'u_m1_given_m0', 'u_m0_given_m1', 'd_util', 'd_speed', 'r_f', 'best_epoch', 'steps_t', 'epochs',
        'diverged', 'raw', 'recorded_at',
      ]);
      const epochColumns = await rows<{ column_name: string; data_type: string; is_nullable: string }>(
        db,
        sql`select column_name, data_type, is_nullable from information_schema.columns where table_schema = 'public' and table_name = 'epochs' order by ordinal_position`,
      );
      // branch_acc came with migration 0002 (ALTER TABLE … ADD COLUMN), so it sits after recorded_at.
      expect(epochColumns.map((c) => c.column_name)).toEqual([
        'trial_key', 'epoch', 'attempt', 'train_acc', 'train_acc_0', 'train_acc_1', 'val_acc', 'val_acc_0', 'val_acc_1',
        'test_acc', 'test_acc_0', 'test_acc_1', 'loss', 'lr', 'd_speed', 'regular_steps', 'rebalance_steps',
        'wall_seconds', 'recorded_at', 'branch_acc',
      ]);
      expect(epochColumns.at(-1)).toEqual({ column_name: 'branch_acc', data_type: 'jsonb', is_nullable: 'YES' });
      const indexes = await rows<{ indexname: string }>(
        db,
        sql`select indexname from pg_indexes where schemaname = 'public' and indexname like '%_idx' order by indexname`,
      );
      expect(indexes.map((i) => i.indexname)).toEqual([
        'results_diverged_idx',
        'study_trials_position_idx',
        'trials_condition_idx',
        'trials_status_idx',
      ]);
      const journal = JSON.parse(fs.readFileSync(`${migrationsFolder}/meta/_journal.json`, 'utf8')) as { entries: unknown[] };
      const applied = await rows<{ n: number }>(db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
      expect(applied[0].n).toBe(journal.entries.length);
      // Migrating again is a no-op.
      await migrateDatabase(t.handle);
      const again = await rows<{ n: number }>(db, sql`select count(*)::int as n from drizzle.__drizzle_migrations`);
      expect(again[0].n).toBe(journal.entries.length);
    });

    it('upserts studies and registers trials idempotently, deriving the condition columns', async () => {
      await upsertStudy(db, { id: 'reg', preset: 'p', spec: { v: 1 } });
      await upsertStudy(db, { id: 'reg', preset: 'p2', spec: { v: 2 } });
      const study = await findStudy(db, 'reg');
      expect(study).toMatchObject({ id: 'reg', name: 'reg', preset: 'p2', spec: { v: 2 }, status: 'running' });

      const trialsIn = [
        { trialKey: 'reg-a', spec: cmnistSpec({ seed: 1 }), label: 'vanilla' },
        { trialKey: 'reg-b', spec: cmnistSpec({ seed: 2, algorithm: 'guided', alpha: 0.1, q: 5 }) },
        {
          trialKey: 'reg-c',
          spec: parseTrialSpec({ dataset: { name: 'nvgesture', pretrained: 'i3d' }, lr: 0.01, seed: 0, architecture: 'unimodal-se', unimodalModality: 1, fidelity: { gateScale: 2 } }),
        },
        { trialKey: 'reg-d', spec: parseTrialSpec({ kind: 'noop', sleepMs: 1 }) },
      ];
      expect(await registerTrials(db, 'reg', trialsIn)).toEqual({ newTrials: 4, newMemberships: 4 });
      expect(await registerTrials(db, 'reg', trialsIn)).toEqual({ newTrials: 0, newMemberships: 0 });
      // Extending with one more trial appends it after the existing ones.
      expect(await registerTrials(db, 'reg', [trialsIn[0], { trialKey: 'reg-e', spec: cmnistSpec({ seed: 5 }) }])).toEqual({
        newTrials: 1,
        newMemberships: 1,
      });
      expect(await pendingTrialKeys(db, 'reg')).toEqual(['reg-a', 'reg-b', 'reg-c', 'reg-d', 'reg-e']);

      const stored = await rows(
        db,
        sql`select trial_key, kind, dataset, dataset_variant, architecture, modalities, algorithm, profile, lr, seed, l1, alpha, q, status, attempt
            from trials where trial_key like 'reg-%' order by trial_key`,
      );
      expect(stored).toEqual([
        { trial_key: 'reg-a', kind: 'train', dataset: 'cmnist', dataset_variant: '', architecture: 'mmtm', modalities: 'distinct', algorithm: 'vanilla', profile: 'paper', lr: 0.01, seed: 1, l1: 0, alpha: null, q: null, status: 'pending', attempt: 0 },
        { trial_key: 'reg-b', kind: 'train', dataset: 'cmnist', dataset_variant: '', architecture: 'mmtm', modalities: 'distinct', algorithm: 'guided', profile: 'paper', lr: 0.01, seed: 2, l1: 0, alpha: 0.1, q: 5, status: 'pending', attempt: 0 },
        { trial_key: 'reg-c', kind: 'train', dataset: 'nvgesture', dataset_variant: 'pretrained', architecture: 'unimodal-se:m1', modalities: 'distinct', algorithm: 'vanilla', profile: 'paper+gateScale=2', lr: 0.01, seed: 0, l1: 0, alpha: null, q: null, status: 'pending', attempt: 0 },
        { trial_key: 'reg-d', kind: 'noop', dataset: 'noop', dataset_variant: '', architecture: 'noop', modalities: null, algorithm: null, profile: null, lr: null, seed: 0, l1: null, alpha: null, q: null, status: 'pending', attempt: 0 },
        { trial_key: 'reg-e', kind: 'train', dataset: 'cmnist', dataset_variant: '', architecture: 'mmtm', modalities: 'distinct', algorithm: 'vanilla', profile: 'paper', lr: 0.01, seed: 5, l1: 0, alpha: null, q: null, status: 'pending', attempt: 0 },
      ]);

      // A second study sharing a trial reuses the row (and later its result).
      await upsertStudy(db, { id: 'reg2', spec: {} });
      expect(await registerTrials(db, 'reg2', [trialsIn[1]])).toEqual({ newTrials: 0, newMemberships: 1 });
      await expect(registerTrials(db, 'no-such-study', trialsIn)).rejects.toThrow(/no study "no-such-study"/);
    });

    it('claims attempts: next is atomic, older attempts are superseded, done trials are not re-run', async () => {
      await upsertStudy(db, { id: 'claim', spec: {} });
      await registerTrials(db, 'claim', [{ trialKey: 'claim-a', spec: cmnistSpec({ seed: 11 }) }]);
      expect(await claimTrialAttempt(db, 'claim-a', 'next', { worker: 'w1', backend: 'cpu' })).toEqual({ claimed: true, attempt: 1 });
      const first = await getTrial(db, 'claim-a');
      expect(first).toMatchObject({ status: 'running', attempt: 1, worker: 'w1', backend: 'cpu' });
      // Replaying the same claim keeps the start time.
      expect(await claimTrialAttempt(db, 'claim-a', 1, { worker: 'w1', backend: 'cpu' })).toEqual({ claimed: true, attempt: 1 });
      expect((await getTrial(db, 'claim-a'))!.startedAt!.getTime()).toBe(first!.startedAt!.getTime());
      expect(await claimTrialAttempt(db, 'claim-a', 'next', { worker: 'w2' })).toEqual({ claimed: true, attempt: 2 });
      expect(await claimTrialAttempt(db, 'claim-a', 1, { worker: 'w1' })).toEqual({ claimed: false, reason: 'superseded', attempt: 2 });
      expect(await claimTrialAttempt(db, 'claim-a', 7, { worker: 'w3', device: 'gpu:1' })).toEqual({ claimed: true, attempt: 7 });
      expect((await recordResult(db, 'claim-a', 7, result())).applied).toBe(true);
      expect(await claimTrialAttempt(db, 'claim-a', 'next', { worker: 'w4' })).toEqual({ claimed: false, reason: 'done', attempt: 7 });
      expect(await claimTrialAttempt(db, 'claim-a', 8, { worker: 'w4' })).toEqual({ claimed: false, reason: 'done', attempt: 7 });
      await expect(claimTrialAttempt(db, 'claim-missing', 1, { worker: 'w' })).rejects.toThrow(/no trial with key claim-missing/);
    });

    it('fences writes: an older attempt never overwrites a newer one, and replays change nothing', async () => {
      await upsertStudy(db, { id: 'fence', spec: {} });
      await registerTrials(db, 'fence', [{ trialKey: 'fence-a', spec: cmnistSpec({ seed: 21 }) }]);
      // Unclaimed: no write lands.
      expect(await recordEpoch(db, 'fence-a', 1, { epoch: 1, trainAcc: 0.1 })).toEqual({ applied: false, currentAttempt: 0, status: 'pending' });

      await claimTrialAttempt(db, 'fence-a', 1, { worker: 'old' });
      expect((await recordEpochs(db, 'fence-a', 1, [
        { epoch: 1, trainAcc: 0.5, valAcc: 0.4, dSpeed: 0.1, regularSteps: 10, rebalanceSteps: 0, wallSeconds: 1.5 },
        { epoch: 2, trainAcc: 0.6, valAcc: 0.5, dSpeed: 0.2, regularSteps: 20, rebalanceSteps: 0, wallSeconds: 3 },
        { epoch: 3, trainAcc: 0.7, valAcc: 0.55, dSpeed: 0.25, regularSteps: 30, rebalanceSteps: 0, wallSeconds: 4.5 },
      ])).applied).toBe(true);

      await claimTrialAttempt(db, 'fence-a', 2, { worker: 'new' });
      // The zombie attempt 1 keeps writing: nothing changes.
      expect(await recordEpoch(db, 'fence-a', 1, { epoch: 2, trainAcc: 0.99 })).toEqual({ applied: false, currentAttempt: 2, status: 'running' });
      expect(await recordEpoch(db, 'fence-a', 1, { epoch: 4, trainAcc: 0.99 })).toMatchObject({ applied: false });
      expect((await recordResult(db, 'fence-a', 1, result({ testAcc: 0.11 }))).applied).toBe(false);
      expect((await saveCheckpoint(db, 'fence-a', 1, 3, new Uint8Array([9]))).applied).toBe(false);
      expect((await markTrialFailed(db, 'fence-a', 1, 'zombie crashed')).applied).toBe(false);
      let epochRows = await trialEpochs(db, 'fence-a');
      expect(epochRows.map((e) => [e.epoch, e.attempt, e.trainAcc])).toEqual([[1, 1, 0.5], [2, 1, 0.6], [3, 1, 0.7]]);
      expect(await getResult(db, 'fence-a')).toBeNull();
      expect(await getTrial(db, 'fence-a')).toMatchObject({ status: 'running', attempt: 2, error: null });

      // Attempt 2 resumes from its epoch-1 checkpoint: rows past it go, then it rewrites them.
      expect((await discardEpochsAfter(db, 'fence-a', 2, 1)).applied).toBe(true);
      expect((await trialEpochs(db, 'fence-a')).map((e) => e.epoch)).toEqual([1]);
      const epoch2 = { epoch: 2, trainAcc: 0.65, valAcc: 0.5, dSpeed: Number.NaN, regularSteps: 20, rebalanceSteps: 5, wallSeconds: 3.2 };
      expect((await recordEpochs(db, 'fence-a', 2, [epoch2])).applied).toBe(true);
      epochRows = await trialEpochs(db, 'fence-a');
      expect(epochRows.map((e) => [e.epoch, e.attempt, e.trainAcc, e.dSpeed, e.rebalanceSteps])).toEqual([
        [1, 1, 0.5, 0.1, 0],
        [2, 2, 0.65, null, 5],
      ]);

      // Replays of the same writes leave every column, timestamps included, as they were.
      const before = await rows(db, sql`select * from epochs where trial_key = 'fence-a' order by epoch`);
      expect((await recordEpochs(db, 'fence-a', 2, [epoch2])).applied).toBe(true);
      expect(await rows(db, sql`select * from epochs where trial_key = 'fence-a' order by epoch`)).toEqual(before);

      const final = result({ testAcc: 0.93, dUtil: null, dSpeed: Number.POSITIVE_INFINITY, epochs: [{}, {}, {}], backend: 'cpu' });
      expect(await recordResult(db, 'fence-a', 2, final)).toEqual({ applied: true, currentAttempt: 2, status: 'done' });
      const resultBefore = await rows(db, sql`select * from results where trial_key = 'fence-a'`);
      const trialBefore = await rows(db, sql`select * from trials where trial_key = 'fence-a'`);
      expect(await recordResult(db, 'fence-a', 2, final)).toEqual({ applied: true, currentAttempt: 2, status: 'done' });
      expect(await rows(db, sql`select * from results where trial_key = 'fence-a'`)).toEqual(resultBefore);
      expect(await rows(db, sql`select * from trials where trial_key = 'fence-a'`)).toEqual(trialBefore);

      const stored = await getResult(db, 'fence-a');
      expect(stored).toMatchObject({ attempt: 2, testAcc: 0.93, accF: 0.93, dUtil: null, dSpeed: null, epochs: 3, diverged: false });
      expect(stored!.raw).toMatchObject({ backend: 'cpu', dSpeed: 'Infinity', dUtil: null });
      // A failure report after the result does not downgrade the trial.
      expect(await markTrialFailed(db, 'fence-a', 2, 'late crash')).toEqual({ applied: false, currentAttempt: 2, status: 'done' });
      expect(await getTrial(db, 'fence-a')).toMatchObject({ status: 'done', error: null });
    });

    it('keeps every branch accuracy of a three-view net per epoch and its per-modality result in raw', async () => {
      await upsertStudy(db, { id: 'three', spec: {} });
      const spec = parseTrialSpec({ dataset: { name: 'modelnet40', views: [0, 4, 8] }, lr: 0.1, seed: 0, algorithm: 'guided', alpha: 0.01 });
      await registerTrials(db, 'three', [{ trialKey: 'three-a', spec }]);
      // The report maps this variant to its `modelnet40-3views` column (src/report/model.ts datasetColumn).
      expect(await getTrial(db, 'three-a')).toMatchObject({ dataset: 'modelnet40', datasetVariant: 'views=0,4,8', modalities: 'distinct' });
      await claimTrialAttempt(db, 'three-a', 1, { worker: 'w' });

      const epoch1 = {
        epoch: 1, trainAcc: 60, trainAcc0: 50, trainAcc1: 40, valAcc: 55, valAcc0: 45, valAcc1: 35, testAcc: 54, testAcc0: 44, testAcc1: 34,
        branchAcc: { train: [50, 40, 30.5], val: [45, 35, 25], test: [44, 34, Number.NaN] },
      };
      // A two-modality epoch row (no branchAcc) leaves the column NULL.
      const epoch2 = { epoch: 2, trainAcc: 70, trainAcc0: 65, trainAcc1: 50 };
      expect((await recordEpochs(db, 'three-a', 1, [epoch1, epoch2])).applied).toBe(true);
      let stored = await trialEpochs(db, 'three-a');
      expect(stored.map((e) => [e.epoch, e.branchAcc])).toEqual([
        // NaN cannot live in jsonb: stored as null, as the numeric columns store NULL.
        [1, { train: [50, 40, 30.5], val: [45, 35, 25], test: [44, 34, null] }],
        [2, null],
      ]);
      // Plain SQL reaches the third branch.
      const third = await rows<{ train2: number; len: number }>(
        db,
        sql`select (branch_acc->'train'->>2)::float8 as train2, jsonb_array_length(branch_acc->'val')::int as len from epochs where trial_key = 'three-a' and epoch = 1`,
      );
      expect(third).toEqual([{ train2: 30.5, len: 3 }]);

      // Replaying the write changes nothing, timestamps included.
      const before = await rows(db, sql`select * from epochs where trial_key = 'three-a' order by epoch`);
      expect((await recordEpochs(db, 'three-a', 1, [epoch1, epoch2])).applied).toBe(true);
      expect(await rows(db, sql`select * from epochs where trial_key = 'three-a' order by epoch`)).toEqual(before);

      // A newer attempt owns the trial: the old one's branch accuracies are fenced off, the new one's replace them.
      await claimTrialAttempt(db, 'three-a', 2, { worker: 'w2' });
      expect((await recordEpoch(db, 'three-a', 1, { ...epoch1, branchAcc: { train: [1, 1, 1], val: [1, 1, 1], test: [1, 1, 1] } })).applied).toBe(false);
      expect((await trialEpochs(db, 'three-a'))[0].branchAcc).toEqual({ train: [50, 40, 30.5], val: [45, 35, 25], test: [44, 34, null] });
      expect((await recordEpoch(db, 'three-a', 2, { ...epoch1, branchAcc: { train: [52, 41, 33], val: [46, 36, 27], test: [45, 35, 26] } })).applied).toBe(true);
      stored = await trialEpochs(db, 'three-a');
      expect(stored.map((e) => [e.epoch, e.attempt, e.branchAcc])).toEqual([
        [1, 2, { train: [52, 41, 33], val: [46, 36, 27], test: [45, 35, 26] }],
        [2, 1, null],
      ]);

      // u(rest|m_k) = (A(f_k) − A(f_k′))/A(f_k): (88 − 66)/88 = 0.25, (80 − 72)/80 = 0.1, (75 − 75)/75 = 0;
      // d_util = max u − min u = 0.25. The fixed columns hold the first two modalities.
      const perModality = [
        { name: 'front', accF: 88, accFPrime: 66, u: 0.25 },
        { name: 'v005', accF: 80, accFPrime: 72, u: 0.1 },
        { name: 'v009', accF: 75, accFPrime: 75, u: 0 },
      ];
      const final = result({
        testAcc: 92, accF: 92, accF0: 88, accF0Prime: 66, accF1: 80, accF1Prime: 72, uM1GivenM0: 0.25, uM0GivenM1: 0.1,
        dUtil: 0.25, dSpeed: 0.4, perModality,
      });
      expect((await recordResult(db, 'three-a', 2, final)).applied).toBe(true);
      const res = await getResult(db, 'three-a');
      expect(res).toMatchObject({ testAcc: 92, accF0: 88, accF1: 80, uM1GivenM0: 0.25, uM0GivenM1: 0.1, dUtil: 0.25 });
      expect((res!.raw as { perModality: unknown }).perModality).toEqual(perModality);
      const viaSql = await rows<{ name: string; u: number }>(
        db,
        sql`select m->>'name' as name, (m->>'u')::float8 as u from results, jsonb_array_elements(raw->'perModality') with ordinality as e(m, k) where trial_key = 'three-a' order by k`,
      );
      expect(viaSql).toEqual([{ name: 'front', u: 0.25 }, { name: 'v005', u: 0.1 }, { name: 'v009', u: 0 }]);
    });

    it('marks failures and lets a later attempt retry them', async () => {
      await upsertStudy(db, { id: 'fail', spec: {} });
      await registerTrials(db, 'fail', [{ trialKey: 'fail-a', spec: cmnistSpec({ seed: 31 }) }]);
      await claimTrialAttempt(db, 'fail-a', 'next', { worker: 'w' });
      expect(await markTrialFailed(db, 'fail-a', 1, 'out of memory')).toEqual({ applied: true, currentAttempt: 1, status: 'failed' });
      expect(await getTrial(db, 'fail-a')).toMatchObject({ status: 'failed', error: 'out of memory' });
      expect(await pendingTrialKeys(db, 'fail')).toEqual(['fail-a']);
      expect(await studyProgress(db, 'fail')).toEqual({ study_id: 'fail', trials: 1, pending: 0, running: 0, done: 0, failed: 1, diverged: 0 });
      expect(await claimTrialAttempt(db, 'fail-a', 'next', { worker: 'w2' })).toEqual({ claimed: true, attempt: 2 });
      expect(await getTrial(db, 'fail-a')).toMatchObject({ status: 'running', error: null, finishedAt: null });
      await recordResult(db, 'fail-a', 2, result({ diverged: true, testAcc: 0.1 }));
      expect(await pendingTrialKeys(db, 'fail')).toEqual([]);
      expect(await studyProgress(db, 'fail')).toMatchObject({ done: 1, failed: 0, diverged: 1 });
    });

    it('registers spliced seeds: the server builds each spec and key as src/spec/keys.ts does, in plan order, once', async () => {
      await upsertStudy(db, { id: 'splice', spec: {} });
      const template = cmnistSpec({ lr: 0.003, algorithm: 'guided', alpha: 0.1, q: 5, subset: { train: 500 } });
      const { seed: _seed, ...columns } = conditionOf(template);
      const splice = seedSplice(template)!;
      const whole = cmnistSpec({ seed: 9, lr: 0.5 });
      const { seed: wholeSeed, ...wholeColumns } = conditionOf(whole);
      const groups = [
        { label: 'a', columns, splice: { ...splice, seeds: [12, 3, 40_000_000, 3] } },
        { label: 'b', columns: wholeColumns, trials: [{ trialKey: trialKey(whole), specJson: canonicalJson(whole), seed: wholeSeed }] },
        { label: 'a', columns, splice: { ...splice, seeds: [7] } },
      ];
      expect(await registerTrialBatch(db, 'splice', groups)).toEqual({ newTrials: 5, newMemberships: 5 });
      expect(await registerTrialBatch(db, 'splice', groups)).toEqual({ newTrials: 0, newMemberships: 0 });
      const stored = await rows<{ trial_key: string; label: string; spec: unknown; seed: number; lr: number; alpha: number }>(
        db,
        sql`select st.trial_key, st.label, t.spec, t.seed, t.lr, t.alpha from study_trials st join trials t using (trial_key)
            where st.study_id = 'splice' order by st.position`,
      );
      // Keys from the TypeScript definition (parse, canonical JSON, sha256), independent of the SQL that made them.
      const expected = [
        { seed: 12, label: 'a', spec: { ...template, seed: 12 } },
        { seed: 3, label: 'a', spec: { ...template, seed: 3 } },
        { seed: 40_000_000, label: 'a', spec: { ...template, seed: 40_000_000 } },
        { seed: 9, label: 'b', spec: whole },
        { seed: 7, label: 'a', spec: { ...template, seed: 7 } },
      ];
      expect(stored.map((r) => ({ trial_key: r.trial_key, label: r.label, seed: r.seed }))).toEqual(
        expected.map((e) => ({ trial_key: trialKey(e.spec), label: e.label, seed: e.seed })),
      );
      for (const [i, r] of stored.entries()) expect(r.spec).toEqual(JSON.parse(canonicalJson(expected[i].spec)));
      expect(stored[0]).toMatchObject({ lr: 0.003, alpha: 0.1 });
      expect(await studyProgress(db, 'splice')).toMatchObject({ trials: 5, pending: 5 });
    });

    it('keeps study_progress equal to a recount of the memberships through shared trials, repeats, state changes and deletions', async () => {
      await upsertStudy(db, { id: 'cnt-a', spec: {} });
      await upsertStudy(db, { id: 'cnt-b', spec: {} });
      const k = (seed: number) => ({ trialKey: `cnt-${seed}`, spec: cmnistSpec({ seed: 500 + seed }) });
      // A key repeated in one call counts once; registering again changes nothing.
      expect(await registerTrials(db, 'cnt-a', [k(1), k(3), k(2), k(1)])).toEqual({ newTrials: 3, newMemberships: 3 });
      expect(await registerTrials(db, 'cnt-a', [k(1), k(3), k(2)])).toEqual({ newTrials: 0, newMemberships: 0 });
      expect(await pendingTrialKeys(db, 'cnt-a')).toEqual(['cnt-1', 'cnt-3', 'cnt-2']);
      // cnt-2 is shared with a second study, and is running there already when cnt-b joins.
      await claimTrialAttempt(db, 'cnt-2', 'next', { worker: 'w' });
      await registerTrials(db, 'cnt-b', [k(2), k(4)]);
      expect(await studyProgress(db, 'cnt-b')).toEqual({ study_id: 'cnt-b', trials: 2, pending: 1, running: 1, done: 0, failed: 0, diverged: 0 });
      await recordResult(db, 'cnt-2', 1, result({ diverged: true, testAcc: 0.1 }));
      await claimTrialAttempt(db, 'cnt-3', 'next', { worker: 'w' });
      await markTrialFailed(db, 'cnt-3', 1, 'boom');
      expect(await studyProgress(db, 'cnt-a')).toEqual({ study_id: 'cnt-a', trials: 3, pending: 1, running: 0, done: 1, failed: 1, diverged: 1 });
      // Changes made by hand in SQL are counted too: a multi-row state change, a removed membership, a deleted trial.
      await db.execute(sql`update trials set status = 'pending' where status = 'failed' and trial_key like 'cnt-%'`);
      await db.execute(sql`delete from study_trials where study_id = 'cnt-b' and trial_key = 'cnt-4'`);
      await db.execute(sql`delete from trials where trial_key = 'cnt-1'`);
      // By hand: cnt-a holds cnt-2 (done, diverged) and cnt-3 (pending again); cnt-b holds cnt-2.
      expect(await studyProgress(db, 'cnt-a')).toEqual({ study_id: 'cnt-a', trials: 2, pending: 1, running: 0, done: 1, failed: 0, diverged: 1 });
      expect(await studyProgress(db, 'cnt-b')).toEqual({ study_id: 'cnt-b', trials: 1, pending: 0, running: 0, done: 1, failed: 0, diverged: 1 });
      // Every study of this database so far (the tests above included) agrees with a full recount.
      const recount = await rows(
        db,
        sql`select st.study_id, count(*)::int as trials, (count(*) filter (where t.status = 'pending'))::int as pending,
                   (count(*) filter (where t.status = 'running'))::int as running, (count(*) filter (where t.status = 'done'))::int as done,
                   (count(*) filter (where t.status = 'failed'))::int as failed, (count(*) filter (where r.diverged))::int as diverged
            from study_trials st join trials t on t.trial_key = st.trial_key left join results r on r.trial_key = st.trial_key
            group by st.study_id order by st.study_id`,
      );
      expect(recount.length).toBeGreaterThan(5);
      const counted = await rows(db, sql`select * from study_progress where trials > 0 order by study_id`);
      expect(counted).toEqual(recount);
    });

    it('stores checkpoints in chunks, verifies their checksum and keeps the latest ones', async () => {
      await upsertStudy(db, { id: 'ckpt', spec: {} });
      await registerTrials(db, 'ckpt', [{ trialKey: 'ckpt-a', spec: cmnistSpec({ seed: 41 }) }]);
      expect(await loadLatestCheckpoint(db, 'ckpt-a')).toBeNull();
      await claimTrialAttempt(db, 'ckpt-a', 1, { worker: 'w' });
      const bytesOf = (epoch: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + epoch * 7) & 0xff);
      for (const epoch of [1, 2, 3]) {
        expect((await saveCheckpoint(db, 'ckpt-a', 1, epoch, bytesOf(epoch, 10_000 + epoch), { chunkBytes: 1024, keep: 2 })).applied).toBe(true);
      }
      const headers = await rows<{ epoch: number; chunk_count: number; byte_size: number }>(
        db,
        sql`select epoch, chunk_count, byte_size::int as byte_size from checkpoints where trial_key = 'ckpt-a' order by epoch`,
      );
      expect(headers).toEqual([
        { epoch: 2, chunk_count: 10, byte_size: 10_002 },
        { epoch: 3, chunk_count: 10, byte_size: 10_003 },
      ]);
      const chunks = await rows<{ n: number }>(db, sql`select count(*)::int as n from checkpoint_chunks where trial_key = 'ckpt-a'`);
      expect(chunks[0].n).toBe(20);
      const latest = await loadLatestCheckpoint(db, 'ckpt-a');
      expect(latest!.epoch).toBe(3);
      expect(latest!.attempt).toBe(1);
      expect(Buffer.from(latest!.bytes).equals(Buffer.from(bytesOf(3, 10_003)))).toBe(true);

      // Rewriting an epoch (a retried save) replaces it whole.
      await saveCheckpoint(db, 'ckpt-a', 1, 3, bytesOf(30, 5), { chunkBytes: 1024 });
      expect(Array.from((await loadLatestCheckpoint(db, 'ckpt-a'))!.bytes)).toEqual(Array.from(bytesOf(30, 5)));

      // Corruption is detected, not handed to the trainer.
      await db.execute(sql`update checkpoint_chunks set data = decode('00', 'hex') where trial_key = 'ckpt-a' and epoch = 3 and chunk_index = 0`);
      await expect(loadLatestCheckpoint(db, 'ckpt-a')).rejects.toThrow(CheckpointIntegrityError);
    });

    describe('views', () => {
      // Hand-made data with hand-computed aggregates.
      // vanilla lr 0.01: test_acc 0.90, 0.92, 0.97 → mean 0.93, sample std √((0.03²+0.01²+0.04²)/2) = √0.0013
      //   d_util 0.1, −0.2, null → mean −0.05, std √((0.15²+0.15²)/1) = 0.15·√2
      //   d_speed 0.3, 0.5, 0.7 → mean 0.5, std 0.2;  R(f) 0.1, 0.2, 0.6 → mean 0.3, std √0.07;  diverged 1 of 3
      //   A(f) (acc_f, regular mode; test_acc stands for the code profile's current-mode figure) 0.8, 0.86, 0.92
      //   → mean 0.86, std √((0.06² + 0 + 0.06²)/2) = 0.06
      // guided lr 0.01 α 0.1 Q 5: one trial, test_acc 0.5, acc_f 0.45 → std null.
      beforeAll(async () => {
        await upsertStudy(db, { id: 'views', spec: {} });
        await upsertStudy(db, { id: 'views-other', spec: {} });
        const v = (seed: number) => ({ trialKey: `views-v${seed}`, spec: cmnistSpec({ seed: 100 + seed }) });
        const g = { trialKey: 'views-g', spec: cmnistSpec({ seed: 200, algorithm: 'guided', alpha: 0.1, q: 5 }) };
        const pending = { trialKey: 'views-pending', spec: cmnistSpec({ seed: 300 }) };
        await registerTrials(db, 'views', [v(1), v(2), v(3), g, pending]);
        await registerTrials(db, 'views-other', [{ trialKey: 'views-elsewhere', spec: cmnistSpec({ seed: 400 }) }]);
        const finish = async (key: string, r: Partial<TrialResultInput>) => {
          await claimTrialAttempt(db, key, 'next', { worker: 'w' });
          expect((await recordResult(db, key, 1, result(r))).applied).toBe(true);
        };
        await finish('views-v1', { testAcc: 0.9, accF: 0.8, dUtil: 0.1, dSpeed: 0.3, rF: 0.1, diverged: false });
        await finish('views-v2', { testAcc: 0.92, accF: 0.86, dUtil: -0.2, dSpeed: 0.5, rF: 0.2, diverged: false });
        await finish('views-v3', { testAcc: 0.97, accF: 0.92, dUtil: null, dSpeed: 0.7, rF: 0.6, diverged: true });
        await finish('views-g', { testAcc: 0.5, accF: 0.45, dUtil: 0.4, dSpeed: -0.1, rF: 0, diverged: false });
        await finish('views-elsewhere', { testAcc: 0.1 });
      });

      it('condition_summary gives exact means and sample stds per condition', async () => {
        const summary = await studySummary(db, 'views');
        expect(summary).toHaveLength(2);
        const [guided, vanilla] = summary;
        expect(guided).toMatchObject({ study_id: 'views', algorithm: 'guided', alpha: 0.1, q: 5, n: 1, test_acc_std: null, d_util_std: null });
        expect(guided.test_acc_mean).toBeCloseTo(0.5, 12);
        expect(guided.diverged_fraction).toBe(0);
        expect(vanilla).toMatchObject({
          study_id: 'views', dataset: 'cmnist', dataset_variant: '', architecture: 'mmtm', modalities: 'distinct',
          algorithm: 'vanilla', profile: 'paper', lr: 0.01, l1: 0, alpha: null, q: null, n: 3,
        });
        expect(vanilla.test_acc_mean).toBeCloseTo(0.93, 12);
        expect(vanilla.test_acc_std).toBeCloseTo(Math.sqrt(0.0013), 12);
        expect(vanilla.acc_f_mean).toBeCloseTo(0.86, 12);
        expect(vanilla.acc_f_std).toBeCloseTo(0.06, 12);
        expect(guided.acc_f_mean).toBeCloseTo(0.45, 12);
        expect(guided.acc_f_std).toBeNull();
        expect(vanilla.d_util_mean).toBeCloseTo(-0.05, 12);
        expect(vanilla.d_util_std).toBeCloseTo(0.15 * Math.SQRT2, 12);
        expect(vanilla.d_speed_mean).toBeCloseTo(0.5, 12);
        expect(vanilla.d_speed_std).toBeCloseTo(0.2, 12);
        expect(vanilla.r_f_mean).toBeCloseTo(0.3, 12);
        expect(vanilla.r_f_std).toBeCloseTo(Math.sqrt(0.07), 12);
        expect(vanilla.diverged_fraction).toBeCloseTo(1 / 3, 12);
        for (const row of summary) for (const key of ['n', 'test_acc_mean', 'diverged_fraction'] as const) expect(typeof row[key]).toBe('number');
      });

      it('studySummary with a custom grouping matches the view and aggregates coarser groups', async () => {
        const viaView = await studySummary(db, 'views');
        const viaText = await studySummary(db, 'views', [...conditionColumns]);
        expect(viaText).toEqual(viaView.map(({ study_id: _omit, ...rest }) => rest));
        const all = await studySummary(db, 'views', []);
        expect(all).toHaveLength(1);
        expect(all[0].n).toBe(4);
        expect(all[0].test_acc_mean).toBeCloseTo((0.9 + 0.92 + 0.97 + 0.5) / 4, 12);
        expect(all[0].d_util_mean).toBeCloseTo((0.1 - 0.2 + 0.4) / 3, 12);
        const byAlgorithm = await studySummary(db, 'views', ['algorithm']);
        expect(byAlgorithm.map((r) => [r.algorithm, r.n])).toEqual([['guided', 1], ['vanilla', 3]]);
        await expect(studySummary(db, 'views', ['seed' as never])).rejects.toThrow(/cannot group by "seed"/);
      });

      it('trial_outcomes lists finished trials of the study only, histogram-ready', async () => {
        const outcomes = await trialOutcomes(db, 'views');
        expect(outcomes.map((o) => [o.trial_key, o.position, o.d_util, o.abs_d_util, o.diverged])).toEqual([
          ['views-v1', 0, 0.1, 0.1, false],
          ['views-v2', 1, -0.2, 0.2, false],
          ['views-v3', 2, null, null, true],
          ['views-g', 3, 0.4, 0.4, false],
        ]);
        expect(outcomes[0].started_at).toBeInstanceOf(Date);
        expect(outcomes[0].seed).toBe(101);
      });

      it('exports the per-trial outcomes as CSV and Parquet', async () => {
        const csv = new TextDecoder().decode(await exportStudy(db, 'views', 'csv')).trim().split('\n');
        expect(csv).toHaveLength(5);
        const header = csv[0].split(',');
        const line = csv[2].split(',');
        expect(line[header.indexOf('trial_key')]).toBe('views-v2');
        expect(line[header.indexOf('d_util')]).toBe('-0.2');
        const parquet = await exportStudy(db, 'views', 'parquet');
        const file = parquet.buffer.slice(parquet.byteOffset, parquet.byteOffset + parquet.byteLength) as ArrayBuffer;
        const back = (await parquetReadObjects({ file })) as Record<string, unknown>[];
        expect(back.map((r) => [r.trial_key, r.test_acc, r.d_util, r.q, r.diverged])).toEqual([
          ['views-v1', 0.9, 0.1, null, false],
          ['views-v2', 0.92, -0.2, null, false],
          ['views-v3', 0.97, null, null, true],
          ['views-g', 0.5, 0.4, 5, false],
        ]);
      });
    });

    describe('read-only queries', () => {
      it('returns rows and column names', async () => {
        const out = await runReadOnlyQuery(db, `select id, 2::int as two from studies where id = 'views'`);
        expect(out.columns).toEqual(['id', 'two']);
        expect(out.rows.map((r) => ({ ...r }))).toEqual([{ id: 'views', two: 2 }]);
      });

      it.each([
        ['an INSERT', `insert into studies (id, name, spec) values ('evil', 'evil', '{}')`],
        ['an UPDATE', `update trials set status = 'failed'`],
        ['a DELETE', `delete from results`],
        ['a SELECT … FOR UPDATE', `select * from trials for update`],
        ['a side-effect function (nextval)', `select nextval('drizzle.__drizzle_migrations_id_seq')`],
        ['a session advisory lock', `select pg_advisory_lock(42)`],
        ['CREATE TABLE', `create table evil (x int)`],
      ])('refuses %s with a clear message', async (_what, query) => {
        const err = await runReadOnlyQuery(db, query).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ReadOnlyViolationError);
        expect((err as Error).message).toMatch(/^refused: mmsweep sql runs queries read-only/);
        // Nothing changed and no lock is left behind.
        const check = await rows<{ evil: number; locks: number; failed: number }>(
          db,
          sql`select (select count(*)::int from studies where id = 'evil') as evil,
                     (select count(*)::int from pg_locks where locktype = 'advisory'
                        and database = (select oid from pg_database where datname = current_database())) as locks,
                     (select count(*)::int from trials where status = 'failed') as failed`,
        );
        expect(check[0]).toEqual({ evil: 0, locks: 0, failed: 0 });
      });

      it('refuses anything but one query, so a COMMIT cannot end the read-only transaction', async () => {
        await expect(runReadOnlyQuery(db, `commit; delete from results`)).rejects.toThrow(/starts with COMMIT/);
        await expect(runReadOnlyQuery(db, `set transaction read write`)).rejects.toThrow(ReadOnlyViolationError);
        // A second statement smuggled behind the query still runs as the read-only role, in the read-only transaction.
        await expect(runReadOnlyQuery(db, `select 1) q; delete from results; select (1`)).rejects.toThrow(/does not return tuples/);
        const n = await rows<{ n: number }>(db, sql`select count(*)::int as n from results`);
        expect(n[0].n).toBeGreaterThan(0);
      });

      it.skipIf(target.name !== 'server')('cancels a query that runs past the statement timeout', async () => {
        await expect(runReadOnlyQuery(db, 'select pg_sleep(5)', { timeoutMs: 200 })).rejects.toThrow(/statement timeout/);
      });
    });
  });
}

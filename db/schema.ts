import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  customType,
  doublePrecision,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';

/**
 * The results store. Column names are snake_case so that psql users read them as they are; the TypeScript
 * names are camelCase. Migrations under db/migrations are generated from this file by `npm run db:generate`
 * (views live in a hand-written migration: see db/migrations/*_views.sql).
 */

/** bytea as Uint8Array on both drivers (postgres.js hands back a Buffer, which is a Uint8Array). */
const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  toDriver: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)),
});

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const studyStatuses = ['running', 'paused', 'done', 'failed', 'cancelled'] as const;
export type StudyStatus = (typeof studyStatuses)[number];

export const trialStatuses = ['pending', 'running', 'done', 'failed'] as const;
export type TrialStatus = (typeof trialStatuses)[number];

const inList = (values: readonly string[]) => sql.raw(values.map((v) => `'${v}'`).join(', '));

export const studies = pgTable(
  'studies',
  {
    /** The study's name as the user and the workflow id know it. */
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    preset: text('preset'),
    spec: jsonb('spec').notNull(),
    status: text('status').$type<StudyStatus>().notNull().default('running'),
    codeVersion: text('code_version'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    finishedAt: timestamptz('finished_at'),
    /** The study_specs document the study currently runs (its extensions applied). */
    specSha256: text('spec_sha256'),
    /** The study_specs document whose trials are all registered (equal to spec_sha256 once registration ends). */
    registeredSha256: text('registered_sha256'),
  },
  (t) => [check('studies_status_check', sql`${t.status} in (${inList(studyStatuses)})`)],
);

/**
 * StudySpecs as stored documents, named by the sha256 of their canonical JSON: a study with large axes (10⁶
 * seeds) travels to the workflow as this name, never inline (Temporal caps a payload at 2 MB). Immutable.
 */
export const studySpecs = pgTable('study_specs', {
  sha256: text('sha256').primaryKey(),
  /** The canonical JSON whose sha256 is the key (text, not jsonb: the exact bytes that were hashed). */
  document: text('document').notNull(),
  createdAt: timestamptz('created_at').notNull().defaultNow(),
});

/**
 * One row per distinct trial. The key is a hash of the TrialSpec alone, so a trial shared by two studies is
 * trained once; `study_trials` records membership. The condition columns are derived from `spec` on
 * registration (db/conditions.ts) so that SQL can group by them.
 */
export const trials = pgTable(
  'trials',
  {
    trialKey: text('trial_key').primaryKey(),
    spec: jsonb('spec').notNull(),
    kind: text('kind').notNull(),
    dataset: text('dataset').notNull(),
    datasetVariant: text('dataset_variant').notNull().default(''),
    architecture: text('architecture').notNull(),
    modalities: text('modalities'),
    algorithm: text('algorithm'),
    profile: text('profile'),
    lr: doublePrecision('lr'),
    seed: integer('seed'),
    /** λ of the L1 penalty (0 = none). */
    l1: doublePrecision('l1'),
    /** Guided only (null for the other algorithms, which ignore it). */
    alpha: doublePrecision('alpha'),
    q: integer('q'),
    status: text('status').$type<TrialStatus>().notNull().default('pending'),
    /** Fencing token: the attempt that currently owns the trial. 0 = never claimed. */
    attempt: integer('attempt').notNull().default(0),
    worker: text('worker'),
    backend: text('backend'),
    device: text('device'),
    startedAt: timestamptz('started_at'),
    finishedAt: timestamptz('finished_at'),
    error: text('error'),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    check('trials_status_check', sql`${t.status} in (${inList(trialStatuses)})`),
    // Only trials that left 'pending': a registration of 10⁶ new (pending) trials adds no entry here, and what reads
    // trials by state asks for running, done or failed ones (the UI, the report, retry-failed).
    index('trials_status_idx').on(t.status).where(sql`${t.status} <> 'pending'`),
    index('trials_condition_idx').on(
      t.dataset,
      t.datasetVariant,
      t.architecture,
      t.modalities,
      t.algorithm,
      t.profile,
      t.lr,
      t.l1,
      t.alpha,
      t.q,
    ),
  ],
);

/**
 * Membership. Its references to `studies` and `trials` are kept by statement-level triggers, not foreign keys
 * (db/migrations/0008_i15_registration_refs.sql): a foreign key checks every inserted row with a query of its own,
 * which was a third of a registration's time (issue 15). The triggers check each inserting statement's rows at
 * once and delete the memberships of deleted studies and trials (the cascade the foreign keys did).
 */
export const studyTrials = pgTable(
  'study_trials',
  {
    studyId: text('study_id').notNull(),
    trialKey: text('trial_key').notNull(),
    /** Order of the trial in the study's plan (pending trials are handed out in this order). */
    position: integer('position').notNull(),
    /** The study's name for the trial's condition, e.g. "vanilla lr=0.01" (free text from the planner). */
    label: text('label'),
  },
  (t) => [
    // trial_key first: the key serves lookups by trial alone (the counts triggers, cascades), so no second index
    // on trial_key has to be maintained on every registration (issue 15: three random-key indexes per trial → two).
    primaryKey({ name: 'study_trials_pk', columns: [t.trialKey, t.studyId] }),
    index('study_trials_position_idx').on(t.studyId, t.position),
  ],
);


/**
 * How many of a study's trials are in each state, so that `study_progress` answers in O(1) on a study of 10⁶
 * trials instead of joining every membership. New memberships are counted by the statement that inserts them
 * (db/registration.ts, insertTrialBatch); state changes and deletions by triggers
 * (db/migrations/0006_i15_scale_study_counts.sql).
 */
export const studyCounts = pgTable('study_counts', {
  studyId: text('study_id')
    .primaryKey()
    .references(() => studies.id, { onDelete: 'cascade' }),
  trials: integer('trials').notNull().default(0),
  pending: integer('pending').notNull().default(0),
  running: integer('running').notNull().default(0),
  done: integer('done').notNull().default(0),
  failed: integer('failed').notNull().default(0),
});

/** Per-split accuracies of the branches ŷ0…ŷ(M−1) of one epoch (`epochs.branch_acc`). */
export interface BranchAccuracies {
  train: (number | null)[];
  val: (number | null)[];
  test: (number | null)[];
}

export const epochs = pgTable(
  'epochs',
  {
    trialKey: text('trial_key')
      .notNull()
      .references(() => trials.trialKey, { onDelete: 'cascade' }),
    epoch: integer('epoch').notNull(),
    /** The attempt that wrote this row. */
    attempt: integer('attempt').notNull(),
    trainAcc: doublePrecision('train_acc'),
    trainAcc0: doublePrecision('train_acc_0'),
    trainAcc1: doublePrecision('train_acc_1'),
    valAcc: doublePrecision('val_acc'),
    valAcc0: doublePrecision('val_acc_0'),
    valAcc1: doublePrecision('val_acc_1'),
    testAcc: doublePrecision('test_acc'),
    testAcc0: doublePrecision('test_acc_0'),
    testAcc1: doublePrecision('test_acc_1'),
    loss: doublePrecision('loss'),
    lr: doublePrecision('lr'),
    /** Cumulative d_speed(f; t) at the end of the epoch. */
    dSpeed: doublePrecision('d_speed'),
    regularSteps: integer('regular_steps'),
    rebalanceSteps: integer('rebalance_steps'),
    wallSeconds: doublePrecision('wall_seconds'),
    /**
     * Accuracy (percent) of every branch's ŷk, index = modality, on each split: only for nets with more than
     * two modalities (three-view ModelNet40), whose third branch the *_acc_0/*_acc_1 columns cannot hold; NULL
     * otherwise. Non-finite entries are stored as JSON null, like the NULLs of the numeric columns.
     */
    branchAcc: jsonb('branch_acc').$type<BranchAccuracies>(),
    recordedAt: timestamptz('recorded_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'epochs_pk', columns: [t.trialKey, t.epoch] })],
);

export const results = pgTable('results', {
  trialKey: text('trial_key')
    .primaryKey()
    .references(() => trials.trialKey, { onDelete: 'cascade' }),
  attempt: integer('attempt').notNull(),
  /** Test accuracy of ŷ at the best-validation checkpoint (Table 1). */
  testAcc: doublePrecision('test_acc'),
  /** A(f): test accuracy of ŷ from the clean re-evaluation used for utilization. */
  accF: doublePrecision('acc_f'),
  accF0: doublePrecision('acc_f0'),
  accF1: doublePrecision('acc_f1'),
  accF0Prime: doublePrecision('acc_f0_prime'),
  accF1Prime: doublePrecision('acc_f1_prime'),
  uM1GivenM0: doublePrecision('u_m1_given_m0'),
  uM0GivenM1: doublePrecision('u_m0_given_m1'),
  dUtil: doublePrecision('d_util'),
  dSpeed: doublePrecision('d_speed'),
  /** R(f): fraction of trainable scalars with |θ| < 1e-7. */
  rF: doublePrecision('r_f'),
  bestEpoch: integer('best_epoch'),
  stepsT: integer('steps_t'),
  epochs: integer('epochs'),
  diverged: boolean('diverged').notNull().default(false),
  /** The whole TrialResult as the runner reported it (fields this table has no column for live here). */
  raw: jsonb('raw'),
  recordedAt: timestamptz('recorded_at').notNull().defaultNow(),
}, (t) => [
  // The few diverged results, so `study_progress` counts a study's diverged trials without reading its others.
  index('results_diverged_idx').on(t.trialKey).where(sql`${t.diverged}`),
]);

/** A checkpoint's header; its bytes are in `checkpoint_chunks`, written in the same transaction. */
export const checkpoints = pgTable(
  'checkpoints',
  {
    trialKey: text('trial_key')
      .notNull()
      .references(() => trials.trialKey, { onDelete: 'cascade' }),
    epoch: integer('epoch').notNull(),
    attempt: integer('attempt').notNull(),
    byteSize: bigint('byte_size', { mode: 'number' }).notNull(),
    chunkCount: integer('chunk_count').notNull(),
    sha256: text('sha256').notNull(),
    createdAt: timestamptz('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'checkpoints_pk', columns: [t.trialKey, t.epoch] })],
);

export const checkpointChunks = pgTable(
  'checkpoint_chunks',
  {
    trialKey: text('trial_key').notNull(),
    epoch: integer('epoch').notNull(),
    chunkIndex: integer('chunk_index').notNull(),
    data: bytea('data').notNull(),
  },
  (t) => [
    primaryKey({ name: 'checkpoint_chunks_pk', columns: [t.trialKey, t.epoch, t.chunkIndex] }),
    foreignKey({
      name: 'checkpoint_chunks_checkpoint_fk',
      columns: [t.trialKey, t.epoch],
      foreignColumns: [checkpoints.trialKey, checkpoints.epoch],
    }).onDelete('cascade'),
  ],
);

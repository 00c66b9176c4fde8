import { createHash } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import { rowsOf, type Db } from './client.ts';
import type { TemplateConditionColumns } from './conditions.ts';
import { studies, studySpecs } from './schema.ts';
import { UnknownStudyError } from './errors.ts';

/**
 * Studies of any size: StudySpecs stored as hashed documents, trials registered in batches (one statement per
 * batch from a few array parameters, so a batch costs two statements whatever its length), and pending
 * trials handed out in pages after a position cursor. Nothing here holds a whole study in memory.
 */

// ------------------------------------------------------------------------------------------ spec documents

export class SpecDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpecDocumentError';
  }
}

/** Store a canonical JSON document under its sha256 (idempotent); returns the name. */
export async function saveSpecDocument(db: Db, canonical: string): Promise<string> {
  const sha256 = createHash('sha256').update(canonical).digest('hex');
  await db.insert(studySpecs).values({ sha256, document: canonical }).onConflictDoNothing();
  return sha256;
}

/** The document stored under `sha256`, checked against its name; null when there is none. */
export async function loadSpecDocument(db: Db, sha256: string): Promise<string | null> {
  const rows = await db.select({ document: studySpecs.document }).from(studySpecs).where(eq(studySpecs.sha256, sha256));
  if (rows.length === 0) return null;
  const actual = createHash('sha256').update(rows[0].document).digest('hex');
  if (actual !== sha256) throw new SpecDocumentError(`study spec document ${sha256} is corrupt: its content hashes to ${actual}`);
  return rows[0].document;
}

/** Which spec document the study runs, and which one has all its trials registered. */
export async function studySpecState(db: Db, studyId: string): Promise<{ specSha256: string | null; registeredSha256: string | null } | null> {
  const rows = await db
    .select({ specSha256: studies.specSha256, registeredSha256: studies.registeredSha256 })
    .from(studies)
    .where(eq(studies.id, studyId));
  return rows[0] ?? null;
}

/** Record the study's current spec document; with `registered`, also that all its trials are in the store. */
export async function setStudySpecState(db: Db, studyId: string, specSha256: string, registered: boolean): Promise<void> {
  const updated = await db
    .update(studies)
    .set({ specSha256, ...(registered ? { registeredSha256: specSha256 } : {}) })
    .where(eq(studies.id, studyId))
    .returning({ id: studies.id });
  if (updated.length === 0) throw new UnknownStudyError(studyId);
}

// ------------------------------------------------------------------------------------------- registration

/**
 * Trials of one condition (one grid point and label) in plan order: spliced ones, whose canonical spec JSON is
 * `${head}${seed}${tail}` (src/spec/keys.ts, seedSplice) and whose trial key is the sha256 of that, both made by
 * the server; and trials given whole, with their key and spec. A study's registration sends seeds only.
 */
export interface BatchGroup {
  label: string | null;
  /** The condition columns but the seed. */
  columns: TemplateConditionColumns;
  splice?: { head: string; tail: string; seeds: readonly number[] };
  trials?: readonly { trialKey: string; specJson: string; seed: number | null }[];
}

/** Trials in a batch. */
export function batchSize(batch: readonly BatchGroup[]): number {
  let n = 0;
  for (const g of batch) n += (g.splice?.seeds.length ?? 0) + (g.trials?.length ?? 0);
  return n;
}

/** A Postgres array literal of text elements (null → NULL): each quoted, with `"` and `\` escaped. */
function textArray(values: readonly (string | null)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    parts[i] = v === null ? 'NULL' : `"${v.includes('"') || v.includes('\\') ? v.replace(/["\\]/g, '\\$&') : v}"`;
  }
  return `{${parts.join(',')}}`;
}

/** A Postgres array literal of integers (null → NULL). */
function intArray(values: readonly (number | null)[]): string {
  return `{${values.map((v) => (v === null ? 'NULL' : String(v))).join(',')}}`;
}

const GROUP_RECORD = `g int, label text, head text, tail text, kind text, dataset text, dataset_variant text, architecture text,
  modalities text, algorithm text, profile text, lr float8, l1 float8, alpha float8, q int`;

/**
 * The batch as statement parameters: per trial in plan order, its group, seed, and for trials given whole their
 * key and spec (NULL for spliced ones), each as one array; the groups (label, condition columns, splice) as a
 * small JSON table. Arrays parse about ten times faster than one JSON record per trial.
 */
function batchParameters(batch: readonly BatchGroup[]) {
  const groups: string[] = [];
  const groupOf: number[] = [];
  const seeds: (number | null)[] = [];
  const keys: (string | null)[] = [];
  const specs: (string | null)[] = [];
  batch.forEach((b, g) => {
    const k = b.columns;
    groups.push(
      JSON.stringify({
        g, label: b.label, head: b.splice?.head ?? null, tail: b.splice?.tail ?? null, kind: k.kind, dataset: k.dataset,
        dataset_variant: k.datasetVariant, architecture: k.architecture, modalities: k.modalities, algorithm: k.algorithm,
        profile: k.profile, lr: k.lr, l1: k.l1, alpha: k.alpha, q: k.q,
      }),
    );
    for (const seed of b.splice?.seeds ?? []) {
      groupOf.push(g);
      seeds.push(seed);
      keys.push(null);
      specs.push(null);
    }
    for (const t of b.trials ?? []) {
      groupOf.push(g);
      seeds.push(t.seed);
      keys.push(t.trialKey);
      specs.push(t.specJson);
    }
  });
  return { groups: `[${groups.join(',')}]`, groupOf: intArray(groupOf), seeds: intArray(seeds), keys: textArray(keys), specs: textArray(specs) };
}

/**
 * Insert a batch of trials (new keys only; known trials keep their state and results), append the ones that are
 * not yet members of the study after its last position, and add them to the study's counts (study_counts), in
 * one statement. Positions are the study's next free one plus the trial's index in the batch (plan order: group by
 * group, spliced seeds before whole trials), so they grow in plan order but may skip numbers (where a trial was
 * already a member, or repeats in the batch: its first place counts); the paging cursor only needs their order.
 * Rows go in in key order, so each index page a batch touches is visited once, and every uniqueness check is the
 * insert's own ON CONFLICT, not a second lookup.
 *
 * Counting: a trial this statement created is pending. A trial that existed is read FOR SHARE, so a concurrent
 * state change either commits first (its new state is counted here) or waits for this transaction (and its
 * trigger then sees the membership), and a concurrent delete waits too (the memberships' reference check,
 * db/migrations/0008, takes no locks of its own). Call it inside a transaction that holds the study row
 * (`lockStudy`), so positions never collide.
 */
export async function insertTrialBatch(tx: Db, studyId: string, batch: readonly BatchGroup[]): Promise<{ newTrials: number; newMemberships: number }> {
  if (batchSize(batch) === 0) return { newTrials: 0, newMemberships: 0 };
  const p = batchParameters(batch);
  const [row] = rowsOf<{ new_trials: number; new_members: number }>(
    await tx.execute(sql`
      with given as (
        select u.ord - 1 as ord, u.seed, g.label, g.kind, g.dataset, g.dataset_variant, g.architecture, g.modalities,
               g.algorithm, g.profile, g.lr, g.l1, g.alpha, g.q, coalesce(u.spec, g.head || u.seed || g.tail) as spec, u.trial_key
        from unnest(${p.groupOf}::text::int[], ${p.seeds}::text::int[], ${p.keys}::text::text[], ${p.specs}::text::text[])
               with ordinality as u(g, seed, trial_key, spec, ord)
        join json_to_recordset(${p.groups}::text::json) as g(${sql.raw(GROUP_RECORD)}) on g.g = u.g),
      -- A spliced trial's key: the sha256 (hex) of its canonical JSON, as src/spec/keys.ts computes every trial key.
      -- Rows in key order (bytewise: a cheap sort, and for hex keys the index's order), then plan order.
      x as materialized (
        select k.trial_key, t.ord, t.seed, t.spec, t.label, t.kind, t.dataset, t.dataset_variant, t.architecture, t.modalities,
               t.algorithm, t.profile, t.lr, t.l1, t.alpha, t.q
        from given t cross join lateral (select coalesce(t.trial_key, encode(sha256(convert_to(t.spec, 'UTF8')), 'hex')) as trial_key) k
        order by k.trial_key collate "C", t.ord),
      ins_t as (
        insert into trials (trial_key, spec, kind, dataset, dataset_variant, architecture, modalities, algorithm, profile, lr, seed, l1, alpha, q)
        select trial_key, spec::jsonb, kind, dataset, dataset_variant, architecture, modalities, algorithm, profile, lr, seed, l1, alpha, q from x
        on conflict do nothing
        returning trial_key),
      base as (select coalesce(max(position), -1) + 1 as next from study_trials where study_id = ${studyId}),
      ins_m as (
        insert into study_trials (study_id, trial_key, position, label)
        select ${studyId}, x.trial_key, (b.next + x.ord)::int, x.label from x cross join base b
        on conflict do nothing
        returning trial_key),
      states as (
        select case when m.trial_key in (select trial_key from ins_t) then 'pending'
                    else (select t.status from trials t where t.trial_key = m.trial_key for share) end as status
        from ins_m m),
      counted as (
        insert into study_counts as c (study_id, trials, pending, running, done, failed)
        select ${studyId}, count(*), count(*) filter (where status is null or status = 'pending'),
               count(*) filter (where status = 'running'), count(*) filter (where status = 'done'), count(*) filter (where status = 'failed')
        from states
        having count(*) > 0
        on conflict (study_id) do update set
          trials = c.trials + excluded.trials, pending = c.pending + excluded.pending, running = c.running + excluded.running,
          done = c.done + excluded.done, failed = c.failed + excluded.failed
        returning 1)
      select (select count(*) from ins_t)::int as new_trials, (select count(*) from ins_m)::int as new_members,
             (select count(*) from counted)::int as counted`),
  );
  return { newTrials: Number(row.new_trials), newMemberships: Number(row.new_members) };
}

/** Lock the study's row for the rest of the transaction (registrations of one study then take turns). */
export async function lockStudy(tx: Db, studyId: string): Promise<void> {
  const found = await tx.select({ id: studies.id }).from(studies).where(eq(studies.id, studyId)).for('update');
  if (found.length === 0) throw new UnknownStudyError(studyId);
}

/** One batch in its own transaction: what streaming registration commits at a time. */
export async function registerTrialBatch(db: Db, studyId: string, batch: readonly BatchGroup[]): Promise<{ newTrials: number; newMemberships: number }> {
  return db.transaction(async (tx) => {
    await lockStudy(tx as unknown as Db, studyId);
    return insertTrialBatch(tx as unknown as Db, studyId, batch);
  });
}

// ------------------------------------------------------------------------------------------------ paging

export interface PendingTrial {
  key: string;
  position: number;
}

/**
 * The next `limit` trials of the study after `afterPosition` (plan order) that still need a run: pending, or
 * running in a run that did not finish them. Done and failed trials are skipped (retry-failed sets failed ones
 * back to pending and starts again from the beginning). Reads through the (study_id, position) index, so a page
 * costs the same on a study of 10⁶ trials as on one of ten.
 */
export async function nextPendingTrials(db: Db, studyId: string, afterPosition: number, limit: number): Promise<PendingTrial[]> {
  const rows = rowsOf<{ key: string; position: number }>(
    await db.execute(sql`
      select st.trial_key as key, st.position
      from study_trials st join trials t on t.trial_key = st.trial_key
      where st.study_id = ${studyId} and st.position > ${afterPosition} and t.status in ('pending', 'running')
      order by st.position
      limit ${limit}`),
  );
  return rows.map((r) => ({ key: r.key, position: Number(r.position) }));
}

import { and, eq, inArray, sql } from 'drizzle-orm';
import * as db from '../db/index.ts';
import type { TrialResult } from '../src/spec/contracts.ts';
import type { TrialSpec } from '../src/spec/trial.ts';
import { SupersededAttemptError, type ResultsStore, type TrialState } from './store.ts';

const { trials, studyTrials } = db.schema;

function fenced(key: string, attempt: number, outcome: db.WriteOutcome): void {
  if (!outcome.applied && outcome.currentAttempt !== attempt) throw new SupersededAttemptError(key, attempt, outcome.currentAttempt);
}

/** The results store of db/ as the activities' ResultsStore; `location` names it in messages (password masked). */
export function dbResultsStore(handle: db.Db, location?: string): ResultsStore {
  // A grid point's condition columns are the same for all its seeds: derived once per template object.
  const templateColumns = new WeakMap<TrialSpec, db.TemplateConditionColumns>();
  const columnsOf = (template: TrialSpec): db.TemplateConditionColumns => {
    let columns = templateColumns.get(template);
    if (!columns) {
      const { seed: _seed, ...rest } = db.conditionOf(template);
      templateColumns.set(template, (columns = rest));
    }
    return columns;
  };
  return {
    location,
    async upsertStudy(study) {
      await db.upsertStudy(handle, { id: study.id, name: study.name, preset: study.preset ?? null, spec: study.spec });
    },
    async registerTrials(studyId, list) {
      await db.registerTrials(handle, studyId, list.map((t) => ({ trialKey: t.key, spec: t.spec, label: t.label })));
    },
    saveSpecDocument: (canonical) => db.saveSpecDocument(handle, canonical),
    loadSpecDocument: (sha256) => db.loadSpecDocument(handle, sha256),
    studySpecState: (studyId) => db.studySpecState(handle, studyId),
    setStudySpecState: (studyId, sha256, registered) => db.setStudySpecState(handle, studyId, sha256, registered),
    async registerTrialBatch(studyId, groups) {
      await db.registerTrialBatch(
        handle,
        studyId,
        groups.map((g) => ({
          label: g.label,
          columns: columnsOf(g.template),
          splice: g.splice,
          trials: g.trials?.map((t) => ({ trialKey: t.key, specJson: t.canonical, seed: t.seed })),
        })),
      );
    },
    nextPendingTrials: (studyId, afterPosition, limit) => db.nextPendingTrials(handle, studyId, afterPosition, limit),
    async trialStates(studyId) {
      const rows = await handle
        .select({ key: trials.trialKey, state: trials.status })
        .from(studyTrials)
        .innerJoin(trials, eq(trials.trialKey, studyTrials.trialKey))
        .where(eq(studyTrials.studyId, studyId))
        .orderBy(studyTrials.position);
      return rows.map((r) => ({ key: r.key, state: r.state as TrialState }));
    },
    async beginTrialAttempt(key, worker) {
      const outcome = await db.beginTrialAttempt(handle, key, worker);
      if (!outcome) return null;
      return outcome.claimed
        ? { state: 'claimed', attempt: outcome.attempt, spec: outcome.spec as TrialSpec, recordedEpoch: outcome.recordedEpoch }
        : { state: 'done', attempt: outcome.attempt };
    },
    async recordProgress(key, attempt, progress) {
      fenced(key, attempt, await db.recordTrialProgress(handle, key, attempt, { discardAfter: progress.discardAfter, epochs: progress.epochs }));
    },
    async recordResult(key, attempt, result: TrialResult) {
      fenced(key, attempt, await db.recordResult(handle, key, attempt, result as unknown as db.TrialResultInput));
    },
    async markTrialFailed(key, error) {
      const trial = await db.getTrial(handle, key);
      if (!trial) throw new db.UnknownTrialError(key);
      await db.markTrialFailed(handle, key, trial.attempt, error);
    },
    async resetFailedTrials(studyId) {
      const members = handle.select({ key: studyTrials.trialKey }).from(studyTrials).where(eq(studyTrials.studyId, studyId));
      const rows = await handle
        .update(trials)
        .set({ status: 'pending', error: null, updatedAt: sql`now()` })
        .where(and(eq(trials.status, 'failed'), inArray(trials.trialKey, members)))
        .returning({ key: trials.trialKey });
      return rows.map((r) => r.key);
    },
    async saveCheckpoint(key, attempt, epoch, data) {
      fenced(key, attempt, await db.saveCheckpoint(handle, key, attempt, epoch, data));
    },
    async loadLatestCheckpoint(key) {
      const loaded = await db.loadLatestCheckpoint(handle, key);
      return loaded ? { epoch: loaded.epoch, data: loaded.bytes, sha256: loaded.sha256 } : null;
    },
    async studyCounts(studyId) {
      const p = await db.studyProgress(handle, studyId);
      return { total: p.trials, pending: p.pending, running: p.running, done: p.done, failed: p.failed, diverged: p.diverged };
    },
    async setStudyStatus(studyId, status) {
      await db.setStudyStatus(handle, studyId, status);
    },
  };
}

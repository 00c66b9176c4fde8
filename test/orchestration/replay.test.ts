import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { workflowsPath } from '../../infra/worker.ts';
import { repoRoot } from './harness.ts';

/**
 * Replays recorded study histories against the workflow code, with no server: the history recorded before trials
 * were paged (test/fixtures/study-workflow-history.json, the legacy code path) and the paged one
 * (study-workflow-history-paged.json, made by record-history.ts), both a study with pause, extend and resume
 * signals. A change of the workflow that would break running studies fails here; the reordered fixture workflow
 * proves the check can fail.
 */
const load = (name: string) => historyFromJSON(JSON.parse(readFileSync(path.join(repoRoot, 'test', 'fixtures', name), 'utf8')));
const legacy = load('study-workflow-history.json');
const paged = load('study-workflow-history-paged.json');

const signals = (history: typeof legacy) =>
  (history.events ?? []).flatMap((e) => (e.workflowExecutionSignaledEventAttributes ? [e.workflowExecutionSignaledEventAttributes.signalName] : []));
const activityTypes = (history: typeof legacy) =>
  new Set((history.events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType?.name] : [])));

describe('study workflow replay', () => {
  it('the current workflow code replays the history recorded before paging (legacy path)', async () => {
    expect(legacy.events!.length).toBeGreaterThan(20);
    expect(signals(legacy)).toEqual(['pause', 'extend', 'resume']);
    expect(activityTypes(legacy).has('registerTrials')).toBe(true);
    await Worker.runReplayHistory({ workflowsPath }, legacy);
  });

  it('the current workflow code replays a paged history (registerStudy, pages of pending trials)', async () => {
    expect(signals(paged)).toEqual(['pause', 'extend', 'resume']);
    const types = activityTypes(paged);
    for (const type of ['registerStudy', 'nextPendingTrials', 'extendStudy', 'trainTrial']) expect(types.has(type)).toBe(true);
    expect(types.has('registerTrials')).toBe(false);
    await Worker.runReplayHistory({ workflowsPath }, paged);
  });

  it('a workflow that schedules its activities in another order is caught as non-deterministic', async () => {
    const changed = path.join(repoRoot, 'test', 'orchestration', 'fixtures', 'reordered-workflow.ts');
    await expect(Worker.runReplayHistory({ workflowsPath: changed }, legacy)).rejects.toThrow(/[Nn]ondeterminism|DeterminismViolation/);
  });
});

import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { workflowsPath } from '../../infra/worker.ts';
import { repoRoot } from './harness.ts';

/**
 * Replays a recorded study history (test/fixtures/study-workflow-history.json, made by record-history.ts: a study
 * with pause, extend and resume signals) against the workflow code, with no server. A change of the workflow
 * that would break running studies fails here; the reordered fixture workflow proves the check can fail.
 */
const history = historyFromJSON(JSON.parse(readFileSync(path.join(repoRoot, 'test', 'fixtures', 'study-workflow-history.json'), 'utf8')));

describe('study workflow replay', () => {
  it('the current workflow code replays the recorded history', async () => {
    expect(history.events!.length).toBeGreaterThan(20);
    const signals = (history.events ?? []).flatMap((e) => (e.workflowExecutionSignaledEventAttributes ? [e.workflowExecutionSignaledEventAttributes.signalName] : []));
    expect(signals).toEqual(['pause', 'extend', 'resume']);
    await Worker.runReplayHistory({ workflowsPath }, history);
  });

  it('a workflow that schedules its activities in another order is caught as non-deterministic', async () => {
    const changed = path.join(repoRoot, 'test', 'orchestration', 'fixtures', 'reordered-workflow.ts');
    await expect(Worker.runReplayHistory({ workflowsPath: changed }, history)).rejects.toThrow(/[Nn]ondeterminism|DeterminismViolation/);
  });
});

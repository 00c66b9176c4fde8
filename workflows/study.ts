import {
  ActivityFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { PendingTrial, StudyActivities, StudyCounts } from '../activities/index.ts';
import { CONTROL_TASK_QUEUE, trainTaskQueue, type StudyExtension, type StudySpec } from '../src/spec/study-model.ts';
import {
  DEFAULT_TIMEOUTS,
  cancelSignal,
  extendSignal,
  pauseSignal,
  progressQuery,
  resumeSignal,
  retryFailedSignal,
  type StudyHeader,
  type StudyOutcome,
  type StudyStatus,
  type StudyWorkflowInput,
} from './definitions.ts';
import { legacyStudyWorkflow } from './study-legacy.ts';

export * from './definitions.ts';

/**
 * One study = one workflow (id `mmsweep-study-<name>`). It registers the trials (an activity streams them into
 * Postgres), takes pending ones from the store a page at a time after a position cursor, runs them through a
 * sliding window of `concurrency` trainTrial activities, and continues-as-new when the server suggests it,
 * carrying counters and the cursor, never keys: payloads and history per run are bounded whatever the study's
 * size. Deterministic code only: no node APIs, no clocks, no hashing.
 */

/** Marks runs that page trials from the store; histories without it replay the legacy code path. */
export const PAGED_TRIALS_PATCH = 'paged-trials-v1';
export const DEFAULT_PAGE_SIZE = 256;
/** Failed keys kept for the progress query (the count is exact; the list is for a glance). */
const RECENT_FAILURES = 20;

export async function studyWorkflow(input: StudyWorkflowInput): Promise<StudyOutcome> {
  if (!patched(PAGED_TRIALS_PATCH)) return legacyStudyWorkflow(input as StudyWorkflowInput & { spec: StudySpec });
  return pagedStudyWorkflow(input);
}

function headerOf(input: StudyWorkflowInput): StudyHeader {
  if (input.study) return input.study;
  if (input.spec) return { name: input.spec.name, queue: input.spec.queue, concurrency: input.spec.concurrency, maxAttempts: input.spec.maxAttempts };
  throw new Error('study workflow input needs a spec or a study header with specSha256');
}

async function pagedStudyWorkflow(input: StudyWorkflowInput): Promise<StudyOutcome> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...input.timeouts };
  const header = headerOf(input);
  const studyId = header.name;
  const pageSize = input.pageSize ?? DEFAULT_PAGE_SIZE;
  const carried = input.carried;
  const runs = (carried?.runs ?? 0) + 1;
  // The inline spec (small studies only) is kept so the outcome can hand it back; large ones travel by sha256.
  let spec: StudySpec | undefined = input.spec;
  let specSha256 = input.specSha256;

  const control = proxyActivities<StudyActivities>({
    taskQueue: CONTROL_TASK_QUEUE,
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', backoffCoefficient: 2 },
  });
  // Registering 10⁶ trials takes longer than a control step: its own timeout, heartbeats while it streams.
  const registration = proxyActivities<StudyActivities>({
    taskQueue: CONTROL_TASK_QUEUE,
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '5 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', backoffCoefficient: 2 },
  });
  const train = proxyActivities<StudyActivities>({
    taskQueue: trainTaskQueue(header.queue),
    heartbeatTimeout: timeouts.heartbeatTimeoutMs,
    startToCloseTimeout: timeouts.startToCloseTimeoutMs,
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: {
      initialInterval: timeouts.retryInitialIntervalMs,
      maximumInterval: timeouts.retryMaximumIntervalMs,
      backoffCoefficient: 2,
      maximumAttempts: header.maxAttempts,
    },
  });

  let paused = carried?.paused ?? false;
  let cancelRequested = false;
  let retryRequested = false;
  const extensions: StudyExtension[] = [];
  let draining = false;
  let registered = carried?.registered ?? false;

  let total = carried?.total ?? 0;
  let done = carried?.done ?? 0;
  let failed = carried?.failed ?? 0;
  let cursor = carried?.cursor ?? -1;
  /** The store has no pending trial after the cursor (until an extension or a retry adds some). */
  let exhausted = false;
  const queue: PendingTrial[] = [];
  const running = new Map<string, { trial: PendingTrial; run: Promise<void> }>();
  const recentFailures: string[] = [];
  let trialsStarted = carried?.trialsStartedBefore ?? 0;

  // All trial activities live in this scope so that `cancel` reaches every running runner at once. Created before
  // the handlers: a signal sent with signal-with-start is delivered as soon as its handler is set.
  const trialsScope = new CancellationScope();

  const status = (): StudyStatus =>
    cancelRequested ? 'cancelling' : draining ? 'draining' : paused ? 'paused' : 'running';

  setHandler(pauseSignal, () => void (paused = true));
  setHandler(resumeSignal, () => void (paused = false));
  setHandler(cancelSignal, () => {
    cancelRequested = true;
    trialsScope.cancel();
  });
  setHandler(retryFailedSignal, () => void (retryRequested = true));
  setHandler(extendSignal, (extension) => void extensions.push(extension));
  setHandler(progressQuery, () => ({
    study: studyId,
    status: status(),
    total,
    done,
    failed,
    running: [...running.keys()],
    pending: Math.max(0, total - done - failed - running.size),
    failedKeys: [...recentFailures],
    runs,
    trialsStarted,
    registered,
  }));

  const useCounts = (counts: StudyCounts) => {
    total = counts.total;
    done = counts.done;
    failed = counts.failed;
  };

  const register = async () => {
    registered = false;
    const result = await registration.registerStudy(specSha256 ? { studyId, specSha256 } : { studyId, spec });
    specSha256 = result.specSha256;
    useCounts(result.counts);
    registered = true;
    exhausted = false; // new trials are appended after every known position: the cursor reaches them
  };

  const launch = (trial: PendingTrial) => {
    trialsStarted++;
    const trialKey = trial.key;
    const run = trialsScope
      .run(() => train.trainTrial({ studyId, trialKey }))
      .then(
        () => void done++,
        async (error: unknown) => {
          if (isCancellation(error)) {
            if (!cancelRequested) queue.unshift(trial); // cancelled from outside the study: keep it pending
            return;
          }
          failed++;
          recentFailures.push(trialKey);
          if (recentFailures.length > RECENT_FAILURES) recentFailures.shift();
          const message = error instanceof ActivityFailure && error.cause ? error.cause.message : String(error);
          try {
            await CancellationScope.nonCancellable(() => control.markTrialFailed({ trialKey, error: message ?? 'unknown error' }));
          } catch (markError) {
            // The study goes on; the trial stays failed in the workflow and is retried by retry-failed.
            log.warn('could not mark a trial failed in the results store', { trialKey, error: String(markError) });
          }
        },
      )
      .finally(() => void running.delete(trialKey));
    running.set(trialKey, { trial, run });
  };

  const refill = async () => {
    const page = await control.nextPendingTrials({ studyId, afterPosition: cursor, limit: pageSize });
    const queued = new Set(queue.map((t) => t.key));
    for (const trial of page) {
      cursor = Math.max(cursor, trial.position);
      if (!running.has(trial.key) && !queued.has(trial.key)) queue.push(trial);
    }
    if (page.length < pageSize) exhausted = true;
  };

  const historyTooLong = () => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || (input.continueAsNewAfterEvents !== undefined && info.historyLength >= input.continueAsNewAfterEvents);
  };

  try {
    if (!registered) {
      await register();
      await control.summarizeStudy({ studyId, status: paused ? 'paused' : 'running' });
    }

    for (;;) {
      if (cancelRequested) break;
      if (extensions.length > 0) {
        const extended = await control.extendStudy({ studyId, specSha256: specSha256!, extensions: extensions.splice(0) });
        specSha256 = extended.specSha256;
        spec = extended.spec;
        await register();
        continue;
      }
      if (retryRequested) {
        retryRequested = false;
        const reset = await control.retryFailedTrials({ studyId });
        failed = Math.max(0, failed - reset);
        recentFailures.splice(0);
        cursor = -1; // the reset trials may sit anywhere in the plan
        exhausted = false;
        continue;
      }
      if (!draining && historyTooLong()) draining = true;
      if (draining && running.size === 0) break; // continue-as-new below
      const open = !paused && !draining;
      if (open && !exhausted && queue.length < header.concurrency) {
        await refill();
        continue;
      }
      while (open && queue.length > 0 && running.size < header.concurrency) launch(queue.shift()!);
      if (running.size === 0 && queue.length === 0 && exhausted) break; // finished (failed trials wait for retry-failed)

      const startedWith = running.size;
      const pausedWith = paused;
      await condition(
        () =>
          cancelRequested ||
          retryRequested ||
          extensions.length > 0 ||
          running.size < startedWith ||
          paused !== pausedWith ||
          (!draining && historyTooLong()),
      );
    }
  } catch (error) {
    // The workflow itself was cancelled (e.g. `temporal workflow cancel`): treat it as a study cancel.
    if (!isCancellation(error)) throw error;
    cancelRequested = true;
  }

  if (cancelRequested) {
    trialsScope.cancel();
    // WAIT_CANCELLATION_COMPLETED: these settle once every runner process has been killed.
    const counts = await CancellationScope.nonCancellable(async () => {
      await Promise.all([...running.values()].map((r) => r.run));
      return control.summarizeStudy({ studyId, status: 'cancelled' });
    });
    return { study: studyId, status: 'cancelled', counts, runs, spec, specSha256 };
  }

  if (draining) {
    await condition(allHandlersFinished);
    // Trials taken from the store but not started are found again: the next run starts before the first of them.
    const restart = queue.reduce((lowest, t) => Math.min(lowest, t.position - 1), cursor);
    return continueAsNew<typeof studyWorkflow>({
      ...(spec ? { spec } : {}),
      study: header,
      specSha256,
      pageSize: input.pageSize,
      timeouts: input.timeouts,
      continueAsNewAfterEvents: input.continueAsNewAfterEvents,
      carried: { paused, runs, trialsStartedBefore: trialsStarted, registered: true, cursor: restart, total, done, failed },
    });
  }

  const counts = await control.summarizeStudy({ studyId, status: 'done' });
  return { study: studyId, status: 'finished', counts, runs, spec, specSha256 };
}

import {
  ActivityFailure,
  CancellationScope,
  allHandlersFinished,
  condition,
  continueAsNew,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { StudyActivities } from '../activities/index.ts';
import { CONTROL_TASK_QUEUE, extendStudySpec, isEmptyExtension, trainTaskQueue, type StudyExtension, type StudySpec } from '../src/spec/study-model.ts';
import {
  DEFAULT_TIMEOUTS,
  cancelSignal,
  extendSignal,
  pauseSignal,
  progressQuery,
  resumeSignal,
  retryFailedSignal,
  type StudyOutcome,
  type StudyStatus,
  type StudyWorkflowInput,
} from './definitions.ts';

/**
 * The study workflow as it was before trials were paged from the store: kept, unchanged in what it schedules, so
 * that histories recorded before the change replay (test/fixtures/study-workflow-history.json) and runs started
 * before an upgrade finish their current run. It carries the whole key list; its continue-as-new starts a paged run.
 */
export async function legacyStudyWorkflow(input: StudyWorkflowInput & { spec: StudySpec }): Promise<StudyOutcome> {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...input.timeouts };
  let spec = input.spec;
  const studyId = spec.name;
  const runs = (input.carried?.runs ?? 0) + 1;

  const control = proxyActivities<StudyActivities>({
    taskQueue: CONTROL_TASK_QUEUE,
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '30 seconds', backoffCoefficient: 2 },
  });
  const train = proxyActivities<StudyActivities>({
    taskQueue: trainTaskQueue(spec.queue),
    heartbeatTimeout: timeouts.heartbeatTimeoutMs,
    startToCloseTimeout: timeouts.startToCloseTimeoutMs,
    cancellationType: 'WAIT_CANCELLATION_COMPLETED',
    retry: {
      initialInterval: timeouts.retryInitialIntervalMs,
      maximumInterval: timeouts.retryMaximumIntervalMs,
      backoffCoefficient: 2,
      maximumAttempts: spec.maxAttempts,
    },
  });

  let paused = input.carried?.paused ?? false;
  let cancelRequested = false;
  let retryRequested = false;
  const extensions: StudyExtension[] = [];
  let draining = false;

  let total = 0;
  let done = 0;
  const queue: string[] = [];
  const running = new Map<string, Promise<void>>();
  const failedKeys: string[] = [];
  let trialsStarted = input.carried?.trialsStartedBefore ?? 0;

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
    failed: failedKeys.length,
    running: [...running.keys()],
    pending: queue.length,
    failedKeys: [...failedKeys],
    runs,
    trialsStarted,
  }));

  const register = async () => {
    const registered = await control.registerTrials({ spec });
    total = registered.total;
    done = registered.done;
    const known = new Set([...queue, ...running.keys(), ...failedKeys]);
    for (const key of registered.pending) if (!known.has(key)) queue.push(key);
    for (const key of registered.failed) if (!known.has(key)) failedKeys.push(key);
  };

  const launch = (trialKey: string) => {
    trialsStarted++;
    const run = trialsScope
      .run(() => train.trainTrial({ studyId, trialKey }))
      .then(
        () => void done++,
        async (error: unknown) => {
          if (isCancellation(error)) {
            if (!cancelRequested) queue.push(trialKey); // cancelled from outside the study: keep it pending
            return;
          }
          failedKeys.push(trialKey);
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
    running.set(trialKey, run);
  };

  const historyTooLong = () => {
    const info = workflowInfo();
    return info.continueAsNewSuggested || (input.continueAsNewAfterEvents !== undefined && info.historyLength >= input.continueAsNewAfterEvents);
  };

  try {
    await register();
    await control.summarizeStudy({ studyId, status: paused ? 'paused' : 'running' });

    for (;;) {
      if (cancelRequested) break;
      if (extensions.length > 0) {
        for (const extension of extensions.splice(0)) if (!isEmptyExtension(extension)) spec = extendStudySpec(spec, extension);
        await register();
        continue;
      }
      if (retryRequested) {
        retryRequested = false;
        const reset = await control.resetFailedTrials({ studyId });
        const again = new Set([...reset, ...failedKeys]);
        failedKeys.splice(0);
        for (const key of again) if (!running.has(key) && !queue.includes(key)) queue.push(key);
        continue;
      }
      if (!draining && historyTooLong()) draining = true;
      if (draining && running.size === 0) break; // continue-as-new below
      while (!paused && !draining && queue.length > 0 && running.size < spec.concurrency) launch(queue.shift()!);
      if (running.size === 0 && queue.length === 0) break; // finished (failed trials wait for retry-failed)

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
      await Promise.all([...running.values()]);
      return control.summarizeStudy({ studyId, status: 'cancelled' });
    });
    return { study: studyId, status: 'cancelled', counts, runs, spec };
  }

  if (draining) {
    await condition(allHandlersFinished);
    return continueAsNew<(next: StudyWorkflowInput) => Promise<StudyOutcome>>({
      spec,
      timeouts: input.timeouts,
      continueAsNewAfterEvents: input.continueAsNewAfterEvents,
      carried: { paused, runs, trialsStartedBefore: trialsStarted },
    });
  }

  const counts = await control.summarizeStudy({ studyId, status: 'done' });
  return { study: studyId, status: 'finished', counts, runs, spec };
}

/**
 * The trial runner's wire protocol: what `mmsweep train` prints with `--events` (one JSON object per line on
 * stdout) and the exit codes it ends with. The orchestration activity spawns the runner and relies on exactly
 * this, so both sides import it from here. The payloads themselves (TrialEvent, TrialResult, EpochMetrics) are
 * the shared contract in src/spec/contracts.ts.
 */
import type { TrialEvent } from '../spec/contracts.ts';

/** One event line on the runner's stdout (after EVENT_LINE_PREFIX): a trial event as JSON, unchanged. */
export type RunnerEvent = TrialEvent;

export const EXIT_CODES = {
  success: 0,
  crash: 1,
  invalidSpec: 2,
  diverged: 3,
  missingData: 4,
} as const;
export type ExitCodeName = keyof typeof EXIT_CODES;

/** Exit codes the orchestrator must not retry. */
export const NON_RETRYABLE_EXIT_CODES: readonly number[] = [EXIT_CODES.invalidSpec, EXIT_CODES.missingData];

/** Prefix of event lines on stdout, so they stay distinguishable from any stray library output. */
export const EVENT_LINE_PREFIX = '@mmsweep ';

/**
 * Warm runners (activities/runner-pool.ts): `<runner> warm --preload <none|backend>` loads the modules (and, for a
 * CPU backend, the backend) a trial needs, prints READY_LINE on stdout and waits for one line on stdin: a
 * WarmTrialLine naming the `train` arguments of its trial. From then on it is an ordinary runner (events, exit
 * codes). With `--trials n` (n > 1) a runner whose trial succeeded or diverged, and left no tensor behind, prints
 * TRIAL_END_PREFIX and the exit code it would have exited with, then READY_LINE, and takes the next trial line — at
 * most n trials; otherwise it exits with that code as a one-trial runner does.
 */
export const WARM_COMMAND = 'warm';
/**
 * Set by the worker when the kernel is to kill the runner with its worker (`setpriv --pdeathsig`): the worker's pid.
 * A runner whose parent is no longer that process was orphaned before the signal was armed, and exits at once.
 */
export const RUNNER_PARENT_ENV = 'MMSWEEP_RUNNER_PARENT';
export const READY_LINE = '@mmsweep-ready';
export const TRIAL_END_PREFIX = '@mmsweep-trial-end ';
/** How a warm runner's own messages on stderr begin (why it ends instead of taking another trial, …). */
export const WARM_RUNNER_LOG_PREFIX = 'mmsweep warm runner: ';
/** A warm runner's process title once it has its trial (an idle spare keeps its `warm --preload` command line). */
export const TRIAL_PROCESS_TITLE = 'mmsweep-trial';
/** A runner's process title between two trials (a runner that takes several). */
export const WARM_PROCESS_TITLE = 'mmsweep-warm';
export interface WarmTrialLine {
  argv: string[];
}

/**
 * A study's ETA from measured epoch times (pure, so a test can check it against a hand computation).
 *
 * Work left, in epochs: every pending trial needs the expected number of epochs, every running trial what it lacks
 * of it. Throughput, in epochs per second: each worker runs its running trials in parallel, each at that worker's
 * measured mean epoch time (the study-wide mean for a worker with no measured epoch yet). ETA = work / throughput.
 */

export interface WorkerLoad {
  worker: string;
  /** Trials of the study running on this worker now. */
  running: number;
  /** Mean wall seconds of one epoch measured on this worker, or null when none is measured yet. */
  meanEpochSeconds: number | null;
}

export interface EtaInput {
  pending: number;
  /** Epochs already done by each running trial. */
  runningEpochsDone: readonly number[];
  workers: readonly WorkerLoad[];
  /** Mean wall seconds of an epoch over the whole study (null: nothing measured). */
  studyMeanEpochSeconds: number | null;
  /** Epochs a trial is expected to run (mean of finished trials, else the epoch cap), or null when unknown. */
  expectedEpochs: number | null;
}

export interface Eta {
  /** Seconds until every pending and running trial is finished; null when it cannot be estimated. */
  seconds: number | null;
  /** Why there is no estimate, or what it rests on. */
  basis: string;
  remainingEpochs: number | null;
  epochsPerSecond: number | null;
}

export function estimateEta(input: EtaInput): Eta {
  const runningCount = input.runningEpochsDone.length;
  if (input.pending === 0 && runningCount === 0) return { seconds: 0, basis: 'nothing left to run', remainingEpochs: 0, epochsPerSecond: null };
  if (input.expectedEpochs === null || !(input.expectedEpochs > 0)) {
    return { seconds: null, basis: 'no epoch count to expect yet', remainingEpochs: null, epochsPerSecond: null };
  }
  const expected = input.expectedEpochs;
  const remainingEpochs = input.pending * expected + input.runningEpochsDone.reduce((sum, done) => sum + Math.max(0, expected - done), 0);
  let epochsPerSecond = 0;
  for (const w of input.workers) {
    if (w.running <= 0) continue;
    const seconds = w.meanEpochSeconds ?? input.studyMeanEpochSeconds;
    if (seconds !== null && seconds > 0) epochsPerSecond += w.running / seconds;
  }
  if (epochsPerSecond <= 0) {
    const basis = runningCount === 0 ? 'no trial is running' : 'no epoch time measured yet';
    return { seconds: null, basis, remainingEpochs, epochsPerSecond: null };
  }
  return {
    seconds: remainingEpochs / epochsPerSecond,
    basis: `${remainingEpochs.toFixed(0)} epochs left at ${epochsPerSecond.toPrecision(3)} epochs/s (measured epoch times, current workers)`,
    remainingEpochs,
    epochsPerSecond,
  };
}

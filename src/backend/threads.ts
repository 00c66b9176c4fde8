import os from 'node:os';

/**
 * How a worker shares its CPU cores between trials: `slots` trials at once, each runner limited to
 * `threadsPerSlot` compute threads. libtensorflow reads TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS when it
 * creates its thread pools (the runner's first op), so the split is set per runner through its environment; the
 * wasm and pure-JS backends are single-threaded in Node whatever the setting.
 *
 * Default on CPU hosts: one trial per core, one thread each. wasm trials can only use one core each anyway; for the
 * native backend, measured on a 2-core AMD EPYC shared with other jobs (README "Cores, slots and threads"): a small
 * CMNIST trial (1,000 images, 1 epoch, batch 32, width 0.5) cost 12.8 CPU s with one thread and 13.6–14.6 with
 * two, and two one-thread trials side by side finished in 106 s where two two-thread trials in a row took 115 s:
 * small convolutions gain less from a second thread than the thread costs.
 */
export interface CpuSplit {
  slots: number;
  threadsPerSlot: number;
  /** Where the numbers came from, for the start-up line. */
  source: 'default' | 'flags' | 'gpus';
}

export const INTRA_OP_ENV = 'TF_NUM_INTRAOP_THREADS';
export const INTER_OP_ENV = 'TF_NUM_INTEROP_THREADS';

export class SplitFlagError extends Error {
  readonly exitCode = 2;
  override name = 'SplitFlagError';
}

/** A positive integer flag value, or a SplitFlagError naming the flag (exit code 2). */
export function parsePositiveIntFlag(flag: string, value: string): number {
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new SplitFlagError(`${flag} must be a positive integer, got '${value}'`);
  return n;
}

/**
 * The split for this worker. Explicit `slots`/`threadsPerSlot` win; with only `slots`, the cores are shared
 * evenly; with GPUs, one slot per GPU and the cores shared between them; otherwise one trial per core.
 */
export function resolveCpuSplit(options: { slots?: number; threadsPerSlot?: number; gpus?: number; cores?: number }): CpuSplit {
  const cores = Math.max(1, options.cores ?? os.availableParallelism());
  const gpus = options.gpus ?? 0;
  const explicit = options.slots !== undefined || options.threadsPerSlot !== undefined;
  const slots = options.slots ?? (gpus > 0 ? gpus : options.threadsPerSlot ? Math.max(1, Math.floor(cores / options.threadsPerSlot)) : cores);
  const threadsPerSlot = options.threadsPerSlot ?? Math.max(1, Math.floor(cores / slots));
  return { slots, threadsPerSlot, source: explicit ? 'flags' : gpus > 0 ? 'gpus' : 'default' };
}

/** The runner environment that limits one trial to the split's threads. */
export function threadEnv(split: Pick<CpuSplit, 'threadsPerSlot'>): Record<string, string> {
  // One inter-op thread: eager tfjs issues one op at a time, so a second pool only adds idle threads.
  return { [INTRA_OP_ENV]: String(split.threadsPerSlot), [INTER_OP_ENV]: '1' };
}

/** One line for the start-up log of `mmsweep run` / `mmsweep worker`. */
export function describeSplit(split: CpuSplit, cores = os.availableParallelism()): string {
  const why =
    split.source === 'default'
      ? 'default on CPU hosts: one trial per core'
      : split.source === 'gpus'
        ? 'one slot per GPU'
        : 'from --slots/--threads-per-slot';
  const over = split.slots * split.threadsPerSlot > cores ? ` — more threads than the ${cores} cores: trials will slow each other down` : '';
  return (
    `${split.slots} slot(s) × ${split.threadsPerSlot} thread(s) per trial on ${cores} core(s) (${why}; ` +
    `${INTRA_OP_ENV}=${split.threadsPerSlot} ${INTER_OP_ENV}=1; override with --slots/--threads-per-slot)${over}`
  );
}

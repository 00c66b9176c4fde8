import { createHash } from 'node:crypto';
import { WARM_COMMAND, WARM_RUNNER_LOG_PREFIX } from '../src/runner/protocol.ts';
import { startRunner, type ParentWatch, type RunnerHandle } from './runner-process.ts';

/**
 * Spare trial runners, so that a trial does not wait for a process to start and load its modules (about 0.3 s for a
 * no-op trial, a second or more with the native backend). A spare is an ordinary runner process started with
 * `warm --preload <backend>` (src/cli/warm.ts): it loads what a trial needs, then waits for its trial's arguments on
 * stdin. Each trial still runs in a process of its own that exits after it (crash isolation is unchanged); the pool
 * only starts that process earlier, while the previous trial runs.
 *
 * A spare is used only for a trial whose profile it was started with (runner command, preloaded backend, and the
 * complete environment: threads per slot, GPU, MMSWEEP_BACKEND…); otherwise a fresh runner is started. A spare that
 * dies while waiting is dropped (and replaced if it had got ready, so a runner that cannot start does not spin);
 * one that dies before it is ready when a trial takes it is replaced by a fresh one by the caller (`take` again).
 */
export interface RunnerProfile {
  /** argv prefix of the runner bundle: `[node, runner.js]` (WARM_COMMAND is appended). */
  command: string[];
  /** The trial spec's backend request, or 'none' for a no-op trial. */
  preload: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

interface Spare {
  key: string;
  profile: RunnerProfile;
  handle: RunnerHandle;
  readyAt: number | null;
  /** Trials this process may still take (RunnerPoolOptions.trialsPerRunner at its start). */
  trialsLeft: number;
}

export interface RunnerPoolOptions {
  /** Most spares kept (one per slot: each running trial has its successor ready). 0: no spares, every runner fresh. */
  capacity: number;
  log?: (message: string) => void;
  /** Default: the platform's (runner-process.ts); tests run both. */
  parentWatch?: ParentWatch;
  /**
   * Trials one runner process may take one after another (src/cli/warm.ts `--trials`); default 1, a process per
   * trial. A runner that takes another comes back through `giveBack` and is the slot's next spare: no successor is
   * started for it unless it ends instead.
   */
  trialsPerRunner?: number;
}

export class RunnerPool {
  private spares: Spare[] = [];
  private closed = false;
  /** Spares started and spares that died unused: for tests and diagnostics. */
  readonly stats = { started: 0, reused: 0, diedIdle: 0, mismatched: 0, givenBack: 0 };
  /** Runners out with a trial → the trials each may take after it. */
  private readonly taken = new Map<RunnerHandle, number>();
  private readonly trialsPerRunner: number;

  constructor(private readonly options: RunnerPoolOptions) {
    this.trialsPerRunner = options.trialsPerRunner ?? 1;
    if (!Number.isSafeInteger(this.trialsPerRunner) || this.trialsPerRunner < 1) throw new Error(`trialsPerRunner must be a whole number ≥ 1, got ${options.trialsPerRunner}`);
  }

  /**
   * A runner for a trial with this profile: a waiting spare when one matches and is alive, else a fresh one. The
   * caller sends the trial once `ready` resolves true; when it resolves false the runner died before it could take a
   * trial and `take` gives another. `refill` then starts a spare with the same profile for the next trial.
   */
  take(profile: RunnerProfile): { runner: RunnerHandle; spare: boolean; readyNow: boolean; comesBack: boolean } {
    if (this.closed) throw new Error('the runner pool is closed (the worker is shutting down)');
    const key = profileKey(profile);
    const i = this.spares.findIndex((s) => s.key === key && !s.handle.hasExited());
    let runner: RunnerHandle;
    let spare = false;
    let readyNow = false;
    let trialsLeft = this.trialsPerRunner;
    if (i >= 0) {
      const taken = this.spares.splice(i, 1)[0]!;
      runner = taken.handle;
      runner.setRef(true);
      spare = true;
      readyNow = taken.readyAt !== null;
      trialsLeft = taken.trialsLeft;
      this.stats.reused += 1;
    } else {
      if (this.spares.length > 0) this.stats.mismatched += 1;
      runner = this.launch(profile);
    }
    this.taken.set(runner, trialsLeft - 1);
    const comesBack = trialsLeft > 1;
    if (comesBack) {
      // Its successor is itself; should it end instead of coming back, the next trial gets a spare started then.
      void runner.exited.then((exit) => {
        this.taken.delete(runner);
        // A runner that finished its trial but ends instead of coming back says why as its last line (warm.ts).
        const why = exit.stderrTail.split('\n').at(-1) ?? '';
        if (why.startsWith(WARM_RUNNER_LOG_PREFIX)) this.options.log?.(`trial runner ${runner.pid} ended after its trial: ${why.slice(WARM_RUNNER_LOG_PREFIX.length)}`);
        this.refill(profile, key);
      });
    }
    return { runner, spare, readyNow, comesBack };
  }

  /**
   * A runner whose trial ended with TRIAL_END (it said it takes another) back from its trial: the next spare of its
   * profile, or stopped when the pool is closed or already holds a spare of that profile for every slot.
   */
  giveBack(profile: RunnerProfile, runner: RunnerHandle): void {
    const trialsLeft = this.taken.get(runner);
    this.taken.delete(runner);
    const key = profileKey(profile);
    if (this.closed || trialsLeft === undefined || trialsLeft < 1 || runner.hasExited() || this.spares.filter((s) => s.key === key).length >= this.options.capacity) {
      void runner.kill(1_000);
      return;
    }
    this.stats.givenBack += 1;
    this.keep({ key, profile, handle: runner, readyAt: null, trialsLeft });
  }

  /**
   * A runner ready for its trial (`take`, then its READY_LINE awaited). A runner that dies before it is ready (a
   * spare killed or out of memory while loading) is replaced once by the next one; when that one dies too it is
   * returned as it is, and its exit (with its stderr) reports the trial's crash. `onRunner` sees every runner as it
   * is taken (the caller records its pid and kills it on cancellation); after `signal` aborts, nothing is replaced.
   * `onReady` gets the runner to send it its trial before the spare for the next trial is started when the runner
   * was ready at once: starting a process (a fork of this worker: 20–230 ms measured at load 13) would otherwise
   * delay the trial. A runner still loading gets its successor started at once, so that successive start-ups overlap
   * (on a loaded machine a spare can take longer to load than a short trial takes).
   */
  async acquire(
    profile: RunnerProfile,
    options: { onRunner?: (runner: RunnerHandle) => void | Promise<void>; onReady?: (runner: RunnerHandle) => void; signal?: AbortSignal } = {},
  ): Promise<{ runner: RunnerHandle; spare: boolean; replaced: boolean }> {
    const key = profileKey(profile);
    let refilled = false;
    const refill = () => {
      if (!refilled) this.refill(profile, key);
      refilled = true;
    };
    try {
      let taken = this.take(profile);
      if (taken.comesBack) refilled = true;
      else if (!taken.readyNow) refill();
      await options.onRunner?.(taken.runner);
      let replaced = false;
      if (!(await taken.runner.ready) && !options.signal?.aborted) {
        this.options.log?.(`trial runner ${taken.runner.pid} exited before it was ready; taking another`);
        taken = this.take(profile);
        refilled = taken.comesBack; // the first take's successor may have been taken just now
        if (!taken.readyNow) refill();
        await options.onRunner?.(taken.runner);
        await taken.runner.ready;
        replaced = true;
      }
      options.onReady?.(taken.runner);
      return { ...taken, replaced };
    } finally {
      refill();
    }
  }

  /** Stop every waiting spare (worker shutdown); taken runners belong to their trials. */
  async close(): Promise<void> {
    this.closed = true;
    const spares = this.spares.splice(0);
    await Promise.all(spares.map((s) => s.handle.kill(1_000)));
  }

  /** The waiting spares (tests and diagnostics). */
  waiting(): readonly RunnerHandle[] {
    return this.spares.map((s) => s.handle);
  }

  private launch(profile: RunnerProfile): RunnerHandle {
    this.stats.started += 1;
    return startRunner({
      command: profile.command,
      args: [WARM_COMMAND, '--preload', profile.preload, ...(this.trialsPerRunner > 1 ? ['--trials', String(this.trialsPerRunner)] : [])],
      env: profile.env,
      cwd: profile.cwd,
      parentWatch: this.options.parentWatch,
      bundled: true,
    });
  }

  private refill(profile: RunnerProfile, key: string): void {
    if (this.closed || this.options.capacity <= 0) return;
    if (this.spares.filter((s) => s.key === key).length >= this.options.capacity) return;
    // Full: the oldest spare of another profile makes room (a study's trials usually share one profile).
    while (this.spares.length >= this.options.capacity) {
      const j = this.spares.findIndex((s) => s.key !== key);
      if (j < 0) return;
      void this.spares.splice(j, 1)[0]!.handle.kill(1_000);
    }
    this.keep({ key, profile, handle: this.launch(profile), readyAt: null, trialsLeft: this.trialsPerRunner });
  }

  /** A runner waits as a spare: it does not keep the worker alive, and one that dies while waiting is replaced. */
  private keep(spare: Spare): void {
    const { key, profile, handle } = spare;
    handle.setRef(false);
    this.spares.push(spare);
    void handle.ready.then((ready) => {
      if (ready) spare.readyAt = Date.now();
    });
    void handle.exited
      .catch(() => null)
      .then((exit) => {
        const at = this.spares.indexOf(spare);
        if (at < 0) return; // taken by a trial, or evicted
        this.spares.splice(at, 1);
        this.stats.diedIdle += 1;
        const how = exit ? (exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`) : 'failed to start';
        this.options.log?.(`spare trial runner ${handle.pid} died while waiting (${how})${exit?.stderrTail ? `: ${exit.stderrTail.split('\n').slice(-3).join(' | ')}` : ''}`);
        if (spare.readyAt !== null) this.refill(profile, key);
      });
  }
}

function profileKey(profile: RunnerProfile): string {
  const env = Object.entries(profile.env)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(JSON.stringify([profile.command, profile.preload, profile.cwd, env])).digest('hex');
}

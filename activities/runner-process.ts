import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { EVENT_LINE_PREFIX, READY_LINE, RUNNER_PARENT_ENV, TRIAL_END_PREFIX, type RunnerEvent, type WarmTrialLine } from '../src/runner/protocol.ts';

const LIFELINE = fileURLToPath(new URL('./lifeline.mjs', import.meta.url));
const SETPRIV = '/usr/bin/setpriv';

/**
 * How a runner's life is tied to this process's, so that no orphan keeps training and writing checkpoints behind the
 * next attempt's back when the worker dies (even by kill -9):
 * - `pdeathsig` (Linux with util-linux ≥ 2.33): the runner is exec'd through `setpriv --pdeathsig KILL`, so the
 *   kernel kills it when this process dies. No process in between: a trial costs one Node start instead of two
 *   (the lifeline's start was ≈ 40 ms of CPU per trial, a fifth of a no-op trial's). The kernel ties the signal to
 *   the forking *thread*, so it is used only from the main thread.
 * - `lifeline` (elsewhere, e.g. macOS): a small Node process between the two (./lifeline.mjs) kills the runner when its
 *   stdin, a pipe from this process, closes.
 */
export type ParentWatch = 'pdeathsig' | 'lifeline';

let probedWatch: ParentWatch | undefined;
export function defaultParentWatch(): ParentWatch {
  probedWatch ??=
    process.platform === 'linux' && isMainThread && spawnSync(SETPRIV, ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 10_000 }).status === 0
      ? 'pdeathsig'
      : 'lifeline';
  return probedWatch;
}

/**
 * One trial runner child process (`mmsweep train --events`): its events as a stream, its exit, and a kill that
 * takes its whole process group with it (the runner may have children of its own).
 */
export interface RunnerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Last lines of stderr, for error messages. */
  stderrTail: string;
}

/**
 * How one trial on a runner ended: the runner's exit, or — a runner that takes several trials
 * (`warm --trials n`) — its TRIAL_END line, after which it is ready for the next (`reusable`).
 */
export interface TrialEnd extends RunnerExit {
  reusable: boolean;
}

export interface RunnerHandle {
  pid: number;
  exited: Promise<RunnerExit>;
  /** The end of the trial sent last (or, for a runner started with its trial's arguments, of the process). */
  trialEnd(): Promise<TrialEnd>;
  kill(graceMs?: number): Promise<void>;
  /** Whether the process has exited (its exit may still be on its way to `exited`). */
  hasExited(): boolean;
  /** Where events go from now on (a spare runner gets its listener with its trial). */
  setEventListener(onEvent: (event: RunnerEvent) => void): void;
  /** A warm runner: true once it printed READY_LINE (again, after each trial it took), false when it exited before. */
  readonly ready: Promise<boolean>;
  /** A warm runner: hand it its trial's `train` arguments. */
  sendTrial(argv: string[]): void;
  /** Whether the process keeps this one alive (a spare does not: a worker exits with spares waiting). */
  setRef(ref: boolean): void;
}

export function startRunner(options: {
  command: string[];
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  onEvent?: (event: RunnerEvent) => void;
  onStrayLine?: (line: string) => void;
  /** Default: defaultParentWatch(); tests run both. */
  parentWatch?: ParentWatch;
  /**
   * The command is the runner bundle itself, not a wrapper around it (a custom MMSWEEP_RUNNER may be one): under
   * pdeathsig it is told this process's pid, to exit at once when its parent is another (src/cli/runner.ts).
   */
  bundled?: boolean;
}): RunnerHandle {
  let onEvent = options.onEvent ?? (() => undefined);
  // detached: the process we start (the runner itself, or its lifeline) leads its own process group, so a kill
  // reaches the runner and all it spawned.
  // NODE_EXTRA_CA_CERTS makes every Node process parse a CA bundle at start (~60 ms here); no runner opens a TLS
  // connection.
  const { NODE_EXTRA_CA_CERTS: _unusedCaCerts, ...env } = options.env;
  const watch = options.parentWatch ?? defaultParentWatch();
  const [file, argv] =
    watch === 'pdeathsig'
      ? [SETPRIV, ['--pdeathsig', 'KILL', '--', ...options.command, ...options.args]]
      : [process.execPath, [LIFELINE, ...options.command, ...options.args]];
  const child: ChildProcess = spawn(file, argv, {
    env: watch === 'pdeathsig' && options.bundled ? { ...env, [RUNNER_PARENT_ENV]: String(process.pid) } : env,
    cwd: options.cwd,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin!.on('error', () => undefined);
  const stderrLines: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrLines.push(line);
    if (stderrLines.length > 40) stderrLines.shift();
  });
  let markReady: (ready: boolean) => void = () => undefined;
  let ready = new Promise<boolean>((resolve) => (markReady = resolve));
  let endTrial: (end: TrialEnd) => void = () => undefined;
  let trialEnded: Promise<TrialEnd> | null = null;
  const stdoutDone = new Promise<void>((resolve) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line === READY_LINE) {
        markReady(true);
        return;
      }
      if (line.startsWith(TRIAL_END_PREFIX)) {
        const code = Number(line.slice(TRIAL_END_PREFIX.length));
        if (!Number.isInteger(code)) {
          options.onStrayLine?.(line);
          return;
        }
        // Every event line of the trial came before this one. The runner says READY again when it can take the next.
        ready = new Promise<boolean>((resolve) => (markReady = resolve));
        endTrial({ code, signal: null, stderrTail: stderrLines.join('\n'), reusable: true });
        return;
      }
      if (!line.startsWith(EVENT_LINE_PREFIX)) {
        options.onStrayLine?.(line);
        return;
      }
      let event: RunnerEvent;
      try {
        event = JSON.parse(line.slice(EVENT_LINE_PREFIX.length)) as RunnerEvent;
      } catch {
        options.onStrayLine?.(line);
        return;
      }
      onEvent(event);
    });
    lines.on('close', () => {
      markReady(false);
      resolve();
    });
  });
  const exited = new Promise<RunnerExit>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      // Deliver every event line before reporting the exit.
      void stdoutDone.then(() => resolve({ code, signal, stderrTail: stderrLines.join('\n') }));
    });
  });
  if (child.pid === undefined) throw new Error(`could not start the trial runner: ${options.command.join(' ')}`);
  const pid = child.pid;
  let processEnd: TrialEnd | null = null;
  const nextTrialEnd = () => {
    const promise = processEnd ? Promise.resolve(processEnd) : new Promise<TrialEnd>((resolve) => (endTrial = resolve));
    trialEnded = promise;
    return promise;
  };
  let exitedFlag = false;
  child.once('exit', () => (exitedFlag = true));
  // The process's end is also the end of the trial it was running (one that never printed TRIAL_END).
  void exited.then(
    (exit) => {
      exitedFlag = true;
      endTrial((processEnd = { ...exit, reusable: false }));
    },
    () => {
      exitedFlag = true;
      endTrial((processEnd = { code: null, signal: null, stderrTail: stderrLines.join('\n'), reusable: false }));
    },
  );
  const streams = [child.stdin, child.stdout, child.stderr] as unknown as Array<{ ref?: () => void; unref?: () => void }>;
  return {
    pid,
    exited,
    get ready() {
      return ready;
    },
    trialEnd: () => trialEnded ?? nextTrialEnd(),
    hasExited: () => exitedFlag,
    setEventListener(listener) {
      onEvent = listener;
    },
    sendTrial(argv) {
      nextTrialEnd();
      const line: WarmTrialLine = { argv };
      child.stdin!.write(`${JSON.stringify(line)}\n`);
    },
    setRef(ref) {
      if (ref) child.ref();
      else child.unref();
      for (const stream of streams) (ref ? stream.ref : stream.unref)?.call(stream);
    },
    async kill(graceMs = 3000) {
      if (exitedFlag) return;
      signalGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
      await exited.catch(() => undefined);
      clearTimeout(timer);
      // The leader is gone; make sure nothing it spawned survives.
      signalGroup(pid, 'SIGKILL');
    },
  };
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { EVENT_LINE_PREFIX, READY_LINE, type RunnerEvent, type WarmTrialLine } from '../src/runner/protocol.ts';

const LIFELINE = fileURLToPath(new URL('./lifeline.mjs', import.meta.url));

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

export interface RunnerHandle {
  pid: number;
  exited: Promise<RunnerExit>;
  kill(graceMs?: number): Promise<void>;
  /** Whether the process has exited (its exit may still be on its way to `exited`). */
  hasExited(): boolean;
  /** Where events go from now on (a spare runner gets its listener with its trial). */
  setEventListener(onEvent: (event: RunnerEvent) => void): void;
  /** A warm runner: true once it printed READY_LINE, false when it exited before. */
  ready: Promise<boolean>;
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
}): RunnerHandle {
  let onEvent = options.onEvent ?? (() => undefined);
  // detached: the lifeline leads its own process group, so a kill reaches the runner and all it spawned; its
  // stdin is a pipe from us that closes when this process dies, whatever the cause.
  // NODE_EXTRA_CA_CERTS makes every Node process parse a CA bundle at start (~60 ms here, twice per trial: lifeline
  // and runner); neither opens a TLS connection.
  const { NODE_EXTRA_CA_CERTS: _unusedCaCerts, ...env } = options.env;
  const child: ChildProcess = spawn(process.execPath, [LIFELINE, ...options.command, ...options.args], {
    env,
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
  const ready = new Promise<boolean>((resolve) => (markReady = resolve));
  const stdoutDone = new Promise<void>((resolve) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line === READY_LINE) {
        markReady(true);
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
  let exitedFlag = false;
  child.once('exit', () => (exitedFlag = true));
  void exited.then(
    () => (exitedFlag = true),
    () => (exitedFlag = true),
  );
  const streams = [child.stdin, child.stdout, child.stderr] as unknown as Array<{ ref?: () => void; unref?: () => void }>;
  return {
    pid,
    exited,
    ready,
    hasExited: () => exitedFlag,
    setEventListener(listener) {
      onEvent = listener;
    },
    sendTrial(argv) {
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

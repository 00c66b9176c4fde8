import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledRunnerPrefix } from '../../activities/runner-bundle.ts';
import { RunnerPool, type RunnerProfile } from '../../activities/runner-pool.ts';
import { spareRunnersFromEnv, trialsPerRunnerFromEnv } from '../../activities/common.ts';
import { takesAnotherTrial } from '../../src/cli/warm.ts';
import { runMmsweep } from '../cli/run-cli.ts';
import { defaultParentWatch, signalGroup, type RunnerHandle } from '../../activities/runner-process.ts';
import { EXIT_CODES, type RunnerEvent } from '../../src/runner/protocol.ts';
import { repoRoot, SMALL_CMNIST_TRIAL, tempDir, waitUntil } from './harness.ts';

/**
 * Spare (warm) trial runners (activities/runner-pool.ts, src/cli/warm.ts) on the real runner bundle with no-op
 * trials: a spare runs its trial exactly as a fresh runner would (events, result, exit code, resume from its
 * checkpoint), a spare that dies is noticed and replaced, a trial whose profile (environment, backend) differs from
 * the spare's gets a fresh runner, cancellation kills the runner's process group, and spares die with their worker.
 */
let command: string[];
const scratch = tempDir('mmsweep-warm-runner-');
const pools: RunnerPool[] = [];

beforeAll(async () => {
  command = await bundledRunnerPrefix();
});

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  rmSync(scratch, { recursive: true, force: true });
});

function pool(capacity = 1, trialsPerRunner = 1): RunnerPool {
  const p = new RunnerPool({ capacity, trialsPerRunner });
  pools.push(p);
  return p;
}

function profile(env: NodeJS.ProcessEnv = {}, preload = 'none'): RunnerProfile {
  return { command, preload, env: { ...process.env, ...env }, cwd: repoRoot };
}

let trials = 0;
/** A no-op trial's spec file and checkpoint directory, and the `train` arguments the worker sends. */
function noopTrial(spec: { sleepMs: number; epochs: number; seed?: number }): { argv: string[]; dir: string } {
  const dir = path.join(scratch, `trial-${trials++}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ kind: 'noop', seed: 0, ...spec }));
  return { dir, argv: ['train', '--spec', path.join(dir, 'spec.json'), '--checkpoint-dir', dir, '--resume', '--events', '--json'] };
}

async function run(runner: RunnerHandle, argv: string[], onEvent?: (e: RunnerEvent) => void) {
  const events: RunnerEvent[] = [];
  runner.setEventListener((e) => {
    events.push(e);
    onEvent?.(e);
  });
  runner.sendTrial(argv);
  const exit = await runner.exited;
  return { exit, events };
}

/** One trial on a runner that may take several: its events and how it ended (TRIAL_END or the process's exit). */
async function runOne(runner: RunnerHandle, argv: string[]) {
  const events: RunnerEvent[] = [];
  runner.setEventListener((e) => events.push(e));
  runner.sendTrial(argv);
  const end = await runner.trialEnd();
  return { end, events };
}

/** Whether a process runs (a zombie nobody reaped yet counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A process's environment variable as Linux shows it (the lifeline's: the runner inherits it unchanged). */
function environOf(pid: number, name: string): string | undefined {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  return entries.find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1);
}

describe('warm trial runners', () => {
  it('a spare runs its trial like a fresh runner: events, result, exit code', async () => {
    const p = pool();
    const first = await p.acquire(profile());
    expect(first.spare).toBe(false);
    const a = noopTrial({ sleepMs: 0, epochs: 2 });
    const fresh = await run(first.runner, a.argv);
    expect(fresh.exit.code).toBe(EXIT_CODES.success);
    expect(fresh.events.map((e) => e.type)).toEqual(['start', 'progress', 'epoch', 'progress', 'epoch', 'result']);

    // The trial above left one spare behind, started while it ran.
    expect(p.waiting()).toHaveLength(1);
    const sparePid = p.waiting()[0]!.pid;
    const second = await p.acquire(profile());
    expect(second).toMatchObject({ spare: true, replaced: false });
    expect(second.runner.pid).toBe(sparePid);
    const b = noopTrial({ sleepMs: 0, epochs: 2, seed: 1 });
    const warm = await run(second.runner, b.argv);
    expect(warm.exit.code).toBe(EXIT_CODES.success);
    expect(warm.events.map((e) => e.type)).toEqual(fresh.events.map((e) => e.type));
    expect(warm.events.at(-1)).toMatchObject({ type: 'result', result: { epochs: 2, diverged: false } });
    expect(alive(sparePid)).toBe(false); // one trial per process: it exited after it
  });

  it('a ready spare gets its trial before its successor starts; a spare still loading has its successor started at once', async () => {
    const p = pool();
    // No spare yet: the fresh runner is still loading when taken, so the next spare starts beside it.
    const seen: number[] = [];
    const first = await p.acquire(profile(), { onReady: () => void seen.push(p.waiting().length) });
    expect(seen).toEqual([1]);
    await run(first.runner, noopTrial({ sleepMs: 0, epochs: 1 }).argv);
    // That spare is ready now: the trial goes to it first, and only then does the next spare start.
    expect(await p.waiting()[0]!.ready).toBe(true);
    const second = await p.acquire(profile(), { onReady: () => void seen.push(p.waiting().length) });
    expect(second.spare).toBe(true);
    expect(seen).toEqual([1, 0]);
    expect(p.waiting()).toHaveLength(1);
    await run(second.runner, noopTrial({ sleepMs: 0, epochs: 1, seed: 2 }).argv);
  });

  it('a spare that dies while it waits is noticed and replaced by a fresh one', async () => {
    const p = pool();
    const { runner } = await p.acquire(profile());
    await run(runner, noopTrial({ sleepMs: 0, epochs: 1 }).argv);
    const spare = p.waiting()[0]!;
    expect(await spare.ready).toBe(true);
    signalGroup(spare.pid, 'SIGKILL');
    await waitUntil(() => p.stats.diedIdle === 1 && p.waiting().length === 1, 30_000, () => `pool ${JSON.stringify(p.stats)}`);
    const replacement = p.waiting()[0]!;
    expect(replacement.pid).not.toBe(spare.pid);
    const next = await p.acquire(profile());
    expect(next.runner.pid).toBe(replacement.pid);
    const { exit, events } = await run(next.runner, noopTrial({ sleepMs: 0, epochs: 1 }).argv);
    expect(exit.code).toBe(EXIT_CODES.success);
    expect(events.at(-1)?.type).toBe('result');
  });

  it('a runner that dies before it is ready is replaced once, and the trial runs on the next one', async () => {
    const p = pool();
    const killed: number[] = [];
    const acquired = await p.acquire(profile(), {
      onRunner: (r) => {
        // The first runner is killed while it is still loading (a spare lost to the OOM killer, say).
        if (killed.length === 0) {
          killed.push(r.pid);
          signalGroup(r.pid, 'SIGKILL');
        }
      },
    });
    expect(acquired.replaced).toBe(true);
    expect(acquired.runner.pid).not.toBe(killed[0]);
    const { exit, events } = await run(acquired.runner, noopTrial({ sleepMs: 0, epochs: 1 }).argv);
    expect(exit.code).toBe(EXIT_CODES.success);
    expect(events.at(-1)?.type).toBe('result');
  });

  it('a trial whose environment or backend differs from the spare gets a fresh runner with its own settings', async () => {
    const p = pool();
    const one = await p.acquire(profile({ TF_NUM_INTRAOP_THREADS: '1' }));
    await run(one.runner, noopTrial({ sleepMs: 0, epochs: 1 }).argv);
    const spare = p.waiting()[0]!;
    expect(environOf(spare.pid, 'TF_NUM_INTRAOP_THREADS')).toBe('1');

    const two = await p.acquire(profile({ TF_NUM_INTRAOP_THREADS: '2' }));
    expect(two.spare).toBe(false);
    expect(two.runner.pid).not.toBe(spare.pid);
    expect(environOf(two.runner.pid, 'TF_NUM_INTRAOP_THREADS')).toBe('2');
    expect(p.stats.mismatched).toBe(1);
    // One spare per slot: the mismatched one made room for a spare of the new settings.
    await waitUntil(() => !alive(spare.pid), 10_000, () => `old spare ${spare.pid} still alive`);
    expect(p.waiting().map((r) => environOf(r.pid, 'TF_NUM_INTRAOP_THREADS'))).toEqual(['2']);
    const { exit } = await run(two.runner, noopTrial({ sleepMs: 0, epochs: 1 }).argv);
    expect(exit.code).toBe(EXIT_CODES.success);

    const cpu = await p.acquire(profile({ TF_NUM_INTRAOP_THREADS: '2' }, 'cpu'));
    expect(cpu.spare).toBe(false);
    await cpu.runner.kill(1_000);
  });

  it('cancellation kills a running warm runner; the next one resumes from its checkpoint', async () => {
    const p = pool();
    const trial = noopTrial({ sleepMs: 2_000, epochs: 2, seed: 7 });
    // First attempt: epoch 1 is checkpointed, then the trial is cancelled in epoch 2.
    const first = await p.acquire(profile());
    let epochs = 0;
    const cancelled = run(first.runner, trial.argv, (e) => {
      if (e.type === 'epoch' && ++epochs === 1) void first.runner.kill(1_000);
    });
    const { exit, events } = await cancelled;
    expect(exit.signal ?? exit.code).not.toBe(EXIT_CODES.success);
    expect(events.some((e) => e.type === 'result')).toBe(false);
    expect(alive(first.runner.pid)).toBe(false);

    // Second attempt on the spare: resumes after epoch 1 and finishes.
    const second = await p.acquire(profile());
    expect(second.spare).toBe(true);
    const resumed = await run(second.runner, trial.argv);
    expect(resumed.exit.code).toBe(EXIT_CODES.success);
    expect(resumed.events[0]).toMatchObject({ type: 'start', resumedFromEpoch: 1 });
    expect(resumed.events.filter((e) => e.type === 'epoch').map((e) => (e.type === 'epoch' ? e.metrics.epoch : 0))).toEqual([2]);
  });

  it('a spare that is killed before its trial reports the kill, not a result', async () => {
    const p = pool();
    const { runner } = await p.acquire(profile());
    void runner.kill(1_000);
    const exit = await runner.exited;
    expect(exit.signal).toBe('SIGTERM');
    expect(runner.hasExited()).toBe(true);
  });

  it.each(['pdeathsig', 'lifeline'] as const)('runners die with their worker, even one killed with SIGKILL (%s)', async (watch) => {
    expect(defaultParentWatch()).toBe('pdeathsig'); // this machine's: Linux with util-linux's setpriv
    // A stand-in worker: a pool with one spare; it starts a trial of 60 s on the runner it took, prints both pids and waits.
    const script = path.join(scratch, `worker-${watch}.mts`);
    const trial = noopTrial({ sleepMs: 60_000, epochs: 1 });
    writeFileSync(
      script,
      [
        `import { RunnerPool } from ${JSON.stringify(path.join(repoRoot, 'activities', 'runner-pool.ts'))};`,
        `const p = new RunnerPool({ capacity: 1, parentWatch: ${JSON.stringify(watch)} });`,
        `const { runner } = await p.acquire(${JSON.stringify(profile())});`,
        `runner.sendTrial(${JSON.stringify(trial.argv)});`,
        `await new Promise((resolve) => runner.setEventListener((e) => e.type === 'start' && resolve(undefined)));`,
        `console.log(JSON.stringify({ taken: runner.pid, spare: p.waiting()[0].pid }));`,
        `setInterval(() => {}, 1000);`,
      ].join('\n'),
    );
    const worker = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let pids: { taken: number; spare: number };
    // The stand-in worker never exits by itself: it goes at the end of the checks whatever they find.
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        worker.stdout!.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(out.split('\n')[0]!);
        });
        worker.once('exit', (code) => reject(new Error(`stand-in worker exited with ${code}`)));
      });
      pids = JSON.parse(line) as { taken: number; spare: number };
      expect(alive(pids.taken) && alive(pids.spare)).toBe(true);
      // The worker's children: under pdeathsig the runners themselves, else their lifelines.
      const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      const isLifeline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('lifeline.mjs');
      for (const pid of [pids.taken, pids.spare]) {
        expect(parentOf(pid)).toBe(worker.pid);
        expect(isLifeline(pid)).toBe(watch === 'lifeline');
      }
    } finally {
      worker.kill('SIGKILL');
    }
    await waitUntil(() => !alive(pids.taken) && !alive(pids.spare), 20_000, () => `runners ${JSON.stringify(pids)} outlived their worker`);
  });

  it('a runner whose worker is gone before it starts (orphaned before the death signal was armed) exits without training', async () => {
    const trial = noopTrial({ sleepMs: 0, epochs: 1 });
    // Its parent is this test process, not the pid it is told: as if its worker had died and it had been re-parented.
    const child = spawn(command[0]!, [...command.slice(1), ...trial.argv], {
      cwd: repoRoot,
      env: { ...process.env, MMSWEEP_RUNNER_PARENT: '999999999' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(EXIT_CODES.crash);
    expect(err).toMatch(/its worker \(pid 999999999\) is gone; not starting/);
    expect(out).toBe('');
    expect(readdirSync(trial.dir)).toEqual(['spec.json']); // no checkpoint written
  });
});

describe('runners that take several trials (MMSWEEP_RUNNER_TRIALS)', () => {
  it('one process takes up to n trials and is the slot\'s spare between them; its successor starts with its last', async () => {
    const p = pool(1, 3);
    const first = await p.acquire(profile());
    const pid = first.runner.pid;
    expect(p.waiting()).toHaveLength(0); // it comes back: no successor started for it
    const ends = [];
    for (let trial = 1; trial <= 3; trial++) {
      const taken = trial === 1 ? first : await p.acquire(profile());
      expect(taken.runner.pid).toBe(pid);
      expect(taken.spare).toBe(trial > 1);
      // Only the last trial it may take has a successor started beside it.
      expect(p.waiting()).toHaveLength(trial === 3 ? 1 : 0);
      const { end, events } = await runOne(taken.runner, noopTrial({ sleepMs: 0, epochs: 2, seed: trial }).argv);
      expect(events.map((e) => e.type)).toEqual(['start', 'progress', 'epoch', 'progress', 'epoch', 'result']);
      expect(events.at(-1)).toMatchObject({ type: 'result', result: { epochs: 2, diverged: false } });
      ends.push({ code: end.code, reusable: end.reusable });
      if (end.reusable) p.giveBack(profile(), taken.runner);
    }
    expect(ends).toEqual([
      { code: 0, reusable: true },
      { code: 0, reusable: true },
      { code: 0, reusable: false }, // the third ends the process
    ]);
    await waitUntil(() => !alive(pid), 10_000, () => `runner ${pid} outlived its last trial`);
    expect(p.waiting()).toHaveLength(1);
    expect(p.waiting()[0]!.pid).not.toBe(pid);
    expect(p.stats).toMatchObject({ started: 2, givenBack: 2 });
  });

  it('a trial that fails ends its process as a one-trial runner\'s would, and the next trial gets a fresh one', async () => {
    const p = pool(1, 5);
    const { runner } = await p.acquire(profile());
    const bad = noopTrial({ sleepMs: 0, epochs: 1 });
    writeFileSync(path.join(bad.dir, 'spec.json'), JSON.stringify({ kind: 'noop', sleepMs: -1 }));
    const { end } = await runOne(runner, bad.argv);
    expect(end).toMatchObject({ code: EXIT_CODES.invalidSpec, reusable: false });
    expect(end.stderrTail).toMatch(/sleepMs/);
    await waitUntil(() => p.waiting().length === 1, 10_000, () => 'no successor started for the runner that ended');
    const next = await p.acquire(profile());
    expect(next.runner.pid).not.toBe(runner.pid);
    const { end: ok } = await runOne(next.runner, noopTrial({ sleepMs: 0, epochs: 1 }).argv);
    expect(ok).toMatchObject({ code: 0, reusable: true });
    p.giveBack(profile(), next.runner);
  });

  it('a real CMNIST trial on the native backend gives the same result on a runner that trained another trial before', async () => {
    const spec = (seed: number) => ({ ...SMALL_CMNIST_TRIAL, backend: 'tensorflow', maxEpochs: 2, seed });
    const trial = (seed: number) => {
      const t = noopTrial({ sleepMs: 0, epochs: 1 });
      writeFileSync(path.join(t.dir, 'spec.json'), JSON.stringify(spec(seed)));
      return t;
    };
    const reused = pool(1, 2);
    const a = await reused.acquire(profile({}, 'tensorflow'));
    const other = await runOne(a.runner, trial(11).argv);
    expect(other.end, other.end.stderrTail).toMatchObject({ code: 0, reusable: true });
    reused.giveBack(profile({}, 'tensorflow'), a.runner);
    const b = await reused.acquire(profile({}, 'tensorflow'));
    expect(b.runner.pid).toBe(a.runner.pid);
    const second = await runOne(b.runner, trial(12).argv);

    const fresh = pool(1, 1);
    const c = await fresh.acquire(profile({}, 'tensorflow'));
    expect(c.runner.pid).not.toBe(a.runner.pid);
    const alone = await runOne(c.runner, trial(12).argv);

    // Everything but the wall clock: every epoch's metrics and the result.
    const outcome = (events: RunnerEvent[]) => {
      expect(events.at(-1)?.type).toBe('result');
      return events
        .filter((e) => e.type === 'epoch' || e.type === 'result')
        .map((e) => {
          const { wallSeconds: _wall, ...rest } = (e.type === 'epoch' ? e.metrics : e.type === 'result' ? e.result : {}) as { wallSeconds?: number };
          return rest;
        });
    };
    expect(outcome(second.events)).toEqual(outcome(alone.events));
    expect(outcome(second.events)).not.toEqual(outcome(other.events)); // another seed: another outcome
  }, 240_000);

  it('a runner that finishes its trial but ends instead of coming back: the worker logs its reason and starts a successor', async () => {
    // A stand-in runner that ends as src/cli/warm.ts does after a trial that left tensors alive.
    const script = path.join(scratch, 'leaky-runner.mjs');
    writeFileSync(
      script,
      [
        `process.stdout.write('@mmsweep-ready\\n');`,
        `process.stdin.once('data', () => {`,
        `  process.stderr.write('mmsweep warm runner: the trial left 3 tensors alive; not taking another trial\\n');`,
        `  process.exit(0);`,
        `});`,
      ].join('\n'),
    );
    const logged: string[] = [];
    const p = new RunnerPool({ capacity: 1, trialsPerRunner: 3, log: (m) => logged.push(m) });
    pools.push(p);
    const stand: RunnerProfile = { command: [process.execPath, script], preload: 'none', env: process.env, cwd: repoRoot };
    const { runner } = await p.acquire(stand);
    expect(p.waiting()).toHaveLength(0);
    const { end } = await runOne(runner, ['train']);
    expect(end).toMatchObject({ code: 0, reusable: false });
    await waitUntil(() => p.waiting().length === 1, 10_000, () => 'no successor started');
    expect(logged).toEqual([`trial runner ${runner.pid} ended after its trial: the trial left 3 tensors alive; not taking another trial`]);
  });

  it('a warm runner started with bad arguments exits 2 naming the expected form, before it says READY', async () => {
    for (const args of [['--preload', 'none', '--trials', '0'], ['--preload', 'none', '--trials', 'x'], ['--preload', 'bogus'], ['--preload', 'none', '--trial', '3']]) {
      const child = spawn(command[0]!, [...command.slice(1), 'warm', ...args], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code, args.join(' ')).toBe(EXIT_CODES.invalidSpec);
      expect(err).toMatch(/mmsweep warm runner: expected '--preload <none\|.*> \[--trials <n ≥ 1>\]', got/);
      expect(out).toBe('');
    }
  });

  it('takes another trial only after a result or divergence that left no tensor alive and used no GPU, and n trials at most', () => {
    const after = (over: Partial<Parameters<typeof takesAnotherTrial>[0]>) =>
      takesAnotherTrial({ trial: 1, trials: 3, code: EXIT_CODES.success, tensorsBefore: 40, tensorsAfter: 40, gpu: false, ...over });
    expect(after({})).toBe(true);
    expect(after({ code: EXIT_CODES.diverged })).toBe(true);
    expect(after({ tensorsBefore: null, tensorsAfter: null })).toBe(true); // a no-op runner: no tfjs loaded
    expect(after({ tensorsAfter: 39 })).toBe(true);
    expect(after({ tensorsAfter: 41 })).toBe('leaked');
    expect(after({ trial: 3 })).toBe('last');
    expect(after({ gpu: true })).toBe('gpu');
    for (const code of [EXIT_CODES.crash, EXIT_CODES.invalidSpec, EXIT_CODES.missingData, 130]) expect(after({ code })).toBe('failed');
  });

  it('MMSWEEP_RUNNER_TRIALS: 20 by default, 1 to 10000, anything else refused naming the variable (mmsweep worker: exit 2)', async () => {
    expect(trialsPerRunnerFromEnv({})).toBe(20);
    expect(trialsPerRunnerFromEnv({ MMSWEEP_RUNNER_TRIALS: '1' })).toBe(1);
    expect(trialsPerRunnerFromEnv({ MMSWEEP_RUNNER_TRIALS: '10000' })).toBe(10_000);
    for (const bad of ['0', '-1', '2.5', '1e3', ' 3', '10001', 'many']) expect(() => trialsPerRunnerFromEnv({ MMSWEEP_RUNNER_TRIALS: bad })).toThrow(/MMSWEEP_RUNNER_TRIALS must be a whole number from 1/);
    const out = await runMmsweep(['worker', '--queue', 'nowhere'], { MMSWEEP_RUNNER_TRIALS: '0', TEMPORAL_ADDRESS: '127.0.0.1:1', DATABASE_URL: 'postgres://u:secret@127.0.0.1:1/x' });
    expect(out.exitCode).toBe(2);
    expect(out.stderr).toMatch(/MMSWEEP_RUNNER_TRIALS must be a whole number from 1 \(a process per trial\) to 10000, got "0"/);
    expect(out.stderr).not.toMatch(/secret/);
  });
});

describe('MMSWEEP_SPARE_RUNNERS', () => {
  it('is one spare per slot by default, none with 0, and anything else is refused naming the variable', () => {
    expect(spareRunnersFromEnv(4, {})).toBe(4);
    expect(spareRunnersFromEnv(4, { MMSWEEP_SPARE_RUNNERS: '1' })).toBe(4);
    expect(spareRunnersFromEnv(4, { MMSWEEP_SPARE_RUNNERS: '0' })).toBe(0);
    for (const bad of ['2', 'yes', '-1', ' 0']) expect(() => spareRunnersFromEnv(4, { MMSWEEP_SPARE_RUNNERS: bad })).toThrow(/MMSWEEP_SPARE_RUNNERS must be 0 .* or 1/);
  });

  it('mmsweep worker refuses a bad value with exit code 2 before connecting anywhere', async () => {
    const out = await runMmsweep(['worker', '--queue', 'nowhere'], { MMSWEEP_SPARE_RUNNERS: 'many', TEMPORAL_ADDRESS: '127.0.0.1:1', DATABASE_URL: 'postgres://u:secret@127.0.0.1:1/x' });
    expect(out.exitCode).toBe(2);
    expect(out.stderr).toMatch(/MMSWEEP_SPARE_RUNNERS must be 0 \(no spare runners\) or 1 .*got "many"/);
    expect(out.stderr).not.toMatch(/secret/);
  });
});

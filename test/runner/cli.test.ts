import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TrialResult } from '../../src/spec/contracts.ts';
import { EVENT_LINE_PREFIX, EXIT_CODES, type RunnerEvent } from '../../src/runner/protocol.ts';
import { readCheckpointFile } from '../../src/train/checkpoint.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-cli-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  events: RunnerEvent[];
}

/** The pid of the newest `train` child, for tests that kill it from outside the event stream. */
const runningPid: { value: number | undefined } = { value: undefined };

/** Run `mmsweep train …`; `killAfter` kills the process once an event matches (simulating a crash). */
function train(args: string[], killAfter?: (e: RunnerEvent) => boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/mmsweep.js', 'train', ...args], { cwd: repo, env: { ...process.env, MMSWEEP_BACKEND: '' } });
    runningPid.value = child.pid;
    let stdout = '';
    let stderr = '';
    const events: RunnerEvent[] = [];
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith(EVENT_LINE_PREFIX)) continue;
        const event = JSON.parse(line.slice(EVENT_LINE_PREFIX.length)) as RunnerEvent;
        events.push(event);
        if (killAfter?.(event)) child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, events }));
  });
}

const writeSpec = (spec: object) => {
  const file = path.join(tmp(), 'spec.json');
  fs.writeFileSync(file, JSON.stringify(spec));
  return file;
};

describe('mmsweep train (CLI)', () => {
  it('rejects an invalid spec before any work, naming the field (exit 2)', async () => {
    const r = await train(['--lr', '-1', '--seed', '1', '--algorithm', 'greedy', '--json']);
    expect(r.code).toBe(EXIT_CODES.invalidSpec);
    expect(r.stderr).toMatch(/lr:/);
    expect(r.stderr).toMatch(/algorithm:/);
    expect(r.stdout).toBe('');
  });

  it('--resume without --checkpoint-dir is invalid input', async () => {
    const r = await train(['--lr', '0.1', '--seed', '1', '--resume']);
    expect(r.code).toBe(EXIT_CODES.invalidSpec);
    expect(r.stderr).toMatch(/--checkpoint-dir/);
  });

  it('runs a noop trial with events and checkpoints, and resumes it after a kill', async () => {
    const spec = writeSpec({ kind: 'noop', epochs: 4, sleepMs: 300 });
    const dir = tmp();
    const killed = await train(['--spec', spec, '--events', '--checkpoint-dir', dir], (e) => e.type === 'epoch' && e.metrics.epoch === 2);
    expect(killed.code).not.toBe(0);
    const epochsBefore = killed.events.filter((e) => e.type === 'epoch');
    expect(epochsBefore.length).toBeGreaterThanOrEqual(2);
    const ref = epochsBefore[1].type === 'epoch' ? epochsBefore[1].checkpoint : null;
    expect(ref && fs.existsSync(ref.path)).toBe(true);
    expect(readCheckpointFile<{ epoch: number }>(ref!.path).payload.epoch).toBe(2);

    const resumed = await train(['--spec', spec, '--events', '--json', '--checkpoint-dir', dir, '--resume']);
    expect(resumed.code).toBe(0);
    const start = resumed.events[0];
    expect(start.type).toBe('start');
    const from = start.type === 'start' ? start.resumedFromEpoch! : -1;
    expect(from).toBeGreaterThanOrEqual(2);
    const epochs = resumed.events.flatMap((e) => (e.type === 'epoch' ? [e.metrics.epoch] : []));
    expect(epochs).toEqual(Array.from({ length: 4 - from }, (_, i) => from + 1 + i));
    const last = resumed.stdout.trim().split('\n').at(-1)!;
    const result = JSON.parse(last) as TrialResult;
    expect(result.epochs).toBe(4);
    expect(resumed.events.at(-1)).toEqual({ type: 'result', result });
  });

  it('survives kill -9 inside an epoch: --resume continues from the mid-epoch checkpoint to the uninterrupted result', async () => {
    // 256 training images in batches of 16: one epoch of 16 steps, checkpointed after every step.
    const common = ['--seed', '4', '--subset', '256', '--subset-val', '64', '--subset-test', '64', '--width', '0.25', '--batch-size', '16',
      '--backend', 'wasm', '--max-epochs', '2', '--lr', '0.01', '--algorithm', 'guided', '--alpha', '0.01', '--events', '--json'];
    const whole = await train(common);
    expect(whole.code, whole.stderr).toBe(0);

    const dir = tmp();
    const midFile = path.join(dir, 'mid-epoch.ckpt');
    let killedAtStep = 0;
    const killed = await new Promise<Run>((resolve, reject) => {
      const running = train([...common, '--checkpoint-dir', dir, '--mid-epoch-checkpoint-minutes', '0']);
      // Poll the checkpoint (written by rename, so always whole) and kill -9 once epoch 2 is half done.
      const timer = setInterval(() => {
        if (!fs.existsSync(midFile)) return;
        try {
          const payload = readCheckpointFile<{ epoch: number; midEpoch: { stepInEpoch: number } }>(midFile).payload;
          if (payload.epoch === 1 && payload.midEpoch.stepInEpoch >= 8 && killedAtStep === 0) {
            killedAtStep = payload.midEpoch.stepInEpoch;
            const pid = runningPid.value;
            if (pid) process.kill(pid, 'SIGKILL');
          }
        } catch {
          // Renamed away between the check and the read: try again on the next tick.
        }
      }, 20);
      running.then((r) => (clearInterval(timer), resolve(r)), reject);
    });
    expect(killed.code).toBeNull();
    expect(killedAtStep).toBeGreaterThanOrEqual(8);
    expect(killed.events.some((e) => e.type === 'result')).toBe(false);

    const resumed = await train([...common, '--checkpoint-dir', dir, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const start = resumed.events[0]!;
    expect(start).toMatchObject({ type: 'start', resumedFromEpoch: 1 });
    expect(start.type === 'start' && start.resumedAtStep! >= killedAtStep).toBe(true);
    const resultOf = (r: Run) => ({ ...(JSON.parse(r.stdout.trim().split('\n').at(-1)!) as TrialResult), wallSeconds: 0 });
    expect(resultOf(resumed)).toEqual(resultOf(whole));
  });

  it('trains CMNIST briefly on wasm: events, --json result, exit 0; a huge LR diverges with exit 3', async () => {
    const common = ['--seed', '1', '--subset', '64', '--subset-val', '64', '--subset-test', '64', '--width', '0.25', '--batch-size', '32', '--backend', 'wasm', '--max-epochs', '1'];
    const ok = await train([...common, '--lr', '0.01', '--algorithm', 'random', '--events', '--json']);
    expect(ok.stderr).not.toMatch(/Error/);
    expect(ok.code).toBe(0);
    const result = JSON.parse(ok.stdout.trim().split('\n').at(-1)!) as TrialResult;
    for (const k of ['testAcc', 'accF0', 'accF1', 'accF0Prime', 'accF1Prime', 'uM1GivenM0', 'uM0GivenM1', 'dUtil', 'dSpeed', 'rF', 'bestEpoch', 'diverged', 'backend', 'epochs']) {
      expect(result).toHaveProperty(k);
    }
    expect(result.backend).toBe('wasm');
    expect(result.epochs).toBe(1);
    expect(ok.events.map((e) => e.type)).toEqual(expect.arrayContaining(['start', 'progress', 'epoch', 'result']));

    const bad = await train([...common, '--lr', '1e30', '--json']);
    expect(bad.code).toBe(EXIT_CODES.diverged);
    expect(JSON.parse(bad.stdout.trim().split('\n').at(-1)!).diverged).toBe(true);
  });
});

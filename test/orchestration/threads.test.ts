import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledRunnerCommand } from '../../activities/runner-bundle.ts';
import { startStudy } from '../../infra/client.ts';
import type { DevServer } from '../../infra/temporal.ts';
import { resolveCpuSplit, threadEnv } from '../../src/backend/threads.ts';
import { parseStudySpec } from '../../src/spec/study.ts';
import { createDatabase, repoRoot, startTemporal, startWorkerProcess, tempDir, temporalClient, type TestDatabase } from './harness.ts';

/**
 * Threads per trial: how `mmsweep run` / `mmsweep worker` split the cores (slots × threads per slot), that the
 * thread limit reaches every runner process through its environment, and that bad flags exit with code 2.
 */
describe('the core split', () => {
  it('defaults to one single-threaded trial per core', () => {
    expect(resolveCpuSplit({ cores: 2 })).toEqual({ slots: 2, threadsPerSlot: 1, source: 'default' });
    expect(resolveCpuSplit({ cores: 8 })).toEqual({ slots: 8, threadsPerSlot: 1, source: 'default' });
  });

  it('shares the cores evenly when only one of the two is given', () => {
    expect(resolveCpuSplit({ cores: 8, slots: 2 })).toEqual({ slots: 2, threadsPerSlot: 4, source: 'flags' });
    expect(resolveCpuSplit({ cores: 8, slots: 3 })).toEqual({ slots: 3, threadsPerSlot: 2, source: 'flags' });
    expect(resolveCpuSplit({ cores: 8, threadsPerSlot: 8 })).toEqual({ slots: 1, threadsPerSlot: 8, source: 'flags' });
    expect(resolveCpuSplit({ cores: 2, slots: 4 })).toEqual({ slots: 4, threadsPerSlot: 1, source: 'flags' });
  });

  it('gives one slot per GPU and shares the cores between them', () => {
    expect(resolveCpuSplit({ cores: 16, gpus: 4 })).toEqual({ slots: 4, threadsPerSlot: 4, source: 'gpus' });
  });

  it('limits both TensorFlow pools through the environment', () => {
    expect(threadEnv({ threadsPerSlot: 3 })).toEqual({ TF_NUM_INTRAOP_THREADS: '3', TF_NUM_INTEROP_THREADS: '1' });
  });
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'mmsweep.js'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    // Nowhere to connect: validation must fail before any service is needed.
    env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' },
  });
}

describe('flag validation', () => {
  it.each([
    [['worker', '--queue', 'cpu', '--slots', '0'], /--slots must be a positive integer, got '0'/],
    [['worker', '--queue', 'cpu', '--threads-per-slot', 'two'], /--threads-per-slot must be a positive integer, got 'two'/],
    [['worker', '--queue', 'cpu', '--slots', '1.5'], /--slots must be a positive integer, got '1.5'/],
    [['worker', '--queue', 'gpu', '--gpus', '0,1', '--slots', '3'], /--gpus lists 2 ids but --slots is 3/],
    [['run', 'cmnist-greedy-small', '--slots', '-1'], /--slots must be a positive integer, got '-1'/],
    [['run', 'cmnist-greedy-small', '--threads-per-slot', '0'], /--threads-per-slot must be a positive integer, got '0'/],
  ])('mmsweep %j exits with code 2', (args, message) => {
    const out = cli(args as string[]);
    expect(out.stderr).toMatch(message);
    expect(out.status).toBe(2);
  });
});

describe('the thread environment reaches the runner', () => {
  let server: DevServer;
  let db: TestDatabase;
  const dir = tempDir('mmsweep-threads-');
  const record = path.join(dir, 'runner-env.txt');
  beforeAll(async () => {
    server = await startTemporal(path.join(dir, 'temporal'));
    db = await createDatabase();
  });
  afterAll(async () => {
    await db?.drop();
    await server?.stop();
  });

  it('every runner of `mmsweep worker --slots 2 --threads-per-slot 3` sees 3 intra-op threads and 1 inter-op thread', async () => {
    // A runner command that writes down the environment it was started with, then runs the real runner.
    const wrapper = path.join(dir, 'record-env.mjs');
    writeFileSync(
      wrapper,
      `import { appendFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
appendFileSync(${JSON.stringify(record)}, \`\${process.env.TF_NUM_INTRAOP_THREADS} \${process.env.TF_NUM_INTEROP_THREADS}\\n\`);
const [command, ...args] = process.argv.slice(2);
process.exit(spawnSync(command, args, { stdio: 'inherit' }).status ?? 1);
`,
    );
    const runner = await bundledRunnerCommand();
    const worker = await startWorkerProcess({
      address: server.address,
      databaseUrl: db.url,
      queue: 'threads',
      slots: 2,
      checkpointDir: path.join(dir, 'ckpt'),
      extraArgs: ['--threads-per-slot', '3', '--no-upload-checkpoints'],
      env: { MMSWEEP_RUNNER: [process.execPath, wrapper, ...runner].join(' ') },
    });
    try {
      expect(worker.output()).toMatch(/2 slot\(s\) × 3 thread\(s\) per trial .*TF_NUM_INTRAOP_THREADS=3 TF_NUM_INTEROP_THREADS=1/);
      const client = await temporalClient(server.address);
      const spec = parseStudySpec({
        name: `threads-${Date.now().toString(36)}`,
        queue: 'threads',
        concurrency: 2,
        conditions: [{ label: 'noop', base: { kind: 'noop', sleepMs: 0, epochs: 1 }, seeds: [1, 2, 3] }],
      });
      const { handle } = await startStudy(client, spec);
      const outcome = await handle.result();
      await client.connection.close();
      expect(outcome.counts.done).toBe(3);
      expect(readFileSync(record, 'utf8').trim().split('\n')).toEqual(['3 1', '3 1', '3 1']);
    } finally {
      await worker.stop();
    }
  });
});

import { execFile } from 'node:child_process';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdirSync, readFileSync, existsSync, statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlActivities, createActivities, type ActivityConfig, type ResultsStore } from '../activities/index.ts';
import { runnerBundle } from '../activities/runner-bundle.ts';
import { closeSpareRunners } from '../activities/train-trial.ts';
import { spareRunnersFromEnv } from '../activities/common.ts';
import { CONTROL_TASK_QUEUE, trainTaskQueue } from '../src/spec/study-model.ts';
import { connectionOptions, type TemporalTarget } from './connection.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const workflowsPath = path.join(repoRoot, 'workflows', 'index.ts');

export interface WorkerSetOptions {
  target: TemporalTarget;
  store: ResultsStore;
  /** Worker class: polls `mmsweep-train-<queueClass>`. */
  queueClass: string;
  /** Concurrent trials (one runner process each). */
  slots: number;
  /** Also poll the control queue (study workflows + light activities). Default true. */
  control?: boolean;
  /** Poll the training queue. Default true. */
  train?: boolean;
  activity?: Partial<ActivityConfig>;
  /** An existing connection (the embedded run shares one). */
  connection?: NativeConnection;
  log?: (message: string) => void;
}

export interface WorkerSet {
  /** Resolves when every worker has stopped. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

let bundleCache: Promise<WorkflowBundleWithSourceMap> | null = null;

/** Newest modification time of the sources the workflow bundle is built from. */
function sourcesStamp(): number {
  let newest = 0;
  const visit = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(file);
      else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(file).mtimeMs);
    }
  };
  visit(path.join(repoRoot, 'workflows'));
  visit(path.join(repoRoot, 'src', 'spec'));
  return newest;
}

/** The cached bundle if it was built from the current sources. */
function cachedBundle(file: string, stamp: number): WorkflowBundleWithSourceMap | null {
  if (!existsSync(file)) return null;
  const cached = JSON.parse(readFileSync(file, 'utf8')) as WorkflowBundleWithSourceMap & { stamp: number };
  return cached.stamp === stamp ? { code: cached.code, sourceMap: cached.sourceMap } : null;
}

/**
 * The workflow bundle, built once per process and cached on disk next to the other local state, so that starting
 * several workers (the benchmark starts four) does not run webpack four times. Rebuilt when a source changes, by a
 * child process (infra/bundle-workflows.mjs): webpack would leave ~100 MB in this process's memory for good.
 */
export function workflowBundle(cacheDir = path.join(repoRoot, '.mmsweep', 'cache')): Promise<WorkflowBundleWithSourceMap> {
  bundleCache ??= (async () => {
    const stamp = sourcesStamp();
    const file = path.join(cacheDir, 'workflow-bundle.json');
    const cached = cachedBundle(file, stamp);
    if (cached) return cached;
    mkdirSync(cacheDir, { recursive: true });
    const builder = path.join(repoRoot, 'infra', 'bundle-workflows.mjs');
    await new Promise<void>((resolve, reject) => {
      execFile(process.execPath, [builder, workflowsPath, file, String(stamp)], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) => {
        if (error) reject(new Error(`building the workflow bundle failed: ${stderr.trim() || error.message}`));
        else resolve();
      });
    });
    const built = cachedBundle(file, stamp);
    if (!built) throw new Error(`building the workflow bundle wrote no bundle of the current sources to ${file}`);
    return built;
  })();
  return bundleCache;
}

let runtimeInstalled = false;

/** The SDK logs every worker state change at INFO; keep warnings and errors only (MMSWEEP_TEMPORAL_LOG overrides). */
export function installQuietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    const level = (process.env.MMSWEEP_TEMPORAL_LOG ?? 'WARN') as 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
    // A training-only worker registers no workflows on purpose: the SDK's warning about it is noise.
    const logger = new DefaultLogger(level, (entry) => {
      if (entry.message.startsWith('No workflows registered')) return;
      const meta = entry.meta && Object.keys(entry.meta).length ? ` ${JSON.stringify(entry.meta)}` : '';
      process.stderr.write(`${new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString()} [${entry.level}] ${entry.message}${meta}\n`);
    });
    Runtime.install({ logger });
  } catch {
    // Already installed by the embedding process: keep its logger.
  }
}

/** Start the workers of one machine: the training queue of its class with `slots` slots, plus the control queue. */
export async function startWorkers(options: WorkerSetOptions): Promise<WorkerSet> {
  installQuietRuntime();
  const connection =
    options.connection ?? (await NativeConnection.connect(connectionOptions(options.target) as Parameters<typeof NativeConnection.connect>[0]));
  // Build (or check) the trial runner bundle before polling, so the first trials do not wait for it.
  if (options.train !== false && !options.activity?.runnerCommand) await runnerBundle();
  const activities = createActivities(options.store, {
    spareRunners: spareRunnersFromEnv(options.train === false ? 0 : options.slots),
    ...options.activity,
    gpus: options.activity?.gpus ?? [],
  });
  const workers: Worker[] = [];
  if (options.train !== false) {
    workers.push(
      await Worker.create({
        connection,
        namespace: options.target.namespace,
        taskQueue: trainTaskQueue(options.queueClass),
        activities: { trainTrial: activities.trainTrial },
        maxConcurrentActivityTaskExecutions: options.slots,
        // Heartbeats carry the epoch a trial is at; the SDK's default throttle (up to 60 s) would leave progress
        // views a minute behind. One small heartbeat per trial every 5 s is negligible load for the server.
        maxHeartbeatThrottleInterval: '5 seconds',
        defaultHeartbeatThrottleInterval: '5 seconds',
        // Ctrl-C: cancel running trials quickly; their attempts fail and are retried from checkpoints.
        shutdownGraceTime: '2 seconds',
      }),
    );
  }
  if (options.control !== false) {
    workers.push(
      await Worker.create({
        connection,
        namespace: options.target.namespace,
        taskQueue: CONTROL_TASK_QUEUE,
        workflowBundle: await workflowBundle(),
        activities: controlActivities(activities),
        maxConcurrentActivityTaskExecutions: 4,
        shutdownGraceTime: '2 seconds',
      }),
    );
  }
  if (workers.length === 0) throw new Error('nothing to run: both the control and the training queue are disabled');
  const done = Promise.all(workers.map((w) => w.run())).then(async () => {
    // Spares would die with this process anyway (their lifelines watch it); stopping them now is tidier.
    await closeSpareRunners(activities.trainTrial);
    if (!options.connection) await connection.close();
  });
  return {
    done,
    async shutdown() {
      for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}

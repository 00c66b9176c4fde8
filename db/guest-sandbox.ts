import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { DbHandle } from './client.ts';
import { checkGuestQuery, QueryError, runReadOnlyQuery, type RawSession, type RawTx, type ReadOnlyResult } from './readonly.ts';

/**
 * Issue 17, S2: a guest query on the embedded database must be bounded and must never stall the study of the
 * process that holds the database. PGlite runs a statement to its end on the thread that called it (no statement
 * timeout, no cancel), and on the owner that thread also serves the study. So a guest query never runs there: the
 * owner hands out a snapshot (PGlite's dumpDataDir, a consistent tar of the data directory), and the guest's own
 * process opens it in a PGlite of its own, in a worker thread that is terminated when --timeout expires. Whatever
 * the query does — sleep, build a huge value, write — it does to a throw-away copy, on another thread.
 */

/** Figures of one sandboxed query, for `mmsweep sql` under MMSWEEP_DEBUG and the benchmark. */
export interface SandboxFigures {
  snapshotBytes: number;
  /** Taking the snapshot, as seen by the guest (owner's dump and the transfer). */
  snapshotMs: number;
  /** Starting the worker and opening the snapshot in it (PGlite start-up and crash recovery). */
  loadMs: number;
}

const workerUrl = new URL('./guest-sandbox-worker.mjs', import.meta.url);

/** The error a statement gets when the deadline passes: Postgres's own code for a statement timeout. */
function timedOut(): Error {
  return Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' });
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** A PGlite in a worker thread, opened from a snapshot; one transaction, then closed. */
export class GuestSandbox implements RawSession {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Why the worker can take no more statements (it was stopped, or it died), once it cannot. */
  private gone: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (message: { id: number; rows?: unknown[]; error?: { message: string; code?: string } }) => {
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      if (message.error) waiting.reject(Object.assign(new Error(message.error.message), { code: message.error.code }));
      else waiting.resolve({ rows: message.rows ?? [] });
    });
    // A worker that dies (PGlite aborting on memory, say) fails what it was running.
    worker.on('error', (error) => this.stop(new Error(`the query's database stopped: ${error.message}`)));
    worker.on('exit', () => this.stop(new Error("the query's database stopped")));
  }

  static async start(snapshot: Uint8Array): Promise<GuestSandbox> {
    // Hand the bytes over rather than copy them, when this view owns its buffer.
    const own = snapshot.byteOffset === 0 && snapshot.byteLength === snapshot.buffer.byteLength ? snapshot : snapshot.slice();
    const worker = new Worker(workerUrl, { workerData: { snapshot: own }, transferList: [own.buffer as ArrayBuffer] });
    type Ready = { ready: boolean; error?: { message: string } };
    const listeners: { message?: (m: Ready) => void; error?: (e: Error) => void; exit?: (code: number) => void } = {};
    const ready = await new Promise<Ready>((resolve) => {
      listeners.message = resolve;
      listeners.error = (error) => resolve({ ready: false, error: { message: error.message } });
      listeners.exit = (code) => resolve({ ready: false, error: { message: `its thread exited with code ${code}` } });
      worker.once('message', listeners.message).once('error', listeners.error).once('exit', listeners.exit);
    });
    // Only these: removeAllListeners() would also drop the ones Node's Worker keeps for itself.
    worker.off('message', listeners.message!).off('error', listeners.error!).off('exit', listeners.exit!);
    if (!ready.ready) {
      await worker.terminate();
      throw new QueryError(`cannot open the snapshot of the embedded database: ${ready.error?.message}`, undefined);
    }
    return new GuestSandbox(worker);
  }

  private stop(why: Error): void {
    if (this.gone) return;
    this.gone = why;
    void this.worker.terminate();
    for (const waiting of this.pending.values()) waiting.reject(why);
    this.pending.clear();
  }

  /** One statement; if it is still running after `timeoutMs`, the worker is terminated (as statement_timeout, per statement). */
  private async send(kind: 'exec' | 'query', statement: string, timeoutMs: number, params?: unknown[]): Promise<unknown> {
    if (this.gone) throw this.gone;
    const id = this.nextId++;
    const timer = setTimeout(() => this.stop(timedOut()), timeoutMs);
    try {
      return await new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.worker.postMessage({ id, kind, statement, params });
      });
    } finally {
      clearTimeout(timer);
    }
  }

  async transaction(body: (tx: RawTx) => Promise<void>, { timeoutMs }: { timeoutMs: number }): Promise<void> {
    const tx: RawTx = {
      exec: async (statement) => {
        await this.send('exec', statement, timeoutMs);
      },
      query: (statement, params) => this.send('query', statement, timeoutMs, params),
    };
    await tx.exec('begin');
    try {
      await body(tx);
    } finally {
      // Only a copy: rolled back for form's sake, and the copy is discarded.
      if (!this.gone) await tx.exec('rollback').catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.stop(new Error('closed'));
    await this.worker.terminate();
  }
}

/**
 * `mmsweep sql`'s query: on a Postgres server, runReadOnlyQuery there (the server enforces the statement timeout);
 * on the embedded database, runReadOnlyQuery on a snapshot in a GuestSandbox stopped at `timeoutMs`. Either way
 * as the read-only role in a READ ONLY transaction, and a query past the timeout fails with the same QueryError.
 */
export async function runGuestQuery(
  handle: DbHandle,
  query: string,
  options: {
    timeoutMs: number;
    maxRows: number;
    /** Close the handle once the snapshot is taken: a process that holds the database only for this query lets it go. */
    closeAfterSnapshot?: boolean;
    onSandboxReady?: (figures: SandboxFigures) => void;
  },
): Promise<ReadOnlyResult> {
  if (handle.kind !== 'embedded') return runReadOnlyQuery(handle.db, query, options);
  if (!handle.snapshot) throw new Error('runGuestQuery: an embedded database handle without snapshots');
  checkGuestQuery(query); // text that is no query costs the owner no snapshot
  const t0 = performance.now();
  const snapshot = await handle.snapshot();
  if (options.closeAfterSnapshot) await handle.close();
  const t1 = performance.now();
  const snapshotBytes = snapshot.byteLength; // before the bytes move to the worker
  const sandbox = await GuestSandbox.start(snapshot);
  try {
    options.onSandboxReady?.({ snapshotBytes, snapshotMs: t1 - t0, loadMs: performance.now() - t1 });
    return await runReadOnlyQuery(sandbox, query, options);
  } finally {
    await sandbox.close();
  }
}

import { rowsOf, type Db } from './client.ts';

/**
 * `mmsweep sql`: run one user query in a READ ONLY transaction with a statement timeout, and always roll back.
 * Both drivers send it with the extended query protocol, which admits a single statement, so `…; COMMIT;
 * DELETE …` cannot escape the transaction.
 */

export interface ReadOnlyResult {
  columns: string[];
  rows: Record<string, unknown>[];
}

export class ReadOnlyViolationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReadOnlyViolationError';
  }
}

export class QueryError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'QueryError';
  }
}

class Rollback extends Error {}

/** The Postgres error under drizzle's DrizzleQueryError wrapper (postgres.js and PGlite both carry `code`). */
export function postgresErrorOf(error: unknown): { code?: string; message: string } {
  let e: unknown = error;
  for (let depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return { code, message: (e as Error).message };
    e = (e as { cause?: unknown }).cause;
  }
  return { message: error instanceof Error ? error.message : String(error) };
}

/** The minimal surface of a query runner inside the read-only transaction, over either driver. */
interface RawTx {
  exec(statement: string): Promise<void>;
  /** One statement, extended protocol. */
  query(statement: string): Promise<unknown>;
}

interface AdvisoryLock {
  classid: string;
  objid: string;
  objsubid: number;
  mode: string;
}

const advisoryLocksSql = `select classid::text as classid, objid::text as objid, objsubid::int as objsubid, mode
  from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted`;

/** Run `body` inside a transaction on the driver's own client (drizzle's execute() would use the simple protocol on postgres.js). */
async function inRawTransaction(db: Db, body: (tx: RawTx) => Promise<void>): Promise<void> {
  const client = (db as unknown as { $client: unknown }).$client as Record<string, unknown>;
  if (typeof client.unsafe === 'function' && typeof client.begin === 'function') {
    const pg = client as unknown as import('postgres').Sql;
    await pg.begin(async (tx) => {
      await body({
        exec: async (statement) => {
          await tx.unsafe(statement);
        },
        query: (statement) => tx.unsafe(statement, [], { simple: false } as never).then((r) => r) as Promise<unknown>,
      });
    });
    return;
  }
  if (typeof client.transaction === 'function' && typeof client.query === 'function') {
    const pglite = client as unknown as import('@electric-sql/pglite').PGlite;
    await pglite.transaction(async (tx) => {
      await body({
        exec: async (statement) => {
          await tx.exec(statement);
        },
        query: (statement) => tx.query(statement),
      });
    });
    return;
  }
  throw new Error('runReadOnlyQuery: unsupported database client');
}

export async function runReadOnlyQuery(
  db: Db,
  query: string,
  options: { timeoutMs?: number } = {},
): Promise<ReadOnlyResult> {
  const timeoutMs = Math.max(1, Math.round(options.timeoutMs ?? 30_000));
  let output: ReadOnlyResult | undefined;
  let tookLocks: AdvisoryLock[] = [];
  try {
    await inRawTransaction(db, async (tx) => {
      await tx.exec('set transaction read only');
      await tx.exec(`set local statement_timeout = ${timeoutMs}`);
      // Taking the snapshot now makes a later `SET TRANSACTION READ WRITE` fail.
      const held = rowsOf<AdvisoryLock>(await tx.query(advisoryLocksSql));
      const result = await tx.query(query);
      output = { columns: columnsOf(result), rows: rowsOf(result) };
      // Session-level advisory locks are the one side effect a read-only transaction allows and a rollback
      // keeps: release the ones this query took (on PGlite the session is shared with other clients).
      const now = rowsOf<AdvisoryLock>(await tx.query(advisoryLocksSql));
      const key = (l: AdvisoryLock) => `${l.classid}/${l.objid}/${l.objsubid}/${l.mode}`;
      const before = new Set(held.map(key));
      tookLocks = now.filter((l) => !before.has(key(l)));
      for (const lock of tookLocks) await releaseAdvisoryLock(tx, lock);
      throw new Rollback();
    });
  } catch (error) {
    if (error instanceof Rollback) {
      if (tookLocks.length > 0) {
        throw new ReadOnlyViolationError(
          'refused: mmsweep sql runs queries read-only and this one took an advisory lock, a session-level side ' +
            'effect that would outlive the read-only transaction (the lock has been released).',
        );
      }
      return output!;
    }
    const pgError = postgresErrorOf(error);
    if (pgError.code === '25006') {
      throw new ReadOnlyViolationError(
        `refused: mmsweep sql runs queries read-only and this one writes (${pgError.message}). ` +
          `Use psql against the URL from \`mmsweep db url\` if you really mean to change the results store.`,
        { cause: error },
      );
    }
    if (pgError.code === '57014') {
      throw new QueryError(`query cancelled after the ${timeoutMs} ms statement timeout (raise it with --timeout)`, pgError.code, {
        cause: error,
      });
    }
    if (pgError.code === '42601' && /multiple commands/.test(pgError.message)) {
      throw new QueryError('mmsweep sql runs one statement at a time: remove the extra statements', pgError.code, { cause: error });
    }
    throw new QueryError(`query failed: ${pgError.message}`, pgError.code, { cause: error });
  }
  return output!;
}

/** An oid (unsigned 32-bit) back to the signed int4 the lock was taken with. */
const asInt4 = (oid: string) => `((${oid}::int8 + 2147483648) % 4294967296 - 2147483648)::int4`;

/** Undo a session advisory lock (re-entrant: unlock until Postgres says it is no longer held). */
async function releaseAdvisoryLock(tx: RawTx, lock: AdvisoryLock): Promise<void> {
  const shared = lock.mode === 'ShareLock' ? '_shared' : '';
  // objsubid 1: a bigint key split into classid (high) and objid (low); 2: the two-int4 form.
  const call =
    lock.objsubid === 1
      ? `pg_advisory_unlock${shared}(((${lock.classid}::int8 << 32) | ${lock.objid}::int8))`
      : `pg_advisory_unlock${shared}(${asInt4(lock.classid)}, ${asInt4(lock.objid)})`;
  for (let i = 0; i < 1000; i++) {
    const [row] = rowsOf<{ released: boolean }>(await tx.query(`select ${call} as released`));
    if (!row?.released) return;
  }
}

function columnsOf(result: unknown): string[] {
  const r = result as { columns?: { name: string }[]; fields?: { name: string }[]; rows?: unknown[] };
  const described = r.columns ?? r.fields;
  if (Array.isArray(described)) return described.map((c) => c.name);
  const first = rowsOf(result)[0];
  return first ? Object.keys(first) : [];
}

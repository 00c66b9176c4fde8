import { sql } from 'drizzle-orm';
import { rowsOf, type Db } from './client.ts';

/**
 * `mmsweep sql`: run one user query as the read-only role, in a READ ONLY transaction with a statement timeout,
 * and always roll back. The text travels as a parameter of mmsweep_sql.run_read_only(), never spliced into the
 * statement this process sends.
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

/** A guest query refused because its result has more rows than --max-rows. Invalid input: exit 2. */
export class QueryBoundError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'QueryBoundError';
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

/** The minimal surface of a query runner inside the read-only transaction, over either driver or the guest sandbox. */
export interface RawTx {
  exec(statement: string): Promise<void>;
  /** One statement, extended protocol. */
  query(statement: string, params?: unknown[]): Promise<unknown>;
}

interface AdvisoryLock {
  classid: string;
  objid: string;
  objsubid: number;
  mode: string;
}

const advisoryLocksSql = `select classid::text as classid, objid::text as objid, objsubid::int as objsubid, mode
  from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted`;

/** The role `mmsweep sql` runs as, created by db/migrations/0004_hostile_input.sql. */
export const READ_ONLY_ROLE = 'mmsweep_readonly';

/** The read-only role cannot be entered (missing, unsafe, or the connection's role may not SET ROLE to it). */
export class ReadOnlyRoleError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReadOnlyRoleError';
  }
}

/** Built-in roles whose members can read or write server files, run programs or signal other sessions. */
const dangerousRoles = ['pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program', 'pg_signal_backend'];

const roleSafetySql = `select r.rolsuper, r.rolcanlogin, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
    array(select b.rolname::text from pg_roles b
          where b.oid <> r.oid and pg_has_role(r.oid, b.oid, 'MEMBER') order by 1) as member_of,
    (select p.prosecdef and p.proowner = r.oid from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'mmsweep_sql' and p.proname = 'run_read_only') as runner_ok,
    current_user::text as connected_as
  from pg_roles r where r.rolname = '${READ_ONLY_ROLE}'`;

interface RoleSafety {
  rolsuper: boolean;
  rolcanlogin: boolean;
  rolcreaterole: boolean;
  rolcreatedb: boolean;
  rolbypassrls: boolean;
  rolreplication: boolean;
  member_of: string[];
  runner_ok: boolean | null;
  connected_as: string;
}

/** Why the read-only role is unfit to run a guest query, or null when it is fit (checked before every query). */
function roleProblem(row: RoleSafety | undefined): string | null {
  if (!row) {
    return `role ${READ_ONLY_ROLE} does not exist in this server: the migration that creates it needs a user allowed to create roles (run \`mmsweep db migrate\` as one, or infra/distributed/init-roles.sql as a superuser)`;
  }
  const powers = (
    [
      ['SUPERUSER', row.rolsuper],
      ['LOGIN', row.rolcanlogin],
      ['CREATEROLE', row.rolcreaterole],
      ['CREATEDB', row.rolcreatedb],
      ['BYPASSRLS', row.rolbypassrls],
      ['REPLICATION', row.rolreplication],
    ] as const
  )
    .filter(([, has]) => has)
    .map(([name]) => name);
  if (powers.length > 0) return `role ${READ_ONLY_ROLE} has ${powers.join(', ')}: it must be a plain NOLOGIN role (ALTER ROLE ${READ_ONLY_ROLE} NO${powers.join(' NO')})`;
  const memberships = (row.member_of ?? []).filter((name) => name !== READ_ONLY_ROLE);
  if (memberships.length > 0) {
    const dangerous = memberships.filter((name) => dangerousRoles.includes(name));
    return `role ${READ_ONLY_ROLE} is a member of ${memberships.join(', ')}${dangerous.length ? ` (${dangerous.join(', ')} reach server files, programs or other sessions)` : ''}: revoke that membership`;
  }
  if (!row.runner_ok) return `the function mmsweep_sql.run_read_only is missing or not a SECURITY DEFINER function owned by ${READ_ONLY_ROLE}: run \`mmsweep db migrate\` as a user allowed to create roles`;
  return null;
}

/**
 * A database that is not a drizzle client and enforces the statement timeout itself, per statement: the guest
 * sandbox (db/guest-sandbox.ts), a PGlite that cannot honour `statement_timeout` and is stopped from outside instead.
 */
export interface RawSession {
  transaction(body: (tx: RawTx) => Promise<void>, options: { timeoutMs: number }): Promise<void>;
}

function isRawSession(db: Db | RawSession): db is RawSession {
  return !('$client' in db);
}

/** Run `body` inside a transaction on the driver's own client (drizzle's execute() would use the simple protocol on postgres.js). */
async function inRawTransaction(db: Db | RawSession, body: (tx: RawTx) => Promise<void>, timeoutMs: number): Promise<void> {
  if (isRawSession(db)) return db.transaction(body, { timeoutMs });
  const client = (db as unknown as { $client: unknown }).$client as Record<string, unknown>;
  if (typeof client.unsafe === 'function' && typeof client.begin === 'function') {
    const pg = client as unknown as import('postgres').Sql;
    await pg.begin(async (tx) => {
      await body({
        exec: async (statement) => {
          await tx.unsafe(statement);
        },
        query: (statement, params = []) => tx.unsafe(statement, params as never[], { simple: false } as never).then((r) => r) as Promise<unknown>,
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
        query: (statement, params) => tx.query(statement, params),
      });
    });
    return;
  }
  throw new Error('runReadOnlyQuery: unsupported database client');
}

/** The first keyword of a query, after comments and opening parentheses (for the refusal message only). */
function leadingKeyword(query: string): string {
  const stripped = query.replace(/^(\s+|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/|\()*/, '');
  return (/^[A-Za-z_]+/.exec(stripped)?.[0] ?? '').toLowerCase();
}

const queryKeywords = ['select', 'with', 'values', 'table'];

/** A query as the runner's FROM subquery takes it: no trailing semicolons. Empty text is refused by the CLI. */
export function normaliseGuestQuery(query: string): string {
  return query.replace(/[\s;]+$/, '');
}

/** The guest text, normalised, if it starts as a query does; anything else is refused before it costs a thing. */
export function checkGuestQuery(query: string): string {
  const text = normaliseGuestQuery(query);
  const keyword = leadingKeyword(text);
  if (!queryKeywords.includes(keyword)) {
    throw new ReadOnlyViolationError(
      `refused: mmsweep sql runs queries read-only and takes one SELECT, WITH, VALUES or TABLE query; this one starts with ${keyword ? keyword.toUpperCase() : `"${text.slice(0, 20)}"`}. ` +
        'Use psql against the URL from `mmsweep db url` if you really mean to change the results store.',
    );
  }
  return text;
}

/**
 * Run one guest query: READ ONLY transaction, statement timeout, `SET LOCAL ROLE mmsweep_readonly`, and the text
 * inside mmsweep_sql.run_read_only() (see the migration for why the role switch alone is not enough). Always
 * rolled back. PGlite cannot stop a statement once it runs: guest text for the embedded database goes through
 * runGuestQuery (db/guest-sandbox.ts), which runs it here on a throw-away copy that is stopped at the timeout.
 */
export async function runReadOnlyQuery(
  db: Db | RawSession,
  query: string,
  options: { timeoutMs?: number; maxRows?: number } = {},
): Promise<ReadOnlyResult> {
  const timeoutMs = Math.max(1, Math.round(options.timeoutMs ?? 30_000));
  const maxRows = Math.max(1, Math.floor(options.maxRows ?? DEFAULT_MAX_ROWS));
  const text = checkGuestQuery(query);
  let output: ReadOnlyResult | undefined;
  let tookLocks: AdvisoryLock[] = [];
  try {
    await inRawTransaction(db, async (tx) => {
      await tx.exec('set transaction read only');
      await tx.exec(`set local statement_timeout = ${timeoutMs}`);
      const [safety] = rowsOf<RoleSafety>(await tx.query(roleSafetySql));
      const problem = roleProblem(safety);
      if (problem) throw new ReadOnlyRoleError(`refused: mmsweep sql runs queries as a read-only role, and ${problem}.`);
      try {
        await tx.exec(`set local role ${READ_ONLY_ROLE}`);
      } catch (error) {
        throw new ReadOnlyRoleError(
          `refused: mmsweep sql runs queries as role ${READ_ONLY_ROLE}, and the connection's role ${safety!.connected_as} may not SET ROLE to it ` +
            `(${postgresErrorOf(error).message}); a privileged user can allow it with: GRANT ${READ_ONLY_ROLE} TO "${safety!.connected_as}"`,
          { cause: error },
        );
      }
      // Taking the snapshot now makes a later `SET TRANSACTION READ WRITE` fail.
      const held = rowsOf<AdvisoryLock>(await tx.query(advisoryLocksSql));
      // One row more than allowed tells "too many" apart from "exactly the limit" without holding the rest.
      const result = rowsOf<{ row: string }>(
        await tx.query(`select r::text as row from mmsweep_sql.run_read_only($1) as r limit ${maxRows + 1}`, [text]),
      );
      if (result.length > maxRows) {
        throw new QueryBoundError(
          `refused: the query returns more than ${maxRows} rows (--max-rows); add a LIMIT or a WHERE, aggregate, or raise --max-rows`,
        );
      }
      const rows = result.map((r) => JSON.parse(r.row) as Record<string, unknown>);
      // JSON.parse puts integer-like keys first: the column order comes from Postgres.
      const columns = result.length
        ? rowsOf<{ k: string }>(await tx.query('select json_object_keys($1::json) as k', [result[0].row])).map((r) => r.k)
        : [];
      output = { columns, rows };
      // Session-level advisory locks are the one side effect a read-only transaction allows and a rollback
      // keeps: release the ones this query took (on PGlite the session is shared with other clients).
      const now = rowsOf<AdvisoryLock>(await tx.query(advisoryLocksSql));
      const key = (l: AdvisoryLock) => `${l.classid}/${l.objid}/${l.objsubid}/${l.mode}`;
      const before = new Set(held.map(key));
      tookLocks = now.filter((l) => !before.has(key(l)));
      for (const lock of tookLocks) await releaseAdvisoryLock(tx, lock);
      throw new Rollback();
    }, timeoutMs);
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
    if (error instanceof ReadOnlyRoleError || error instanceof QueryBoundError) throw error;
    const pgError = postgresErrorOf(error);
    if (pgError.code === '25006' || pgError.code === '42501' || pgError.code === '0A000') {
      throw new ReadOnlyViolationError(
        `refused: mmsweep sql runs queries read-only as role ${READ_ONLY_ROLE}, which may only read mmsweep's tables and views (${pgError.message}). ` +
          `Use psql against the URL from \`mmsweep db url\` if you really mean to change the results store.`,
        { cause: error },
      );
    }
    if (pgError.code === '57014') {
      throw new QueryError(`query cancelled after the ${timeoutMs} ms statement timeout (raise it with --timeout)`, pgError.code, {
        cause: error,
      });
    }
    if (pgError.code === '42601' || pgError.code === '42804') {
      throw new QueryError(
        `query failed: ${pgError.message} (mmsweep sql runs one SELECT, WITH, VALUES or TABLE query, without a trailing statement)`,
        pgError.code,
        { cause: error },
      );
    }
    throw new QueryError(`query failed: ${pgError.message}`, pgError.code, { cause: error });
  }
  return output!;
}

/**
 * Run the application's own (parameterised) reads as the read-only role: READ ONLY transaction, statement timeout,
 * the role's safety checked as for `mmsweep sql`, then `SET LOCAL ROLE mmsweep_readonly`. For fixed SQL written in
 * this repository (`mmsweep ui`), not guest text: that goes through runReadOnlyQuery and run_read_only().
 */
export async function withReadOnlyRole<T>(db: Db, body: (tx: Db) => Promise<T>, options: { timeoutMs?: number } = {}): Promise<T> {
  const timeoutMs = Math.max(1, Math.round(options.timeoutMs ?? 30_000));
  return db.transaction(async (tx) => {
    await tx.execute(sql.raw('set transaction read only'));
    await tx.execute(sql.raw(`set local statement_timeout = ${timeoutMs}`));
    const [safety] = rowsOf<RoleSafety>(await tx.execute(sql.raw(roleSafetySql)));
    const problem = roleProblem(safety);
    if (problem) throw new ReadOnlyRoleError(`refused: mmsweep reads the results store as a read-only role, and ${problem}.`);
    try {
      await tx.execute(sql.raw(`set local role ${READ_ONLY_ROLE}`));
    } catch (error) {
      throw new ReadOnlyRoleError(
        `refused: mmsweep reads the results store as role ${READ_ONLY_ROLE}, and the connection's role ${safety!.connected_as} may not SET ROLE to it ` +
          `(${postgresErrorOf(error).message}); a privileged user can allow it with: GRANT ${READ_ONLY_ROLE} TO "${safety!.connected_as}"`,
        { cause: error },
      );
    }
    return body(tx as unknown as Db);
  });
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

/** Rows `mmsweep sql` returns at most unless --max-rows says otherwise (the whole result is held in memory). */
export const DEFAULT_MAX_ROWS = 100_000;

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import * as schema from './schema.ts';
import { maskSecrets, secretsOf } from '../src/util/secrets.ts';
import { pidAlive } from '../src/util/pid-lock.ts';
import { mmsweepHome } from '../src/util/home.ts';
import { fetchSnapshot, serveEmbedded, SOCKET_FILE, takeSnapshot } from './embedded-server.ts';

/**
 * The client factory: `DATABASE_URL` (or `url`) → a Postgres server through postgres.js; otherwise the
 * embedded PGlite database in a project-local directory. The process that opens the directory (the owner)
 * serves it over the Postgres wire protocol (a Unix socket only its user can reach) and records the URL next to the directory, so
 * that psql, `mmsweep db url` and any second mmsweep process connect through that socket instead of opening
 * the directory (PGlite allows one process per directory).
 */

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DbHandle {
  db: Db;
  /** `server`: a Postgres server from DATABASE_URL. `embedded`: the PGlite directory (owned or reached through its owner's socket). */
  kind: 'server' | 'embedded';
  /** The driver this process talks through. */
  driver: 'postgres-js' | 'pglite';
  /** True when this process opened the PGlite directory itself. */
  owner: boolean;
  /** A URL other processes (psql, mmsweep) can connect to; undefined for an embedded database opened with `serve: false`. */
  url?: string;
  /** `url` with the password masked, or the directory for an unserved embedded database: for messages. */
  displayName: string;
  /** The PGlite directory, for embedded databases. */
  dataDir?: string;
  /**
   * Embedded databases: a consistent copy of the whole database as a tar archive (PGlite's dumpDataDir), taken by
   * the process that holds it (this one, or the owner through its snapshot socket). What guest queries run on.
   */
  snapshot?(): Promise<Uint8Array>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** A postgres:// URL. Default: `DATABASE_URL`; when neither is set, the embedded database is used. */
  url?: string;
  /** Embedded database directory. Default: `$MMSWEEP_HOME/db`, where MMSWEEP_HOME defaults to `<cwd>/.mmsweep`. */
  dataDir?: string;
  /**
   * Embedded owner only: serve the database over the wire protocol (default true). When serving, this process
   * also talks to PGlite through the socket, because the socket server's query queue is what keeps one
   * client's transaction from interleaving with another's on PGlite's single session.
   */
  serve?: boolean;
  /**
   * Serve the embedded database on 127.0.0.1:port (0: any free port) behind the per-home password. Default:
   * `MMSWEEP_DB_PORT`, else a Unix socket in a 0700 directory and no TCP port (db/embedded-server.ts).
   */
  port?: number;
  /** Apply pending migrations on open (default true). */
  migrate?: boolean;
  /** Pool size of the postgres.js client (default 4 for servers, 2 through an embedded socket). */
  max?: number;
  /** Seconds to wait for a server connection before failing (default 10). */
  connectTimeoutSeconds?: number;
}

export class DatabaseConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseConnectionError';
  }
}

export const migrationsFolder = fileURLToPath(new URL('./migrations', import.meta.url));

/** The two-key advisory lock that serialises migrations across processes ('mmsw', 1). */
export const MIGRATION_LOCK = [0x6d6d7377, 1] as const;

export { mmsweepHome };

export function defaultDataDir(): string {
  return path.join(mmsweepHome(), 'db');
}

/** Files next to the PGlite directory: who holds it and where it is served. */
export function embeddedFiles(dataDir: string): { lock: string; server: string } {
  const dir = path.resolve(dataDir);
  return { lock: `${dir}.lock`, server: `${dir}.server.json` };
}

export interface EmbeddedServerInfo {
  url: string;
  /** The owner's snapshot socket (absent in the file an mmsweep from before snapshots wrote). */
  snapshot?: string;
  pid: number;
  dataDir: string;
  startedAt: string;
}

/** A connection string for messages: every password form masked (src/util/secrets.ts). */
export function maskUrl(url: string): string {
  return maskSecrets(url, secretsOf(url));
}

/** DATABASE_URL is invalid as written (not a connection problem): exit code 2. */
export class InvalidDatabaseUrlError extends DatabaseConnectionError {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'InvalidDatabaseUrlError';
  }
}

/** Name the part of the URL whose percent-encoding is broken, instead of the bare "URI malformed". */
function checkPercentEncoding(u: URL, masked: string): void {
  const parts: [string, string][] = [
    ['user name', u.username],
    ['password', u.password],
    ['database name', u.pathname],
    ['query string', u.search.replace(/^\?/, '')],
  ];
  for (const [part, value] of parts) {
    try {
      decodeURIComponent(value);
    } catch {
      const bad = /%(?![0-9a-fA-F]{2})..?|%[0-9a-fA-F]{2}/.exec(value)?.[0] ?? '%';
      const shown = part === 'password' ? '' : ` ("${bad}")`;
      throw new InvalidDatabaseUrlError(
        `DATABASE_URL has broken percent-encoding in its ${part}${shown}: ${masked}. Write a literal % as %25 ` +
          '(and @ : / ? # in a user name or password as %40 %3A %2F %3F %23).',
      );
    }
  }
}

interface ServerTarget {
  host: string;
  port: string;
  database: string;
}

function describeTarget(url: string): ServerTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InvalidDatabaseUrlError(
      `DATABASE_URL is not a valid URL: ${maskUrl(url)}. Expected postgres://user:password@host:port/database.`,
    );
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new InvalidDatabaseUrlError(
      `DATABASE_URL must start with postgres:// or postgresql://, got ${maskUrl(url)}.`,
    );
  }
  checkPercentEncoding(u, maskUrl(url));
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || decodeURIComponent(u.username) || 'postgres';
  const socketDir = splitSocketHost(url).socketDir;
  if (socketDir) return { host: `socket ${socketDir}`, port: SOCKET_FILE, database };
  return { host: u.hostname || 'localhost', port: u.port || '5432', database };
}

/**
 * libpq's `?host=/dir` (a Unix socket directory, as the embedded database is served): postgres.js takes it as an
 * option, and would otherwise send `host` to the server as a setting.
 */
function splitSocketHost(url: string): { url: string; socketDir?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { url };
  }
  const host = u.searchParams.get('host');
  if (!host || !host.startsWith('/')) return { url };
  u.searchParams.delete('host');
  return { url: u.toString(), socketDir: host };
}

/** `db.execute()` returns an array on postgres.js and `{ rows }` on PGlite. */
export function rowsOf<T = Record<string, unknown>>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  const rows = (result as { rows?: unknown[] } | null)?.rows;
  if (!Array.isArray(rows)) throw new Error('unexpected result shape from db.execute()');
  return rows as T[];
}

export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<DbHandle> {
  const url = options.url ?? process.env.DATABASE_URL;
  const handle = url ? await connectServer(url, 'server', options) : await openEmbedded(options);
  // An embedded owner migrates before it serves (openEmbeddedOwner); its guests find the schema ready.
  if ((options.migrate ?? true) && handle.kind === 'server') {
    try {
      await migrateDatabase(handle);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }
  // Closing twice is closing once: a command may let the database go early (mmsweep sql, once it has its snapshot).
  let closing: Promise<void> | undefined;
  const close = handle.close;
  handle.close = () => (closing ??= close());
  return handle;
}

async function connectServer(url: string, kind: DbHandle['kind'], options: OpenDatabaseOptions): Promise<DbHandle> {
  const target = describeTarget(url);
  const masked = maskUrl(url);
  const { url: tcpUrl, socketDir } = splitSocketHost(url);
  const client = postgres(tcpUrl, {
    ...(socketDir ? { host: socketDir } : {}),
    max: options.max ?? (kind === 'server' ? 4 : 2),
    connect_timeout: options.connectTimeoutSeconds ?? 10,
    onnotice: () => {},
  });
  try {
    await client`select 1`;
  } catch (error) {
    await client.end({ timeout: 1 }).catch(() => {});
    const reason = maskSecrets(error instanceof Error ? error.message : String(error), secretsOf(url));
    const advice =
      kind === 'server'
        ? 'Check DATABASE_URL (host, port, database, user, password), or unset it to use the embedded database.'
        : `This is the embedded database served by another mmsweep process; if no mmsweep process is running, ` +
          `remove ${options.dataDir ? Object.values(embeddedFiles(options.dataDir)).join(' and ') : 'its .lock and .server.json files'}.`;
    throw new DatabaseConnectionError(
      `cannot connect to Postgres database "${target.database}" on ${target.host}:${target.port} (${masked}): ${reason}. ${advice}`,
      { cause: error },
    );
  }
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const db = drizzle(client, { schema }) as unknown as Db;
  return {
    db,
    kind,
    driver: 'postgres-js',
    owner: false,
    url,
    displayName: masked,
    close: async () => {
      await client.end({ timeout: 5 });
    },
  };
}

/** Directories this process owns, so a second open in the same process goes through the socket too. */
const ownedHere = new Map<string, EmbeddedServerInfo | null>();

function readServerInfo(file: string): EmbeddedServerInfo | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as EmbeddedServerInfo;
  } catch {
    return null;
  }
}

/** The live owner's server info for an embedded directory, or null when nobody serves it. */
export function embeddedServerInfo(dataDir: string = defaultDataDir()): EmbeddedServerInfo | null {
  const info = readServerInfo(embeddedFiles(dataDir).server);
  return info && pidAlive(info.pid) ? info : null;
}

async function openEmbedded(options: OpenDatabaseOptions): Promise<DbHandle> {
  const dataDir = path.resolve(options.dataDir ?? defaultDataDir());
  const files = embeddedFiles(dataDir);
  fs.mkdirSync(path.dirname(dataDir), { recursive: true });

  if (ownedHere.has(dataDir)) {
    const info = ownedHere.get(dataDir);
    if (!info) throw new DatabaseConnectionError(`the embedded database ${dataDir} is already open in this process without a server (serve: false)`);
    return connectGuest(info, dataDir, options);
  }

  for (let tries = 0; ; tries++) {
    try {
      fs.writeFileSync(files.lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(fs.readFileSync(files.lock, 'utf8').trim());
    if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) {
      const info = await waitForServerInfo(files.server, holder, 30_000);
      if (!info) {
        throw new DatabaseConnectionError(
          `the embedded database ${dataDir} is held by process ${holder}, which does not serve it over the wire ` +
            `protocol. Stop that process or set DATABASE_URL to use a Postgres server; if process ${holder} is no ` +
            `mmsweep process, remove ${files.lock}.`,
        );
      }
      return connectGuest(info, dataDir, options);
    }
    // The holder died without cleaning up (kill -9, power loss): take the directory over.
    if (tries > 3) throw new DatabaseConnectionError(`cannot take the stale lock ${files.lock}; remove it by hand`);
    fs.rmSync(files.lock, { force: true });
    fs.rmSync(files.server, { force: true });
  }

  const releaseFiles = () => {
    for (const file of [files.server, files.lock]) {
      try {
        const content = fs.readFileSync(file, 'utf8');
        if (file === files.lock ? Number(content) === process.pid : readServerInfo(file)?.pid === process.pid) fs.rmSync(file);
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', releaseFiles);

  try {
    return await openEmbeddedOwner(dataDir, files, options, releaseFiles);
  } catch (error) {
    releaseFiles();
    process.removeListener('exit', releaseFiles);
    ownedHere.delete(dataDir);
    throw error;
  }
}

/**
 * The results are the owner's: directories 0700 and files 0600 inside the database directory (PGlite creates them
 * 0666 & umask). Run on open and on close; in between the 0700 top directory keeps other users out.
 */
export function restrictModes(dataDir: string): void {
  fs.chmodSync(dataDir, 0o700);
  for (const entry of fs.readdirSync(dataDir, { withFileTypes: true, recursive: true })) {
    const file = path.join(entry.parentPath, entry.name);
    if (entry.isDirectory()) fs.chmodSync(file, 0o700);
    else if (entry.isFile()) fs.chmodSync(file, 0o600);
  }
}

async function openEmbeddedOwner(
  dataDir: string,
  files: { lock: string; server: string },
  options: OpenDatabaseOptions,
  releaseFiles: () => void,
): Promise<DbHandle> {
  const { PGlite } = await import('@electric-sql/pglite');
  // The results are the owner's: nobody else may read or change the files (PGlite creates them 0666 & umask).
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  restrictModes(dataDir);
  const pglite = new PGlite(dataDir);
  await pglite.waitReady;
  restrictModes(dataDir);
  const { drizzle } = await import('drizzle-orm/pglite');
  const direct = drizzle(pglite, { schema }) as unknown as Db;
  // Migrate before serving, so that guests always find the current schema.
  if (options.migrate ?? true) await migrateWith(direct, 'pglite');

  const closeOwner = async () => {
    await pglite.close();
    // Files PGlite created during the run (new relations, WAL segments) follow the umask.
    restrictModes(dataDir);
    releaseFiles();
    process.removeListener('exit', releaseFiles);
    ownedHere.delete(dataDir);
  };

  const snapshot = () => takeSnapshot(pglite);
  if (!(options.serve ?? true)) {
    ownedHere.set(dataDir, null);
    return {
      db: direct,
      kind: 'embedded',
      driver: 'pglite',
      owner: true,
      displayName: dataDir,
      dataDir,
      snapshot,
      close: closeOwner,
    };
  }

  const envPort = process.env.MMSWEEP_DB_PORT;
  const port = options.port ?? (envPort ? Number(envPort) : undefined);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) {
    await closeOwner();
    throw new InvalidDatabaseUrlError(`MMSWEEP_DB_PORT must be an integer in 0…65535, got "${envPort}"`);
  }
  let server: Awaited<ReturnType<typeof serveEmbedded>>;
  try {
    server = await serveEmbedded(pglite, dataDir, port);
  } catch (error) {
    await closeOwner();
    const where = port === undefined ? `a Unix socket next to ${dataDir}` : `127.0.0.1:${port}`;
    throw new DatabaseConnectionError(
      `cannot serve the embedded database on ${where}: ${(error as Error).message}.` +
        (port === undefined ? '' : ' Choose another port with MMSWEEP_DB_PORT.'),
      { cause: error },
    );
  }
  const url = server.url;
  const info: EmbeddedServerInfo = { url, snapshot: server.snapshotSocket, pid: process.pid, dataDir, startedAt: new Date().toISOString() };
  const tmp = `${files.server}.${process.pid}.tmp`;
  // The URL may carry the per-home password: readable by this user only.
  fs.writeFileSync(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, files.server);
  ownedHere.set(dataDir, info);

  let viaSocket: DbHandle;
  try {
    viaSocket = await connectServer(url, 'embedded', { ...options, max: options.max ?? 2 });
  } catch (error) {
    await server.stop();
    await closeOwner();
    throw error;
  }
  return {
    ...viaSocket,
    owner: true,
    dataDir,
    snapshot,
    close: async () => {
      await viaSocket.close();
      await server.stop();
      await closeOwner();
    },
  };
}

async function connectGuest(info: EmbeddedServerInfo, dataDir: string, options: OpenDatabaseOptions): Promise<DbHandle> {
  const handle = await connectServer(info.url, 'embedded', { ...options, dataDir, max: options.max ?? 2 });
  const snapshot = async () => {
    if (!info.snapshot) {
      throw new DatabaseConnectionError(
        `process ${info.pid} holds the embedded database ${dataDir} with an mmsweep from before snapshots, which guest ` +
          'queries (mmsweep sql) run on: restart that process with this version, or query it with psql against the URL from `mmsweep db url`.',
      );
    }
    try {
      return await fetchSnapshot(info.snapshot);
    } catch (error) {
      throw new DatabaseConnectionError(
        `cannot take a snapshot of the embedded database ${dataDir} from process ${info.pid}, which holds it: ${(error as Error).message}`,
        { cause: error },
      );
    }
  };
  return { ...handle, dataDir, snapshot };
}

async function waitForServerInfo(file: string, pid: number, timeoutMs: number): Promise<EmbeddedServerInfo | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = readServerInfo(file);
    if (info && info.pid === pid) return info;
    if (Date.now() > deadline || !pidAlive(pid)) return null;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Apply pending migrations. drizzle's migrator takes no lock, so on a server it runs on one dedicated
 * connection holding a session-level advisory lock: ten workers starting at once apply each migration once.
 * A guest of an embedded database skips this: its owner migrated before serving.
 */
export async function migrateDatabase(handle: DbHandle): Promise<void> {
  if (handle.kind === 'embedded') {
    if (handle.owner && handle.driver === 'pglite') await migrateWith(handle.db, 'pglite');
    return;
  }
  const client = postgres(handle.url!, { max: 1, onnotice: () => {} });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK[0]}, ${MIGRATION_LOCK[1]})`;
    try {
      const { drizzle } = await import('drizzle-orm/postgres-js');
      await migrateWith(drizzle(client, { schema }) as unknown as Db, 'postgres-js');
    } finally {
      await client`select pg_advisory_unlock(${MIGRATION_LOCK[0]}, ${MIGRATION_LOCK[1]})`;
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}

async function migrateWith(db: Db, driver: DbHandle['driver']): Promise<void> {
  if (driver === 'pglite') {
    const { migrate } = await import('drizzle-orm/pglite/migrator');
    await migrate(db as never, { migrationsFolder });
  } else {
    const { migrate } = await import('drizzle-orm/postgres-js/migrator');
    await migrate(db as never, { migrationsFolder });
  }
  await db.execute(sql.raw(regrantReadOnlySql));
}

/**
 * After every migration run: SELECT on every table and view in public for the read-only role `mmsweep sql` uses.
 * The default privileges of migration 0004 cover only tables created by the role that ran it; a later migration
 * run by another role (an administrator's `mmsweep db migrate`) would otherwise add tables `mmsweep sql` cannot
 * read. Tables this role does not own are skipped by Postgres with a warning, hence the notice level.
 */
const regrantReadOnlySql = `DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'mmsweep_readonly') THEN
    SET LOCAL client_min_messages = error;
    BEGIN
      GRANT USAGE ON SCHEMA public TO mmsweep_readonly;
      GRANT SELECT ON ALL TABLES IN SCHEMA public TO mmsweep_readonly;
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
  END IF;
END
$$`;

/** Cheap liveness check used by `mmsweep db url`. */
export async function ping(db: Db): Promise<void> {
  await db.execute(sql`select 1`);
}

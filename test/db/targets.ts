import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { openDatabase, type DbHandle } from '../../db/index.ts';

/**
 * The databases the shared suite runs against, as drizzle's own integration tests do: the real Postgres
 * server on this machine (a uniquely named database per run, dropped afterwards) and PGlite in a temporary
 * directory, both directly and through the wire-protocol socket its owner serves.
 */

export const SERVER_ADMIN_URL = process.env.MMSWEEP_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface OpenTarget {
  handle: DbHandle;
  /** A URL a child process can connect to (server and socket targets). */
  url?: string;
  cleanup(): Promise<void>;
}

export interface Target {
  name: 'server' | 'pglite' | 'pglite-socket';
  open(): Promise<OpenTarget>;
}

export function serverUrlFor(database: string): string {
  const u = new URL(SERVER_ADMIN_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A fresh, empty database on the server; `drop()` removes it even if connections linger. */
export async function createServerDatabase(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `mmsweep_test_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(SERVER_ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  return {
    name,
    url: serverUrlFor(name),
    drop: async () => {
      const a = postgres(SERVER_ADMIN_URL, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists "${name}" with (force)`);
      await a.end();
    },
  };
}

export function tempDir(prefix = 'mmsweep-db-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const serverTarget: Target = {
  name: 'server',
  async open() {
    const database = await createServerDatabase();
    const handle = await openDatabase({ url: database.url });
    return {
      handle,
      url: database.url,
      cleanup: async () => {
        await handle.close();
        await database.drop();
      },
    };
  },
};

/**
 * PGlite's initdb takes 5–15 s on this machine; opening a copy of a freshly initialised (empty, unmigrated)
 * directory takes about one. The template is shared by test runs and keyed by the PGlite version, and every test
 * database still migrates from empty.
 */
export async function copyPgliteTemplate(dataDir: string): Promise<void> {
  const version = JSON.parse(fs.readFileSync(new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8')).version;
  const template = path.join(os.tmpdir(), `mmsweep-pglite-template-${version}`);
  if (!fs.existsSync(path.join(template, 'PG_VERSION'))) {
    const building = `${template}.${process.pid}.tmp`;
    const { PGlite } = await import('@electric-sql/pglite');
    const pg = new PGlite(building);
    await pg.waitReady;
    await pg.close();
    try {
      fs.renameSync(building, template);
    } catch {
      fs.rmSync(building, { recursive: true, force: true }); // another run built it first
    }
  }
  fs.cpSync(template, dataDir, { recursive: true });
}

function pgliteTarget(name: 'pglite' | 'pglite-socket', serve: boolean): Target {
  return {
    name,
    async open() {
      const dir = tempDir();
      await copyPgliteTemplate(path.join(dir, 'db'));
      const handle = await openDatabase({ url: '', dataDir: path.join(dir, 'db'), serve });
      return {
        handle,
        url: handle.url,
        cleanup: async () => {
          await handle.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

export const pgliteDirectTarget = pgliteTarget('pglite', false);
export const pgliteSocketTarget = pgliteTarget('pglite-socket', true);

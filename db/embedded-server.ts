import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { installBatchAwareQueue, BatchAwareQueryQueue } from './socket-queue.ts';

/**
 * How the owner of the embedded database lets other processes in (issue 17, S4). PGlite's socket server answers
 * every client with "authentication ok", so whoever can reach its socket can change the results:
 *
 * - by default it listens on a Unix socket in a directory only the owner's user can enter (0700), and no TCP port;
 * - on a TCP port (asked for with `--port` / MMSWEEP_DB_PORT, e.g. for a GUI client) every connection must first
 *   give the per-home password (kept in a 0600 file next to the database) before a byte reaches PGlite.
 *
 * Beside it, in the same 0700 directory, a second socket hands out snapshots of the database (issue 17, S2): a guest
 * query (`mmsweep sql`) never runs on the owner's PGlite, which could not stop it, but on a copy in the guest's own
 * process (db/guest-sandbox.ts).
 */

/** libpq's and postgres.js' name for the socket file inside the socket directory (port 5432). */
export const SOCKET_FILE = '.s.PGSQL.5432';

/** The snapshot socket's file name, as long as SOCKET_FILE so that the same path limit holds for both. */
export const SNAPSHOT_SOCKET_FILE = 'snapshot.sock';

/** Longest Unix socket path Linux and macOS accept (sun_path), less a margin. */
const MAX_SOCKET_PATH = 100;

export interface EmbeddedServer {
  url: string;
  /** The Unix socket that hands out snapshots (fetchSnapshot). */
  snapshotSocket: string;
  stop(): Promise<void>;
}

/** The per-home password for TCP connections: created once (0600), reused so that saved client settings keep working. */
export function embeddedPassword(dataDir: string): string {
  const file = `${path.resolve(dataDir)}.password`;
  try {
    const existing = fs.readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{32,}$/.test(existing)) {
      fs.chmodSync(file, 0o600);
      return existing;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const password = crypto.randomBytes(24).toString('base64url');
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${password}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
  return password;
}

/** A directory only this user can enter, for the socket: next to the database, or under the temp dir when that path is too long. */
function socketDirFor(dataDir: string): string {
  const beside = `${path.resolve(dataDir)}.sock`;
  if (Buffer.byteLength(path.join(beside, SOCKET_FILE)) <= MAX_SOCKET_PATH) {
    fs.mkdirSync(beside, { recursive: true, mode: 0o700 });
    const stat = fs.lstatSync(beside);
    if (!stat.isDirectory() || (typeof process.getuid === 'function' && stat.uid !== process.getuid())) {
      throw new Error(`${beside} is not a directory of this user: remove it`);
    }
    fs.chmodSync(beside, 0o700);
    return beside;
  }
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-db-')); // mkdtemp creates it 0700
}

/** The directory as a URL query value: readable slashes, everything else percent-encoded. */
function encodeSocketDir(dir: string): string {
  return encodeURIComponent(dir).replace(/%2F/g, '/');
}

export async function serveEmbedded(pglite: PGlite, dataDir: string, port: number | undefined): Promise<EmbeddedServer> {
  const dir = socketDirFor(dataDir);
  const removeDir = () => {
    if (!dir.startsWith(path.resolve(dataDir))) fs.rmSync(dir, { recursive: true, force: true });
  };
  const snapshots = await serveSnapshots(pglite, path.join(dir, SNAPSHOT_SOCKET_FILE));
  try {
    if (port === undefined) {
      const file = path.join(dir, SOCKET_FILE);
      fs.rmSync(file, { force: true }); // left by an owner that died; this process holds the lock now
      const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
      const server = new PGLiteSocketServer({ db: pglite, path: file, maxConnections: 64 });
      installBatchAwareQueue(server, pglite);
      await server.start();
      fs.chmodSync(file, 0o600);
      return {
        url: `postgres://postgres@localhost/postgres?host=${encodeSocketDir(dir)}`,
        snapshotSocket: snapshots.file,
        stop: async () => {
          await server.stop();
          fs.rmSync(file, { force: true });
          await snapshots.stop();
          removeDir();
        },
      };
    }
    const password = embeddedPassword(dataDir);
    const server = await startPasswordServer(pglite, port, password);
    const address = server.address() as net.AddressInfo;
    return {
      url: `postgres://postgres:${password}@127.0.0.1:${address.port}/postgres`,
      snapshotSocket: snapshots.file,
      stop: async () => {
        await stopServer(server);
        await snapshots.stop();
        removeDir();
      },
    };
  } catch (error) {
    await snapshots.stop();
    removeDir();
    throw error;
  }
}

/**
 * A consistent copy of the whole database as a tar archive: PGlite's dumpDataDir holds the lock every statement
 * takes (the socket queue's included) while it reads the files, so no write lands half in it. Postgres's own
 * crash recovery brings the copy to the last commit when it is opened (the WAL is part of the archive).
 */
export async function takeSnapshot(pglite: PGlite): Promise<Uint8Array> {
  const archive = await pglite.dumpDataDir('none');
  return new Uint8Array(await archive.arrayBuffer());
}

/** Header of a snapshot answer: 'S' and the archive's length (u64), or 'E' and a message. */
const SNAPSHOT_OK = 0x53;
const SNAPSHOT_ERROR = 0x45;

/**
 * Each connection to `file` is answered with one snapshot, then closed. Requests that arrive while a snapshot is
 * being taken share it: it holds every commit made before they arrived, since none can land while it is taken.
 */
async function serveSnapshots(pglite: PGlite, file: string): Promise<{ file: string; stop(): Promise<void> }> {
  fs.rmSync(file, { force: true }); // left by an owner that died
  let taking: Promise<Uint8Array> | null = null;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    taking ??= takeSnapshot(pglite).finally(() => {
      taking = null;
    });
    taking.then(
      (archive) => {
        const head = Buffer.alloc(9);
        head[0] = SNAPSHOT_OK;
        head.writeBigUInt64BE(BigInt(archive.byteLength), 1);
        socket.write(head);
        socket.end(archive);
      },
      (error: unknown) => socket.end(Buffer.concat([Buffer.from([SNAPSHOT_ERROR]), Buffer.from(String((error as Error)?.message ?? error))])),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  fs.chmodSync(file, 0o600);
  return {
    file,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(file, { force: true });
    },
  };
}

/** How long a guest waits for the owner to start answering a snapshot request (the owner may be busy writing). */
const SNAPSHOT_WAIT_MS = 60_000;

/** Ask the owner serving `file` for a snapshot (serveSnapshots). The bytes come in a buffer of their own (transferable). */
export function fetchSnapshot(file: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(file);
    let head = Buffer.alloc(0);
    let archive: Uint8Array | null = null;
    let received = 0;
    socket.setTimeout(SNAPSHOT_WAIT_MS, () => socket.destroy(new Error(`no answer within ${SNAPSHOT_WAIT_MS / 1000} s`)));
    socket.on('data', (chunk: Buffer) => {
      if (!archive) {
        head = Buffer.concat([head, chunk]);
        if (head[0] !== SNAPSHOT_OK || head.length < 9) return;
        archive = new Uint8Array(Number(head.readBigUInt64BE(1)));
        chunk = head.subarray(9);
      }
      if (received + chunk.length > archive.length) return socket.destroy(new Error('the snapshot is longer than announced'));
      archive.set(chunk, received);
      received += chunk.length;
    });
    socket.on('error', reject);
    socket.on('end', () => {
      if (head[0] === SNAPSHOT_ERROR) return reject(new Error(head.subarray(1).toString('utf8')));
      if (!archive || received !== archive.length) return reject(new Error(`the snapshot arrived incomplete (${received} bytes)`));
      resolve(archive);
    });
  });
}

/** How long a TCP client has to give the password. */
const AUTH_TIMEOUT_MS = 10_000;
const SSL_REQUEST = 80877103;
const GSS_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;

function errorResponse(code: string, message: string): Buffer {
  const fields = Buffer.concat([
    Buffer.from('SFATAL\0'),
    Buffer.from('VFATAL\0'),
    Buffer.from(`C${code}\0`),
    Buffer.from(`M${message}\0`),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(5);
  head.write('E', 0);
  head.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([head, fields]);
}

function sameSecret(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

/**
 * A TCP server that asks each client for the password (cleartext over loopback only) and, once given, hands the
 * connection with its startup message to a PGlite socket handler sharing the batch-aware queue.
 */
async function startPasswordServer(pglite: PGlite, port: number, password: string): Promise<net.Server> {
  const { PGLiteSocketHandler } = await import('@electric-sql/pglite-socket');
  const queue = new BatchAwareQueryQueue(pglite);
  const handlers = new Set<{ detach(close?: boolean): Promise<unknown> }>();
  const unauthenticated = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    let buffer = Buffer.alloc(0);
    let startup: Buffer | null = null;
    // A client that never finishes the handshake is dropped, and stop() does not wait for it.
    unauthenticated.add(socket);
    socket.setTimeout(AUTH_TIMEOUT_MS, () => socket.destroy());
    socket.once('close', () => unauthenticated.delete(socket));
    const fail = (code: string, message: string) => {
      socket.removeAllListeners('data');
      socket.end(errorResponse(code, message));
    };
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length > 64 * 1024) return fail('08P01', 'startup packet too long');
      for (;;) {
        if (!startup) {
          if (buffer.length < 8) return;
          const length = buffer.readInt32BE(0);
          if (length < 8 || length > 10_000) return fail('08P01', 'invalid startup packet length');
          if (buffer.length < length) return;
          const code = buffer.readInt32BE(4);
          const packet = buffer.subarray(0, length);
          buffer = buffer.subarray(length);
          if (code === SSL_REQUEST || code === GSS_REQUEST) {
            socket.write('N');
            continue;
          }
          if (code === CANCEL_REQUEST) return fail('08P01', 'cancel requests are not supported');
          if (code !== PROTOCOL_3) return fail('08P01', 'unsupported frontend protocol');
          startup = Buffer.from(packet);
          const ask = Buffer.alloc(9);
          ask.write('R', 0);
          ask.writeInt32BE(8, 1);
          ask.writeInt32BE(3, 5); // AuthenticationCleartextPassword
          socket.write(ask);
          continue;
        }
        if (buffer.length < 5) return;
        const length = buffer.readInt32BE(1);
        if (buffer[0] !== 0x70 /* 'p' */ || length < 5 || length > 10_000) return fail('08P01', 'expected a password message');
        if (buffer.length < 1 + length) return;
        const given = buffer.subarray(5, 1 + length).toString('utf8').replace(/\0$/, '');
        const rest = buffer.subarray(1 + length);
        if (!sameSecret(given, password)) {
          return fail('28P01', 'password authentication failed for the embedded mmsweep database (the password is in the URL `mmsweep db url` prints)');
        }
        socket.removeListener('data', onData);
        socket.setTimeout(0);
        unauthenticated.delete(socket);
        socket.pause();
        if (rest.length > 0) socket.unshift(rest);
        socket.unshift(startup);
        const handler = new PGLiteSocketHandler({ queryQueue: queue as never, closeOnDetach: true });
        handlers.add(handler);
        const forget = () => handlers.delete(handler);
        handler.addEventListener('close', forget);
        handler.addEventListener('error', forget);
        void handler.attach(socket).then(() => socket.resume());
        return;
      }
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  });
  (server as net.Server & { mmsweepHandlers?: typeof handlers }).mmsweepHandlers = handlers;
  (server as net.Server & { mmsweepPending?: typeof unauthenticated }).mmsweepPending = unauthenticated;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return server;
}

async function stopServer(server: net.Server): Promise<void> {
  const handlers = (server as net.Server & { mmsweepHandlers?: Set<{ detach(close?: boolean): Promise<unknown> }> }).mmsweepHandlers;
  for (const handler of handlers ?? []) await handler.detach(true).catch(() => {});
  for (const socket of (server as net.Server & { mmsweepPending?: Set<net.Socket> }).mmsweepPending ?? []) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { mmsweepHome } from '../util/home.ts';
import { pidAlive } from '../util/pid-lock.ts';

/**
 * The on-disk cache of generated data arrays.
 *
 * Location: the `cacheDir` option, else `$MMSWEEP_CACHE_DIR`, else `cache/` under MMSWEEP_HOME (default `.mmsweep`).
 *
 * File format (one file per cached item):
 *   bytes 0–7   ASCII magic `MMSWDAT1`
 *   bytes 8–11  uint32 LE: length L of the JSON header
 *   bytes 12…   L bytes of UTF-8 JSON: `{ meta, sections: [{ name, byteLength }], sha256 }`
 *   then        the sections' bytes, back to back, in the listed order
 * `sha256` is the hex SHA-256 of all section bytes; `meta` is what the writer keyed the file by and is compared
 * on load. Files are written to a temporary name and renamed into place, so readers never see half a file and
 * concurrent writers of the same key (which produce the same bytes) are harmless.
 */

const MAGIC = 'MMSWDAT1';

export function resolveCacheDir(option?: string): string {
  const chosen = option ?? process.env.MMSWEEP_CACHE_DIR;
  // Under MMSWEEP_HOME with the rest of the local state: a moved home finds its cache (issue 17, U4).
  return resolve(chosen && chosen.length > 0 ? chosen : join(mmsweepHome(), 'cache'));
}

export interface CacheSection {
  name: string;
  bytes: Uint8Array;
}

export type CacheMeta = Record<string, string | number | boolean | null>;

export function writeCacheFile(file: string, meta: CacheMeta, sections: CacheSection[]): void {
  mkdirSync(dirname(file), { recursive: true });
  const hash = createHash('sha256');
  for (const s of sections) hash.update(s.bytes);
  const header = Buffer.from(
    JSON.stringify({ meta, sections: sections.map((s) => ({ name: s.name, byteLength: s.bytes.byteLength })), sha256: hash.digest('hex') }),
    'utf8',
  );
  const prefix = Buffer.alloc(12);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(header.length, 8);
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(temp, 'w');
  try {
    writeAll(fd, prefix);
    writeAll(fd, header);
    for (const s of sections) writeAll(fd, s.bytes);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  } finally {
    sweepDeadTemps(dirname(file));
  }
}

/** Temp files of writers that died before their rename (kill -9, power loss): readers never open them, but they are whole splits. */
function sweepDeadTemps(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/\.tmp-(\d+)-[0-9a-f]{8}$/.exec(name)?.[1]);
    if (pid > 0 && pid !== process.pid && !pidAlive(pid)) rmSync(join(dir, name), { force: true });
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.byteLength) offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
}

export type CacheReadResult =
  | { status: 'ok'; sections: Map<string, Uint8Array> }
  | { status: 'missing' }
  | { status: 'invalid'; reason: string };

/**
 * Read and verify a cache file against the expected meta and section names. Sections are views on one buffer
 * (no copy). Never throws for a bad file: the caller regenerates and says why.
 */
export function readCacheFile(file: string, expectedMeta: CacheMeta, expectedSections: string[]): CacheReadResult {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'missing' };
    return { status: 'invalid', reason: `unreadable (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
  if (bytes.length < 12 || bytes.toString('ascii', 0, 8) !== MAGIC) return { status: 'invalid', reason: 'bad magic' };
  const headerLength = bytes.readUInt32LE(8);
  if (12 + headerLength > bytes.length) return { status: 'invalid', reason: 'truncated header' };
  let header: { meta: CacheMeta; sections: { name: string; byteLength: number }[]; sha256: string };
  try {
    header = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength));
  } catch {
    return { status: 'invalid', reason: 'unparseable header' };
  }
  for (const [key, value] of Object.entries(expectedMeta)) {
    if (header.meta?.[key] !== value) return { status: 'invalid', reason: `header ${key}=${String(header.meta?.[key])}, expected ${String(value)}` };
  }
  const names = (header.sections ?? []).map((s) => s.name);
  if (names.join(',') !== expectedSections.join(',')) return { status: 'invalid', reason: `sections [${names}] ≠ [${expectedSections}]` };
  const total = header.sections.reduce((a, s) => a + s.byteLength, 0);
  const start = 12 + headerLength;
  if (bytes.length !== start + total) return { status: 'invalid', reason: `size ${bytes.length} bytes, expected ${start + total}` };
  const payload = bytes.subarray(start);
  const digest = createHash('sha256').update(payload).digest('hex');
  if (digest !== header.sha256) return { status: 'invalid', reason: 'checksum mismatch' };
  const sections = new Map<string, Uint8Array>();
  let offset = start;
  for (const s of header.sections) {
    sections.set(s.name, new Uint8Array(bytes.buffer, bytes.byteOffset + offset, s.byteLength));
    offset += s.byteLength;
  }
  return { status: 'ok', sections };
}

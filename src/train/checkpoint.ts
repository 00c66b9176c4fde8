import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Checkpoint file format (version 2), little-endian:
 *   bytes 0–7   ASCII magic "MMSWCKPT"
 *   bytes 8–11  uint32 format version (2)
 *   bytes 12–15 uint32 byte length H of the JSON header
 *   16 … 16+H   UTF-8 JSON header, padded with spaces to a multiple of 4 bytes
 *   then        the blob section: raw float32 arrays, back to back
 *   last 32     sha256 of every byte before it (header included: history, best metrics, LR and counters are as
 *               much the state as the weights), verified on read
 * The header holds `trialKey` (whose checkpoint this is: a directory never mixes trials), `payload` (any JSON:
 * counters, schedule states, history, the TrialSpec…) and `blobs` (name, offset and length in float32 elements,
 * relative to the blob section). Files are written atomically: temp file, fsync, rename. Version 1 (header not
 * checksummed) is refused.
 */
/**
 * A checkpoint that does not belong to the trial being resumed. Lives here, not in the trainer, so that runners
 * that train nothing (the noop trial, the CLI's error mapping) can name it without loading tfjs.
 */
export class ResumeMismatchError extends Error {
  override name = 'ResumeMismatchError';
}

export const CHECKPOINT_MAGIC = 'MMSWCKPT';
export const CHECKPOINT_VERSION = 2;
const TRAILER_BYTES = 32;

export interface CheckpointContent<P = unknown> {
  /** The trial key of the trial the checkpoint belongs to. */
  trialKey: string;
  payload: P;
  blobs: Record<string, Float32Array>;
}

export interface WrittenCheckpoint {
  path: string;
  /** sha256 of the whole file. */
  sha256: string;
  bytes: number;
}

interface Header {
  format: 'mmsweep-checkpoint';
  version: number;
  trialKey: string;
  blobs: { name: string; offset: number; length: number }[];
  payload: unknown;
}

/** A checkpoint file that cannot be used: unreadable, corrupt, or of another format. */
export class CheckpointFileError extends Error {
  override name = 'CheckpointFileError';
}

if (endianness() !== 'LE') throw new Error('mmsweep checkpoints assume a little-endian host');

export function encodeCheckpoint(content: CheckpointContent): Buffer {
  const entries = Object.entries(content.blobs);
  const index: Header['blobs'] = [];
  let offset = 0;
  for (const [name, values] of entries) {
    index.push({ name, offset, length: values.length });
    offset += values.length;
  }
  const blobSection = Buffer.alloc(offset * 4);
  for (const [i, [, values]] of entries.entries()) {
    Buffer.from(values.buffer, values.byteOffset, values.byteLength).copy(blobSection, index[i].offset * 4);
  }
  const header: Header = {
    format: 'mmsweep-checkpoint',
    version: CHECKPOINT_VERSION,
    trialKey: content.trialKey,
    blobs: index,
    payload: content.payload,
  };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 4) * 4;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(16);
  prefix.write(CHECKPOINT_MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(CHECKPOINT_VERSION, 8);
  prefix.writeUInt32LE(json.length, 12);
  const body = Buffer.concat([prefix, json, blobSection]);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

function checkPrefix(bytes: Buffer, available: number, source: string): void {
  if (available < 16 || bytes.toString('ascii', 0, 8) !== CHECKPOINT_MAGIC) {
    throw new CheckpointFileError(`${source}: not an mmsweep checkpoint (bad magic)`);
  }
  const version = bytes.readUInt32LE(8);
  if (version !== CHECKPOINT_VERSION) {
    throw new CheckpointFileError(`${source}: checkpoint format version ${version}, expected ${CHECKPOINT_VERSION} (written by another mmsweep version)`);
  }
}

/** The header of a checkpoint, checked for magic and version but not against the checksum (see decodeCheckpoint). */
function parseHeader(bytes: Buffer, available: number, source: string): { header: Header; headerLength: number } {
  checkPrefix(bytes, available, source);
  const headerLength = bytes.readUInt32LE(12);
  if (16 + headerLength > available) throw new CheckpointFileError(`${source}: truncated header`);
  let header: Header;
  try {
    header = JSON.parse(bytes.toString('utf8', 16, 16 + headerLength)) as Header;
  } catch (error) {
    throw new CheckpointFileError(`${source}: broken checkpoint header (${(error as Error).message})`);
  }
  if (typeof header?.trialKey !== 'string' || !Array.isArray(header.blobs)) {
    throw new CheckpointFileError(`${source}: broken checkpoint header (no trial key or blob index)`);
  }
  return { header, headerLength };
}

export function decodeCheckpoint<P = unknown>(bytes: Buffer, source = 'checkpoint'): CheckpointContent<P> {
  if (bytes.length < 16 + TRAILER_BYTES) throw new CheckpointFileError(`${source}: not an mmsweep checkpoint (too short)`);
  const bodyLength = bytes.length - TRAILER_BYTES;
  const sha = createHash('sha256').update(bytes.subarray(0, bodyLength)).digest();
  // Magic and version first: a file of another format should say so rather than "checksum mismatch".
  checkPrefix(bytes, bytes.length, source);
  if (!sha.equals(bytes.subarray(bodyLength))) throw new CheckpointFileError(`${source}: checksum mismatch (file corrupt, truncated or edited)`);
  const { header, headerLength } = parseHeader(bytes, bodyLength, source);
  const blobSection = bytes.subarray(16 + headerLength, bodyLength);
  // Copy into an aligned buffer: the blob section's byte offset need not be 4-aligned inside `bytes`.
  const aligned = new Float32Array(blobSection.length / 4);
  Buffer.from(aligned.buffer).set(blobSection);
  const blobs: Record<string, Float32Array> = {};
  for (const b of header.blobs) blobs[b.name] = aligned.slice(b.offset, b.offset + b.length);
  return { trialKey: header.trialKey, payload: header.payload as P, blobs };
}

/** The trial key a checkpoint file names, from its header alone (not verified: for ownership checks). */
export function readCheckpointTrialKey(filePath: string): string {
  const fd = fs.openSync(filePath, 'r');
  try {
    const prefix = Buffer.alloc(16);
    checkPrefix(prefix, fs.readSync(fd, prefix, 0, 16, 0), filePath);
    const length = 16 + prefix.readUInt32LE(12);
    const bytes = Buffer.alloc(Math.min(length, fs.fstatSync(fd).size));
    const read = fs.readSync(fd, bytes, 0, bytes.length, 0);
    return parseHeader(bytes, read, filePath).header.trialKey;
  } finally {
    fs.closeSync(fd);
  }
}

/** Write atomically (temp file in the same directory, fsync, rename). */
export function writeCheckpointFile(filePath: string, content: CheckpointContent): WrittenCheckpoint {
  const bytes = encodeCheckpoint(content);
  fs.mkdirSync(path.dirname(filePath), { recursive: true });
  const tmp = `${filePath}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, filePath);
  return { path: path.resolve(filePath), sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
}

/** Read and verify a checkpoint; `sha256` is of the whole file, as `writeCheckpointFile` reports it. */
export function readCheckpointFile<P = unknown>(filePath: string): CheckpointContent<P> & { sha256: string } {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(filePath);
  } catch (error) {
    throw new CheckpointFileError(`${filePath}: cannot read (${(error as Error).message})`);
  }
  return { ...decodeCheckpoint<P>(bytes, filePath), sha256: createHash('sha256').update(bytes).digest('hex') };
}

const EPOCH_FILE = /^epoch-(\d+)\.ckpt$/;

/**
 * The mid-epoch checkpoint: at most one per directory, replaced as the epoch goes on and deleted once the epoch's
 * own checkpoint exists. Its name does not match EPOCH_FILE, so epoch-level bookkeeping (pruning, the activity's
 * resume logic, copies to the database) never sees it.
 */
export function midEpochCheckpointPath(dir: string): string {
  return path.join(dir, 'mid-epoch.ckpt');
}

export function checkpointPath(dir: string, epoch: number): string {
  return path.join(dir, `epoch-${String(epoch).padStart(4, '0')}.ckpt`);
}

/** The checkpoint with the highest epoch in `dir`, or null if there is none. */
export function latestCheckpoint(dir: string): { path: string; epoch: number } | null {
  if (!fs.existsSync(dir)) return null;
  let best: { path: string; epoch: number } | null = null;
  for (const name of fs.readdirSync(dir)) {
    const m = EPOCH_FILE.exec(name);
    if (m && (!best || Number(m[1]) > best.epoch)) best = { path: path.join(dir, name), epoch: Number(m[1]) };
  }
  return best;
}

function epochFiles(dir: string): { path: string; epoch: number }[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((name) => ({ name, m: EPOCH_FILE.exec(name) }))
    .filter((f) => f.m)
    .map((f) => ({ path: path.join(dir, f.name), epoch: Number(f.m![1]) }))
    .sort((a, b) => b.epoch - a.epoch);
}

/** The trial key of a file, or the reason it cannot be read. */
function ownerOf(file: string): { key: string } | { error: string } {
  try {
    return { key: readCheckpointTrialKey(file) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/**
 * Delete this trial's epoch checkpoints older than its newest `keep` (each holds the full state). Files of any
 * other trial, and files whose owner cannot be read, are never touched.
 */
export function pruneCheckpoints(dir: string, keep: number, trialKey: string): void {
  const ours = epochFiles(dir).filter((f) => {
    const owner = ownerOf(f.path);
    return 'key' in owner && owner.key === trialKey;
  });
  for (const f of ours.slice(keep)) fs.rmSync(f.path, { force: true });
}

/**
 * mkdir -p without Node's recursive mode, which never returns for a path it cannot create under some pseudo file
 * systems (e.g. /proc/x: ENOENT although the parent exists).
 */
function makeDirectory(dir: string, depth = 0): void {
  try {
    fs.mkdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || depth > 64 || path.dirname(dir) === dir) throw error;
    makeDirectory(path.dirname(dir), depth + 1);
    fs.mkdirSync(dir);
  }
}

/** The checkpoint directory cannot serve this trial: invalid input, found before any training. */
export class CheckpointDirError extends Error {
  override name = 'CheckpointDirError';
}

/**
 * Before epoch 1: the directory exists (or is created), is a directory and writable, and holds no checkpoint of
 * another trial. On a fresh start a checkpoint whose owner cannot be read is refused too (it might be another
 * trial's, about to be overwritten); with `resume` it is left for latestValidCheckpoint to skip.
 */
export function prepareCheckpointDir(dir: string, trialKey: string, options: { resume?: boolean } = {}): void {
  const flag = `--checkpoint-dir ${dir}`;
  try {
    makeDirectory(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CheckpointDirError(
      code === 'EEXIST' || code === 'ENOTDIR'
        ? `${flag}: not a directory (a file is in the way); give a directory`
        : `${flag}: cannot create it (${(error as Error).message})`,
    );
  }
  if (!fs.statSync(dir).isDirectory()) throw new CheckpointDirError(`${flag}: not a directory (a file is in the way); give a directory`);
  const probe = path.join(dir, `.write-test-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (error) {
    throw new CheckpointDirError(`${flag}: not writable (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); give a directory this user can write`);
  }
  const files = [...epochFiles(dir).map((f) => f.path), ...(fs.existsSync(midEpochCheckpointPath(dir)) ? [midEpochCheckpointPath(dir)] : [])];
  const others: string[] = [];
  const unreadable: string[] = [];
  for (const file of files) {
    const owner = ownerOf(file);
    if ('error' in owner) unreadable.push(owner.error);
    else if (owner.key !== trialKey) others.push(`${path.basename(file)} (trial ${owner.key.slice(0, 12)})`);
  }
  if (others.length > 0) {
    throw new CheckpointDirError(
      `${flag} holds checkpoints of another trial: ${others.join(', ')}; this trial is ${trialKey.slice(0, 12)}. ` +
        'Use one directory per trial (or an empty one); nothing was written or deleted',
    );
  }
  if (unreadable.length > 0 && !options.resume) {
    throw new CheckpointDirError(
      `${flag} holds checkpoint files that cannot be read, so whose they are is unknown: ${unreadable.join('; ')}. ` +
        'Remove them or use another directory (with --resume they would be skipped)',
    );
  }
}

export interface ValidCheckpoint<P> {
  path: string;
  epoch: number;
  content: CheckpointContent<P> & { sha256: string };
}

/**
 * The newest epoch checkpoint of this trial that reads and verifies, and the newer ones it had to skip (with the
 * reason): a corrupt newest file falls back to the older one kept beside it.
 */
/** Tell the user (stderr) which checkpoints --resume skipped and where it continues from. */
export function reportSkippedCheckpoints(skipped: readonly { path: string; reason: string }[], found: { path: string } | null): void {
  if (skipped.length === 0) return;
  for (const s of skipped) process.stderr.write(`mmsweep: --resume skipped checkpoint ${s.path}: ${s.reason}\n`);
  process.stderr.write(found ? `mmsweep: --resume continues from ${found.path}\n` : 'mmsweep: --resume found no valid checkpoint: starting afresh\n');
}

export function latestValidCheckpoint<P>(dir: string, trialKey: string): { found: ValidCheckpoint<P> | null; skipped: { path: string; reason: string }[] } {
  const skipped: { path: string; reason: string }[] = [];
  for (const f of epochFiles(dir)) {
    try {
      const content = readCheckpointFile<P>(f.path);
      if (content.trialKey !== trialKey) {
        skipped.push({ path: f.path, reason: `belongs to trial ${content.trialKey.slice(0, 12)}` });
        continue;
      }
      return { found: { path: f.path, epoch: f.epoch, content }, skipped };
    } catch (error) {
      if (!(error instanceof CheckpointFileError)) throw error;
      skipped.push({ path: f.path, reason: error.message.startsWith(f.path) ? error.message.slice(f.path.length + 2) : error.message });
    }
  }
  return { found: null, skipped };
}

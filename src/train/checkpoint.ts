import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Checkpoint file format (version 1), little-endian:
 *   bytes 0–7   ASCII magic "MMSWCKPT"
 *   bytes 8–11  uint32 format version (1)
 *   bytes 12–15 uint32 byte length H of the JSON header
 *   16 … 16+H   UTF-8 JSON header, padded with spaces to a multiple of 4 bytes
 *   then        the blob section: raw float32 arrays, back to back
 * The header holds `payload` (any JSON: counters, schedule states, history, the TrialSpec and its hash…),
 * `blobs` (name, offset and length in float32 elements, relative to the blob section) and `blobSha256`
 * (sha256 of the blob section, verified on read). Files are written atomically: temp file, fsync, rename.
 */
/**
 * A checkpoint that does not belong to the trial being resumed. Lives here, not in the trainer, so that runners
 * that train nothing (the noop trial, the CLI's error mapping) can name it without loading tfjs.
 */
export class ResumeMismatchError extends Error {
  override name = 'ResumeMismatchError';
}

export const CHECKPOINT_MAGIC = 'MMSWCKPT';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointContent<P = unknown> {
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
  blobs: { name: string; offset: number; length: number }[];
  blobSha256: string;
  payload: unknown;
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
    blobs: index,
    blobSha256: createHash('sha256').update(blobSection).digest('hex'),
    payload: content.payload,
  };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 4) * 4;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const prefix = Buffer.alloc(16);
  prefix.write(CHECKPOINT_MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(CHECKPOINT_VERSION, 8);
  prefix.writeUInt32LE(json.length, 12);
  return Buffer.concat([prefix, json, blobSection]);
}

export function decodeCheckpoint<P = unknown>(bytes: Buffer, source = 'checkpoint'): CheckpointContent<P> {
  if (bytes.length < 16 || bytes.toString('ascii', 0, 8) !== CHECKPOINT_MAGIC) {
    throw new Error(`${source}: not an mmsweep checkpoint (bad magic)`);
  }
  const version = bytes.readUInt32LE(8);
  if (version !== CHECKPOINT_VERSION) throw new Error(`${source}: checkpoint format version ${version}, expected ${CHECKPOINT_VERSION}`);
  const headerLength = bytes.readUInt32LE(12);
  if (16 + headerLength > bytes.length) throw new Error(`${source}: truncated header`);
  const header = JSON.parse(bytes.toString('utf8', 16, 16 + headerLength)) as Header;
  const blobSection = bytes.subarray(16 + headerLength);
  const sha = createHash('sha256').update(blobSection).digest('hex');
  if (sha !== header.blobSha256) throw new Error(`${source}: blob checksum mismatch (file corrupt or truncated)`);
  // Copy into an aligned buffer: the blob section's byte offset need not be 4-aligned inside `bytes`.
  const aligned = new Float32Array(blobSection.length / 4);
  Buffer.from(aligned.buffer).set(blobSection);
  const blobs: Record<string, Float32Array> = {};
  for (const b of header.blobs) blobs[b.name] = aligned.slice(b.offset, b.offset + b.length);
  return { payload: header.payload as P, blobs };
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
  const bytes = fs.readFileSync(filePath);
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

/** Delete epoch checkpoints older than the newest `keep` (they are superseded; each holds the full state). */
export function pruneCheckpoints(dir: string, keep: number): void {
  const files = fs
    .readdirSync(dir)
    .map((name) => ({ name, m: EPOCH_FILE.exec(name) }))
    .filter((f) => f.m)
    .sort((a, b) => Number(b.m![1]) - Number(a.m![1]));
  for (const f of files.slice(keep)) fs.rmSync(path.join(dir, f.name), { force: true });
}

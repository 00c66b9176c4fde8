import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkpointPath,
  decodeCheckpoint,
  encodeCheckpoint,
  latestCheckpoint,
  pruneCheckpoints,
  readCheckpointFile,
  writeCheckpointFile,
} from '../../src/train/checkpoint.ts';

describe('checkpoint format', () => {
  const content = {
    trialKey: 'a'.repeat(64),
    payload: { epoch: 3, lr: 0.0123456789012345, nested: { a: [1, null, 'x'] } },
    blobs: { 'var/0': Float32Array.of(1.5, -2.25, Math.PI), 'slot/0': new Float32Array(0), x: Float32Array.of(Number.MIN_VALUE, 1e-40) },
  };

  it('round-trips payload and blobs exactly, with the documented layout', () => {
    const bytes = encodeCheckpoint(content);
    expect(bytes.toString('ascii', 0, 8)).toBe('MMSWCKPT');
    expect(bytes.readUInt32LE(8)).toBe(2);
    const h = bytes.readUInt32LE(12);
    expect(h % 4).toBe(0);
    const header = JSON.parse(bytes.toString('utf8', 16, 16 + h));
    expect(header.trialKey).toBe(content.trialKey);
    // The trailer is the sha256 of everything before it, the header included.
    const body = bytes.subarray(0, bytes.length - 32);
    expect(bytes.subarray(bytes.length - 32).toString('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect(bytes.readFloatLE(16 + h + 4)).toBe(-2.25);
    const back = decodeCheckpoint(bytes);
    expect(back.payload).toEqual(content.payload);
    expect(back.trialKey).toBe(content.trialKey);
    for (const [k, v] of Object.entries(content.blobs)) expect(Array.from(back.blobs[k])).toEqual(Array.from(v));
  });

  it('detects corruption and truncation', () => {
    const bytes = encodeCheckpoint(content);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1] ^= 0xff;
    expect(() => decodeCheckpoint(flipped, 'f')).toThrow(/checksum/);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4), 'f')).toThrow(/checksum/);
    expect(() => decodeCheckpoint(Buffer.from('nope'), 'f')).toThrow(/checkpoint/);
    // An edited header (here a payload value, same length) no longer verifies.
    const edited = Buffer.from(bytes.toString('latin1').replace('"epoch":3', '"epoch":7'), 'latin1');
    expect(edited.length).toBe(bytes.length);
    expect(() => decodeCheckpoint(edited, 'f')).toThrow(/f: checksum mismatch/);
  });

  it('writes atomically, finds the latest, prunes older ones', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mmsweep-ckpt-'));
    try {
      for (const e of [1, 2, 10]) {
        const w = writeCheckpointFile(checkpointPath(dir, e), { trialKey: 'k', payload: { e }, blobs: {} });
        expect(w.sha256).toBe(createHash('sha256').update(fs.readFileSync(w.path)).digest('hex'));
      }
      expect(fs.readdirSync(dir).some((f) => f.includes('.tmp'))).toBe(false);
      expect(latestCheckpoint(dir)?.epoch).toBe(10);
      pruneCheckpoints(dir, 2, 'k');
      expect(fs.readdirSync(dir).sort()).toEqual(['epoch-0002.ckpt', 'epoch-0010.ckpt']);
      expect(readCheckpointFile<{ e: number }>(checkpointPath(dir, 10)).payload.e).toBe(10);
      expect(latestCheckpoint(path.join(dir, 'missing'))).toBeNull();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

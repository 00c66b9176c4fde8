import { readFileSync } from 'node:fs';

/**
 * Reader of the IDX format of the MNIST files: a 4-byte magic (two zero bytes, a type code, the number of
 * dimensions), one big-endian uint32 per dimension, then the data in row-major order. Only unsigned bytes
 * (type 0x08) occur in MNIST and only they are supported.
 */

export const IDX_UBYTE = 0x08;

export interface IdxArray {
  dims: number[];
  /** A view on the file's bytes after the header (no copy). */
  data: Uint8Array;
}

/** A missing, truncated or corrupt data file; the message names the file and the fix. */
export class DataFileError extends Error {
  constructor(
    readonly file: string,
    problem: string,
    fix: string,
  ) {
    super(`${file}: ${problem}. ${fix}`);
    this.name = 'DataFileError';
  }
}

/**
 * Parse IDX bytes. `expected` pins the number of dimensions and (optionally) each dimension, so that a file of
 * the wrong kind (labels passed as images) is rejected with a clear message.
 */
export function parseIdx(
  bytes: Uint8Array,
  file: string,
  fix: string,
  expected: { rank: number; dims?: (number | undefined)[] },
): IdxArray {
  if (bytes.length < 4) throw new DataFileError(file, `file is ${bytes.length} bytes, too short for an IDX header`, fix);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const typeCode = bytes[2];
  const rank = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0 || typeCode !== IDX_UBYTE || rank !== expected.rank) {
    const magic = view.getUint32(0, false).toString(16).padStart(8, '0');
    const want = (0x800 + expected.rank).toString(16).padStart(8, '0');
    throw new DataFileError(file, `bad IDX magic number 0x${magic} (expected 0x${want}: unsigned bytes, ${expected.rank} dimensions)`, fix);
  }
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) throw new DataFileError(file, `truncated IDX header (${bytes.length} bytes)`, fix);
  const dims: number[] = [];
  for (let d = 0; d < rank; d++) dims.push(view.getUint32(4 + 4 * d, false));
  expected.dims?.forEach((want, d) => {
    if (want !== undefined && dims[d] !== want) {
      throw new DataFileError(file, `dimension ${d} is ${dims[d]}, expected ${want} (header dims ${dims.join('×')})`, fix);
    }
  });
  const payload = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== headerBytes + payload) {
    const what = bytes.length < headerBytes + payload ? 'truncated' : 'has trailing bytes';
    throw new DataFileError(
      file,
      `file ${what}: ${bytes.length} bytes, but its header (${dims.join('×')}) needs ${headerBytes + payload}`,
      fix,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Read and parse an IDX file; a missing or unreadable file raises a DataFileError. */
export function readIdxFile(file: string, fix: string, expected: { rank: number; dims?: (number | undefined)[] }): IdxArray {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DataFileError(file, code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(err)})`, fix);
  }
  return parseIdx(bytes, file, fix, expected);
}

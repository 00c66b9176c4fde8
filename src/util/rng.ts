/**
 * Seeded pseudo-random numbers, the one generator of every layer (data, nn, train, spec): xoshiro128** (32-bit
 * state words, so it runs on plain JS integer arithmetic) seeded through a murmur3-style hash of a list of seed
 * parts. Everything here is integer arithmetic except `uniform()` (exact) and `normal()` (Box–Muller with
 * Math.log/cos/sqrt, which V8 evaluates identically on every platform), so equal seeds give equal streams.
 *
 * Streams are named by their parts, e.g. `Rng.from('cmnist-train-colors', dataSeed)`, so different uses of one
 * user seed never share a stream.
 */

const TWO_POW_32 = 4294967296;

/** murmur3's 32-bit finaliser: a bijective avalanche mix. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash seed parts (strings, or non-negative integers up to 2^53) into one 32-bit word. */
export function hashSeedParts(parts: readonly (string | number)[]): number {
  let h = 0x9e3779b9;
  const absorb = (word: number) => {
    h = fmix32((h ^ word) + 0x7f4a7c15);
  };
  for (const part of parts) {
    if (typeof part === 'string') {
      absorb(0x53545200 + part.length); // tag strings so 'a' and 97 differ
      for (let i = 0; i < part.length; i++) absorb(part.charCodeAt(i));
    } else {
      if (!Number.isSafeInteger(part)) throw new Error(`seed part ${part} is not a safe integer`);
      const negative = part < 0;
      const magnitude = Math.abs(part);
      absorb(negative ? 0x4e454700 : 0x504f5300);
      absorb(magnitude % TWO_POW_32);
      absorb(Math.floor(magnitude / TWO_POW_32));
    }
  }
  return h;
}

export interface RngState {
  words: number[];
  spareNormal: number | null;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | null = null;

  /** A stream named by its seed parts (order matters). */
  static from(...parts: (string | number)[]): Rng {
    return new Rng(hashSeedParts(parts));
  }

  /** A generator at an explicit xoshiro128** state (not all zero), e.g. to check it against reference vectors. */
  static fromState(state: readonly [number, number, number, number]): Rng {
    if (state.every((w) => w >>> 0 === 0)) throw new Error('xoshiro128** state must not be all zero');
    const rng = new Rng(0);
    [rng.s0, rng.s1, rng.s2, rng.s3] = state.map((w) => w >>> 0);
    return rng;
  }

  constructor(seed32: number) {
    // splitmix32 expands one word into the four state words (never all zero).
    let x = seed32 >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      return fmix32(x);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The generator's whole state (the four words and the spare normal), for exact checkpoints. */
  getState(): RngState {
    return { words: [this.s0, this.s1, this.s2, this.s3], spareNormal: this.spareNormal };
  }

  /** Continue exactly where a `getState()` left off. */
  setState(state: RngState): void {
    const words = state.words.map((w) => w >>> 0);
    if (words.length !== 4 || words.every((w) => w === 0)) throw new Error('Rng.setState: invalid xoshiro128** state');
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
    this.spareNormal = state.spareNormal;
  }

  /** Next uint32 (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n), unbiased (rejection of the top partial range). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) throw new Error(`Rng.int: bad range ${n}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal N(0, 1) by Box–Muller; the second value of each pair is kept for the next call. */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    const u1 = (this.nextUint32() + 1) / TWO_POW_32; // (0, 1]: log(u1) is finite
    const u2 = this.uniform();
    const radius = Math.sqrt(-2 * Math.log(u1));
    const angle = 2 * Math.PI * u2;
    this.spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: number }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** A seeded permutation of 0…n−1. */
export function seededPermutation(n: number, rng: Rng): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return rng.shuffle(order);
}

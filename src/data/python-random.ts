/**
 * Just enough of CPython's `random` module to reproduce the ModelNet40 validation split of the authors' code
 * (paper-spec §3.2): `random.Random(seed).shuffle(list(range(n)))`.
 *
 * CPython seeds its MT19937 from a non-negative int through `init_by_array` with the 32-bit words of the integer
 * (least significant first), draws `getrandbits(k)` (k ≤ 32) as the top k bits of one 32-bit output, and
 * `shuffle` is Fisher–Yates from the end with `_randbelow(i + 1)` = rejection sampling on `getrandbits(bit_length)`.
 * Written from the published MT19937 reference algorithm and the documented behaviour of CPython ≥ 3.2;
 * the tests compare against values printed by CPython 3.11.
 */

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

export class PythonRandom {
  private readonly mt = new Uint32Array(N);
  private index = N + 1;

  /** `random.Random(seed)` for a non-negative integer seed (ints beyond 2^53 are not supported). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new Error(`PythonRandom: seed must be a safe integer, got ${seed}`);
    let magnitude = Math.abs(seed); // CPython seeds with abs(n)
    const key: number[] = [];
    do {
      key.push(magnitude % 4294967296);
      magnitude = Math.floor(magnitude / 4294967296);
    } while (magnitude > 0);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.index = N;
  }

  private initByArray(key: number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(prev, 1664525)) + key[j]! + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000; // MSB is 1: the state is not all zero
  }

  /** Next 32-bit output of MT19937. */
  nextUint32(): number {
    const mt = this.mt;
    if (this.index >= N) {
      for (let k = 0; k < N; k++) {
        const y = (mt[k]! & UPPER_MASK) | (mt[(k + 1) % N]! & LOWER_MASK);
        mt[k] = mt[(k + M) % N]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      this.index = 0;
    }
    let y = mt[this.index++]!;
    y ^= y >>> 11;
    y = (y ^ ((y << 7) & 0x9d2c5680)) >>> 0;
    y = (y ^ ((y << 15) & 0xefc60000)) >>> 0;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `getrandbits(k)` for 1 ≤ k ≤ 32. */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 1 || k > 32) throw new Error(`getrandbits: k must be in 1…32, got ${k}`);
    return this.nextUint32() >>> (32 - k);
  }

  /** `_randbelow(n)` for 1 ≤ n ≤ 2^32. */
  randbelow(n: number): number {
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** `shuffle(x)` in place. */
  shuffle<T>(x: T[]): T[] {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const tmp = x[i]!;
      x[i] = x[j]!;
      x[j] = tmp;
    }
    return x;
  }
}

function bitLength(n: number): number {
  let bits = 0;
  while (n > 0) {
    bits++;
    n = Math.floor(n / 2);
  }
  return bits;
}

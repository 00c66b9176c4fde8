/**
 * Seeded pseudo-random numbers for weight initialisation.
 *
 * Weights are drawn in JavaScript (not with tfjs random ops) and uploaded, so the same seed gives bit-identical
 * initial weights on every backend. Every parameter has its own stream, derived from (seed, parameter name): adding
 * or moving an MMTM does not change the initial weights of the branches, and a uni-modal SE net built with the same
 * seed starts from the same backbone weights as the matching branch of the two-branch net.
 */

/** 32-bit FNV-1a hash of a string (UTF-16 code units). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** One step of splitmix32: a well-mixed 32-bit value from a 32-bit state (used to seed the generator). */
function splitmix32(state: number): [value: number, next: number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z = (z ^ (z >>> 16)) >>> 0;
  return [z, next];
}

/** sfc32 (small fast counting generator, 128-bit state), seeded through splitmix32. */
export class SeededRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`seed must be an integer in [0, 2^32), got ${seed}`);
    }
    let state = seed >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [value, next] = splitmix32(state);
      words.push(value);
      state = next;
    }
    [this.a, this.b, this.c, this.d] = words as [number, number, number, number];
    // Discard the first outputs: sfc32's early outputs are correlated with the seed words.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** For a seed and a label (e.g. a parameter name), a stream independent of every other label's. */
  static forLabel(seed: number, label: string): SeededRandom {
    const [mixed] = splitmix32((seed >>> 0) ^ fnv1a(label));
    return new SeededRandom(mixed);
  }

  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in the open interval (0, 1), 53-bit resolution. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low + 0.5) / 9007199254740992;
  }

  /** Uniform in (−bound, bound). */
  nextSymmetric(bound: number): number {
    return (2 * this.nextFloat() - 1) * bound;
  }
}

/** `size` values uniform in (−bound, bound) from the stream of (seed, label), rounded to float32. */
export function uniformValues(seed: number, label: string, size: number, bound: number): Float32Array {
  const random = SeededRandom.forLabel(seed, label);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = random.nextSymmetric(bound);
  return values;
}

/**
 * `size` values from N(0, std²) from the stream of (seed, label), rounded to float32 (Box–Muller on the stream's
 * uniforms; used by the Kaiming-normal initialisation of bias-free convolutions).
 */
export function normalValues(seed: number, label: string, size: number, std: number): Float32Array {
  const random = SeededRandom.forLabel(seed, label);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(random.nextFloat()));
    const angle = 2 * Math.PI * random.nextFloat();
    values[i] = std * radius * Math.cos(angle);
    if (i + 1 < size) values[i + 1] = std * radius * Math.sin(angle);
  }
  return values;
}

import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { DataFileError } from './idx.ts';

/**
 * Audio for CREMA-D: RIFF/WAVE parsing (16-bit PCM only), band-limited resampling, and the log-magnitude STFT that
 * the balancing-method setups feed their audio ResNet18 (OGM-GE, Peng et al. CVPR 2022, whose CREMA-D loader uses
 * librosa: load at 22,050 Hz, tile to 3 s, clip to [−1, 1], STFT n_fft 512 / hop 353 with a periodic Hann window
 * and centred frames, log(|X| + 1e−7): 257 frequencies × 188 frames).
 */

export interface WavHeader {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Byte offset of the `data` chunk's payload and its length (clamped to the file). */
  dataOffset: number;
  dataBytes: number;
  /** Sample frames (one sample per channel each). */
  frames: number;
}

const WAV_FIX = 'CREMA-D ships 16-bit PCM WAV files in AudioWAV/: re-extract this file from the data set';

/**
 * Parse the header chunks of a WAV file. `bytes` may be only the start of the file (`fileSize` gives the whole
 * length): the `data` chunk's payload need not be present. Only PCM (format 1, or WAVE_FORMAT_EXTENSIBLE with the
 * PCM sub-format) at 16 bits is accepted; anything else is refused naming the format found.
 */
export function parseWavHeader(bytes: Uint8Array, file: string, fileSize = bytes.length): WavHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at: number) => String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    throw new DataFileError(file, 'not a RIFF/WAVE file (no "RIFF…WAVE" header)', WAV_FIX);
  }
  let at = 12;
  let format: { code: number; channels: number; sampleRate: number; bits: number } | null = null;
  while (at + 8 <= bytes.length) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (body + 16 > bytes.length) break;
      let code = view.getUint16(body, true);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
      if (code === 0xfffe && size >= 40 && body + 26 <= bytes.length) code = view.getUint16(body + 24, true);
      format = { code, channels: view.getUint16(body + 2, true), sampleRate: view.getUint32(body + 4, true), bits: view.getUint16(body + 14, true) };
    } else if (id === 'data') {
      if (!format) throw new DataFileError(file, 'the "data" chunk comes before any "fmt " chunk', WAV_FIX);
      if (format.code !== 1) {
        const name = format.code === 3 ? 'IEEE float' : format.code === 6 ? 'A-law' : format.code === 7 ? 'µ-law' : `format code ${format.code}`;
        throw new DataFileError(file, `${name} audio; only 16-bit PCM WAV is supported`, WAV_FIX);
      }
      if (format.bits !== 16) throw new DataFileError(file, `${format.bits}-bit PCM; only 16-bit PCM WAV is supported`, WAV_FIX);
      if (format.channels < 1) throw new DataFileError(file, 'the fmt chunk declares 0 channels', WAV_FIX);
      if (format.sampleRate < 1) throw new DataFileError(file, 'the fmt chunk declares a sample rate of 0', WAV_FIX);
      // A truncated file (or a writer that left the size at 0xFFFFFFFF) holds what is there.
      const dataBytes = Math.min(size, Math.max(0, fileSize - body));
      const frameBytes = 2 * format.channels;
      return { sampleRate: format.sampleRate, channels: format.channels, bitsPerSample: 16, dataOffset: body, dataBytes, frames: Math.floor(dataBytes / frameBytes) };
    }
    at = body + size + (size % 2); // chunks are word-aligned
  }
  throw new DataFileError(file, format ? 'no "data" chunk found' : 'no "fmt " chunk found', WAV_FIX);
}

/** The header of a WAV file, reading only its first bytes. */
export function readWavHeader(file: string): WavHeader {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new DataFileError(file, `cannot read the audio file (${(err as NodeJS.ErrnoException).code ?? String(err)})`, WAV_FIX);
  }
  try {
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    return parseWavHeader(head.subarray(0, n), file, fstatSync(fd).size);
  } finally {
    closeSync(fd);
  }
}

/** The samples of a 16-bit PCM WAV file as floats x/32768 ∈ [−1, 1), channels averaged to mono (as librosa's `mono=True`). */
export function readWavMono(file: string): { samples: Float32Array; sampleRate: number } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new DataFileError(file, `cannot read the audio file (${(err as NodeJS.ErrnoException).code ?? String(err)})`, WAV_FIX);
  }
  const header = parseWavHeader(bytes, file);
  const view = new DataView(bytes.buffer, bytes.byteOffset + header.dataOffset, header.frames * header.channels * 2);
  const samples = new Float32Array(header.frames);
  const C = header.channels;
  for (let i = 0; i < header.frames; i++) {
    let sum = 0;
    for (let c = 0; c < C; c++) sum += view.getInt16((i * C + c) * 2, true);
    samples[i] = sum / C / 32768;
  }
  return { samples, sampleRate: header.sampleRate };
}

// ---------------------------------------------------------------------------------------------------------------
// Resampling

/** Zeroth-order modified Bessel function of the first kind (power series), for the Kaiser window. */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 50; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/** Zero crossings of the sinc kept on each side, and the Kaiser β: stop band ≈ −90 dB. */
const RESAMPLE_ZEROS = 32;
const RESAMPLE_BETA = 9;
/** Table points per zero crossing of the kernel (linearly interpolated between them, as resampy does). */
const RESAMPLE_OVERSAMPLE = 512;

/** h(u) = sinc(u)·kaiser(u / RESAMPLE_ZEROS) at u = i / RESAMPLE_OVERSAMPLE, u ∈ [0, RESAMPLE_ZEROS] (one side; h is even). */
const resampleKernel = (() => {
  const n = RESAMPLE_ZEROS * RESAMPLE_OVERSAMPLE + 2;
  const table = new Float64Array(n);
  const i0Beta = besselI0(RESAMPLE_BETA);
  for (let i = 0; i < n; i++) {
    const u = i / RESAMPLE_OVERSAMPLE;
    const r = u / RESAMPLE_ZEROS;
    const window = r >= 1 ? 0 : besselI0(RESAMPLE_BETA * Math.sqrt(1 - r * r)) / i0Beta;
    table[i] = (u === 0 ? 1 : Math.sin(Math.PI * u) / (Math.PI * u)) * window;
  }
  return table;
})();

/**
 * Band-limited resampling from `fromRate` to `toRate` by a Kaiser-windowed sinc: output sample j (time j/toRate) is
 * Σ_k x[k]·c·h(c·(j·fromRate/toRate − k)), c = min(1, toRate/fromRate) the cut-off in input cycles, h the windowed
 * sinc (tabulated), samples outside the signal taken as 0. Output length ceil(n·toRate/fromRate), as librosa's.
 * librosa itself uses soxr (or resampy's Kaiser filter in older versions): values agree with it to the filters'
 * accuracy, not bit for bit.
 */
export function resample(x: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (!(fromRate > 0 && toRate > 0)) throw new Error(`resample: rates must be positive, got ${fromRate} → ${toRate}`);
  if (fromRate === toRate) return x.slice();
  const n = x.length;
  const outLength = Math.ceil((n * toRate) / fromRate);
  const out = new Float32Array(outLength);
  const cutoff = Math.min(1, toRate / fromRate);
  const halfWidth = RESAMPLE_ZEROS / cutoff; // in input samples
  const step = fromRate / toRate;
  const scale = cutoff * RESAMPLE_OVERSAMPLE;
  const table = resampleKernel;
  for (let j = 0; j < outLength; j++) {
    const t = j * step;
    const first = Math.max(0, Math.ceil(t - halfWidth));
    const last = Math.min(n - 1, Math.floor(t + halfWidth));
    let acc = 0;
    for (let k = first; k <= last; k++) {
      const position = Math.abs(t - k) * scale;
      const i = Math.floor(position);
      const frac = position - i;
      acc += x[k]! * (table[i]! + frac * (table[i + 1]! - table[i]!));
    }
    out[j] = acc * cutoff;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// FFT and spectrogram

/**
 * In-place iterative radix-2 FFT of a complex sequence (re, im) whose length is a power of two:
 * X[k] = Σ_n x[n]·e^{−2πi·kn/N}.
 */
export function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (im.length !== n) throw new Error(`fft: real and imaginary parts differ in length (${n} vs ${im.length})`);
  if (n < 1 || (n & (n - 1)) !== 0) throw new Error(`fft: the length must be a power of two, got ${n}`);
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const half = size >> 1;
    const angle = (-2 * Math.PI) / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = Math.cos(angle * k);
        const wi = Math.sin(angle * k);
        const a = start + k;
        const b = a + half;
        const tr = re[b]! * wr - im[b]! * wi;
        const ti = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
      }
    }
  }
}

export interface SpectrogramOptions {
  nFft: number;
  hop: number;
  /** Added to |X| before the log (OGM-GE: 1e-7). */
  floor: number;
}

/** Frames of a centred STFT: 1 + ⌊L / hop⌋. */
export function stftFrames(length: number, hop: number): number {
  return 1 + Math.floor(length / hop);
}

/**
 * log(|STFT(x)| + floor) as a (nFft/2 + 1) × frames matrix, frequency-major (row f, column t), so that as a
 * channels-last image it is H = frequency × W = time, the [1, 257, 188] input of the OGM-GE audio net. Frames are
 * centred (librosa `center=True`): the signal is padded by nFft/2 on both sides by reflection (numpy `reflect`, the
 * edge sample not repeated; librosa's default before 0.10), frame t covers padded samples t·hop … t·hop + nFft − 1,
 * windowed by the periodic Hann window w[n] = ½ − ½·cos(2πn/nFft).
 */
export function logSpectrogram(x: Float32Array, options: SpectrogramOptions): { data: Float32Array; bins: number; frames: number } {
  const { nFft, hop, floor } = options;
  const pad = nFft >> 1;
  if (x.length <= pad) throw new Error(`logSpectrogram: ${x.length} samples are too few for reflect padding of ${pad}`);
  const L = x.length;
  const frames = stftFrames(L, hop);
  const bins = (nFft >> 1) + 1;
  const at = (i: number): number => {
    // Index i of the padded signal (i − pad in x), reflected at both ends without repeating the edge.
    let k = i - pad;
    if (k < 0) k = -k;
    if (k >= L) k = 2 * (L - 1) - k;
    return x[k]!;
  };
  const window = new Float64Array(nFft);
  for (let n = 0; n < nFft; n++) window[n] = 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / nFft);
  const data = new Float32Array(bins * frames);
  const re = new Float64Array(nFft);
  const im = new Float64Array(nFft);
  for (let t = 0; t < frames; t++) {
    for (let n = 0; n < nFft; n++) {
      re[n] = at(t * hop + n) * window[n]!;
      im[n] = 0;
    }
    fft(re, im);
    for (let f = 0; f < bins; f++) data[f * frames + t] = Math.log(Math.hypot(re[f]!, im[f]!) + floor);
  }
  return { data, bins, frames };
}

/** `x` repeated end to end and cut to `length` samples (OGM-GE tiles the clip, then keeps the first 3 s). */
export function tileTo(x: Float32Array, length: number): Float32Array {
  if (x.length === 0) throw new Error('tileTo: an empty signal cannot be tiled');
  const out = new Float32Array(length);
  for (let i = 0; i < length; i += x.length) out.set(x.subarray(0, Math.min(x.length, length - i)), i);
  return out;
}

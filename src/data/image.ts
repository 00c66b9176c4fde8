import { readFileSync } from 'node:fs';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DataFileError } from './idx.ts';

/**
 * Image helpers of the ModelNet40 and CREMA-D loaders: PNG (pngjs) and JPEG (jpeg-js) decoding, cropping, resizing
 * and horizontal flips of channels-last uint8 RGB images (H×W×3).
 */

export interface RgbImage {
  width: number;
  height: number;
  /** H×W×3 bytes, row-major, channels last. */
  data: Uint8Array;
}

function readImageFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new DataFileError(file, `cannot read the image (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'Check that the data set is complete and readable');
  }
}

/** Both decoders give RGBA; the alpha channel is dropped, as PIL's `convert('RGB')` does for the authors' loaders. */
function rgbOfRgba(width: number, height: number, rgba: Uint8Array): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0, q = 0; p < data.length; p += 3, q += 4) {
    data[p] = rgba[q]!;
    data[p + 1] = rgba[q + 1]!;
    data[p + 2] = rgba[q + 2]!;
  }
  return { width, height, data };
}

/**
 * Decode a PNG file into 8-bit RGB. pngjs expands every colour type (gray, gray+alpha, palette, RGB, RGBA;
 * 16-bit scaled to 8-bit) to RGBA, so a gray render becomes three identical channels.
 */
export function readPngRgb(file: string): RgbImage {
  const bytes = readImageFile(file);
  let png: { width: number; height: number; data: Buffer };
  try {
    png = PNG.sync.read(bytes);
  } catch (err) {
    throw new DataFileError(file, `not a valid PNG (${(err as Error).message})`, 'Re-extract this file from the data set archive');
  }
  return rgbOfRgba(png.width, png.height, png.data);
}

/**
 * Decode a baseline or progressive JPEG file into 8-bit RGB with jpeg-js (pure JavaScript, so every backend reads
 * it). Gray JPEGs become three equal channels, as PIL's `convert('RGB')`.
 */
export function readJpegRgb(file: string): RgbImage {
  const bytes = readImageFile(file);
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
  } catch (err) {
    throw new DataFileError(file, `not a valid JPEG (${(err as Error).message})`, 'Extract the frames of this clip again');
  }
  return rgbOfRgba(decoded.width, decoded.height, decoded.data);
}

/** The h×w region of an RGB image whose top-left pixel is (top, left); it must lie inside the image. */
export function cropRgb(image: RgbImage, top: number, left: number, height: number, width: number): RgbImage {
  if (top < 0 || left < 0 || height < 1 || width < 1 || top + height > image.height || left + width > image.width) {
    throw new Error(`cropRgb: region ${width}×${height} at (${left}, ${top}) is outside the ${image.width}×${image.height} image`);
  }
  const data = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * image.width + left) * 3;
    data.set(image.data.subarray(from, from + width * 3), y * width * 3);
  }
  return { width, height, data };
}

interface FilterTaps {
  /** First input index of each output position. */
  start: Int32Array;
  /** Number of taps of each output position. */
  count: Int32Array;
  /** `maxTaps` normalised weights per output position. */
  weights: Float64Array;
  maxTaps: number;
}

/**
 * Taps of the bilinear (triangle) filter from `inSize` to `outSize` samples, pixel centres at i + 0.5. When
 * shrinking, the triangle is widened by the scale factor so that every input pixel contributes (the antialiased
 * "bilinear" of PIL / torchvision's Resize on PIL images); when enlarging it is plain linear interpolation. Weights
 * falling outside the image are dropped and the rest renormalised (edge pixels are not padded).
 */
function triangleTaps(inSize: number, outSize: number): FilterTaps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * maxTaps);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const first = Math.max(Math.floor(centre - support + 0.5), 0);
    const last = Math.min(Math.floor(centre + support + 0.5), inSize); // exclusive
    let total = 0;
    for (let j = first; j < last; j++) {
      const w = Math.max(0, 1 - Math.abs((j + 0.5 - centre) / filterScale));
      weights[i * maxTaps + (j - first)] = w;
      total += w;
    }
    for (let t = 0; t < last - first; t++) weights[i * maxTaps + t] /= total;
    start[i] = first;
    count[i] = last - first;
  }
  return { start, count, weights, maxTaps };
}

/** Resize an RGB image with the triangle filter (horizontal pass, then vertical), rounding to the nearest byte. */
export function resizeBilinear(image: RgbImage, outWidth: number, outHeight: number): RgbImage {
  const { width, height, data } = image;
  if (width === outWidth && height === outHeight) return { width, height, data: data.slice() };
  const horizontal = triangleTaps(width, outWidth);
  const vertical = triangleTaps(height, outHeight);
  const rows = new Float64Array(height * outWidth * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < outWidth; x++) {
      const s = horizontal.start[x]!;
      const n = horizontal.count[x]!;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let t = 0; t < n; t++) {
        const w = horizontal.weights[x * horizontal.maxTaps + t]!;
        const p = (y * width + s + t) * 3;
        r += w * data[p]!;
        g += w * data[p + 1]!;
        b += w * data[p + 2]!;
      }
      const o = (y * outWidth + x) * 3;
      rows[o] = r;
      rows[o + 1] = g;
      rows[o + 2] = b;
    }
  }
  const out = new Uint8Array(outHeight * outWidth * 3);
  for (let y = 0; y < outHeight; y++) {
    const s = vertical.start[y]!;
    const n = vertical.count[y]!;
    for (let x = 0; x < outWidth; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let t = 0; t < n; t++) v += vertical.weights[y * vertical.maxTaps + t]! * rows[((s + t) * outWidth + x) * 3 + c]!;
        out[(y * outWidth + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(v)));
      }
    }
  }
  return { width: outWidth, height: outHeight, data: out };
}

/** Mirror an H×W×C channels-last byte image left–right into `out` (which must not alias `src`). */
export function flipHorizontal(src: Uint8Array, out: Uint8Array, width: number, height: number, channels: number): void {
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    for (let x = 0; x < width; x++) {
      const from = row + x * channels;
      const to = row + (width - 1 - x) * channels;
      for (let c = 0; c < channels; c++) out[to + c] = src[from + c]!;
    }
  }
}

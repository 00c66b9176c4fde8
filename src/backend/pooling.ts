import * as tf from '@tensorflow/tfjs';

/**
 * Pooling loops on plain Float32Arrays, shared by the wasm and cpu kernels that replace faulty stock ones.
 * Channels-last; 2-D pooling is 3-D pooling with depth 1.
 */

/** Geometry of a (possibly 3-D) pooling window, with 2-D as depth 1. */
export interface PoolGeometry {
  batch: number; inDepth: number; inHeight: number; inWidth: number; channels: number;
  filterDepth: number; filterHeight: number; filterWidth: number;
  outDepth: number; outHeight: number; outWidth: number;
  strideDepth: number; strideHeight: number; strideWidth: number;
  padFront: number; padTop: number; padLeft: number;
}

export function poolGeometry(info: tf.backend_util.Conv2DInfo | tf.backend_util.Conv3DInfo): PoolGeometry {
  const is3D = 'inDepth' in info;
  return {
    batch: info.batchSize, inDepth: is3D ? info.inDepth : 1, inHeight: info.inHeight, inWidth: info.inWidth, channels: info.inChannels,
    filterDepth: is3D ? info.filterDepth : 1, filterHeight: info.filterHeight, filterWidth: info.filterWidth,
    outDepth: is3D ? info.outDepth : 1, outHeight: info.outHeight, outWidth: info.outWidth,
    strideDepth: is3D ? info.strideDepth : 1, strideHeight: info.strideHeight, strideWidth: info.strideWidth,
    padFront: is3D ? info.padInfo.front : 0, padTop: info.padInfo.top, padLeft: info.padInfo.left,
  };
}

/**
 * Visit every pooling window: `visit(outIndex, inBase[])` gets the output offset (times channels) and the
 * channel-0 offsets of the in-bounds input positions of the window, in window order. Padding is never visited.
 */
function forEachWindow(g: PoolGeometry, visit: (outBase: number, inBases: Int32Array, count: number) => void): void {
  const inBases = new Int32Array(g.filterDepth * g.filterHeight * g.filterWidth);
  const C = g.channels;
  for (let n = 0; n < g.batch; n++)
    for (let od = 0; od < g.outDepth; od++) {
      const d0 = od * g.strideDepth - g.padFront;
      for (let oh = 0; oh < g.outHeight; oh++) {
        const h0 = oh * g.strideHeight - g.padTop;
        for (let ow = 0; ow < g.outWidth; ow++) {
          const w0 = ow * g.strideWidth - g.padLeft;
          let count = 0;
          for (let d = Math.max(0, d0); d < Math.min(g.inDepth, d0 + g.filterDepth); d++)
            for (let h = Math.max(0, h0); h < Math.min(g.inHeight, h0 + g.filterHeight); h++)
              for (let w = Math.max(0, w0); w < Math.min(g.inWidth, w0 + g.filterWidth); w++)
                inBases[count++] = (((n * g.inDepth + d) * g.inHeight + h) * g.inWidth + w) * C;
          visit((((n * g.outDepth + od) * g.outHeight + oh) * g.outWidth + ow) * C, inBases, count);
        }
      }
    }
}

/** Output shape of a pooling (channels-last, rank 4 or 5). */
export function pooledShape(inputShape: number[], g: PoolGeometry): number[] {
  return [g.batch, ...(inputShape.length === 5 ? [g.outDepth] : []), g.outHeight, g.outWidth, g.channels];
}

/**
 * Max pooling into `out`: forward (no `dy`: out = window maxima) or backward (out = dx, zeroed here, and
 * dx[first argmax of each window] += dy, the cpu backend's tie rule).
 */
export function maxPoolInto(xs: Float32Array, g: PoolGeometry, out: Float32Array, dy?: Float32Array): void {
  const C = g.channels;
  if (dy) out.fill(0);
  const best = new Float32Array(C);
  const bestAt = new Int32Array(C);
  forEachWindow(g, (outBase, inBases, count) => {
    best.fill(-Infinity);
    bestAt.fill(-1);
    for (let i = 0; i < count; i++) {
      const base = inBases[i]!;
      for (let c = 0; c < C; c++) {
        const v = xs[base + c]!;
        if (v > best[c]!) {
          best[c] = v;
          bestAt[c] = base + c;
        }
      }
    }
    if (dy) {
      for (let c = 0; c < C; c++) if (bestAt[c]! >= 0) out[bestAt[c]!] += dy[outBase + c]!;
    } else {
      // A window of NaNs never beats −∞: report NaN rather than −∞.
      for (let c = 0; c < C; c++) out[outBase + c] = bestAt[c]! >= 0 ? best[c]! : NaN;
    }
  });
}

/**
 * 2-D max-pool gradient using the forward output y: dx (zeroed here) gets dy at the first window position whose
 * value equals the window's maximum — the position the strict-greater scan of `maxPoolInto` (and the cpu backend)
 * picks, found with one comparison per element and an early exit.
 */
export function maxPool2DGradInto(xs: Float32Array, ys: Float32Array, dy: Float32Array, g: PoolGeometry, dx: Float32Array): void {
  if (g.inDepth !== 1) throw new Error('maxPool2DGradInto is for 2-D pooling');
  const { inHeight: H, inWidth: W, channels: C, outHeight: OH, outWidth: OW } = g;
  dx.fill(0);
  for (let n = 0; n < g.batch; n++) {
    for (let oh = 0; oh < OH; oh++) {
      const hStart = oh * g.strideHeight - g.padTop;
      const h0 = Math.max(0, hStart);
      const h1 = Math.min(H, hStart + g.filterHeight);
      for (let ow = 0; ow < OW; ow++) {
        const wStart = ow * g.strideWidth - g.padLeft;
        const w0 = Math.max(0, wStart);
        const w1 = Math.min(W, wStart + g.filterWidth);
        const outBase = ((n * OH + oh) * OW + ow) * C;
        for (let c = 0; c < C; c++) {
          const y = ys[outBase + c]!;
          search: for (let h = h0; h < h1; h++) {
            let at = ((n * H + h) * W + w0) * C + c;
            for (let w = w0; w < w1; w++, at += C) {
              if (xs[at] === y) {
                dx[at] += dy[outBase + c]!;
                break search;
              }
            }
          }
        }
      }
    }
  }
}

/** dx (zeroed here) [each in-bounds position of a window] += dy / (in-bounds count), the forward's divisor. */
export function avgPoolBackwardInto(dy: Float32Array, g: PoolGeometry, dx: Float32Array): void {
  const C = g.channels;
  dx.fill(0);
  forEachWindow(g, (outBase, inBases, count) => {
    for (let i = 0; i < count; i++) {
      const base = inBases[i]!;
      for (let c = 0; c < C; c++) dx[base + c] += dy[outBase + c]! / count;
    }
  });
}

type Pool2DAttrs = { filterSize: number | [number, number]; strides: number | [number, number]; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
type Pool3DAttrs = { filterSize: number | [number, number, number]; strides: number | [number, number, number]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };

export function pool2D(input: tf.TensorInfo, attrs: Record<string, unknown>): PoolGeometry {
  const a = attrs as unknown as Pool2DAttrs;
  return poolGeometry(tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode));
}

export function pool3D(input: tf.TensorInfo, attrs: Record<string, unknown>): PoolGeometry {
  const a = attrs as unknown as Pool3DAttrs;
  return poolGeometry(
    tf.backend_util.computePool3DInfo(input.shape as [number, number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode),
  );
}


import * as tf from '@tensorflow/tfjs';

/**
 * Slicing by contiguous runs on plain typed arrays, shared by the wasm and cpu `Slice` replacements: the trailing
 * axes a slice takes whole, plus the first partial one from the end, form runs copied with one `set` each.
 */

/** Below this run length the per-run bookkeeping costs more than the stock kernels' element loops. */
export const MIN_SLICE_RUN = 16;

export interface SlicePlan {
  begin: number[];
  size: number[];
  /** Elements per contiguous run. */
  run: number;
}

export function planSlice(x: tf.TensorInfo, begin: number | number[], size: number | number[]): SlicePlan {
  const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  let axis = x.shape.length - 1;
  while (axis > 0 && s[axis] === x.shape[axis]) axis--;
  const inner = x.shape.slice(axis + 1).reduce((p, q) => p * q, 1);
  return { begin: b, size: s, run: s[axis]! * inner };
}

type NumericArray = Float32Array | Int32Array;

export function copySlice(src: NumericArray, shape: number[], plan: SlicePlan, dst: NumericArray): void {
  const { begin, size, run } = plan;
  if (run === 0) return;
  const strides = tf.util.computeStrides(shape);
  // Axes before `axis` are iterated; `axis` itself is the outermost axis inside a run.
  let axis = shape.length - 1;
  while (axis > 0 && size[axis] === shape[axis]) axis--;
  const inner = axis + 1 < shape.length ? strides[axis]! : 1;
  const outer = size.slice(0, axis);
  const count = outer.reduce((p, q) => p * q, 1);
  const index = new Array<number>(axis).fill(0);
  for (let r = 0; r < count; r++) {
    let offset = begin[axis]! * inner;
    for (let d = 0; d < axis; d++) offset += (begin[d]! + index[d]!) * strides[d]!;
    dst.set(src.subarray(offset, offset + run), r * run);
    for (let d = axis - 1; d >= 0 && ++index[d]! === outer[d]; d--) index[d] = 0;
  }
}

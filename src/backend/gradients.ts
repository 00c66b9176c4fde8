import * as tf from '@tensorflow/tfjs';

/**
 * Gradients replacing stock ones of tfjs-core 4.22, for every backend (same values, fewer and cheaper ops):
 * `Sum` and `Mean` broadcast dy back over the reduced axes by multiplying it with a tensor of ones of the input's
 * full shape, which tfjs builds in JavaScript and uploads on every call (on the native backend: a full-size array
 * allocation, an upload and a full-size Mul per reduction in the backward pass; the CMNIST MMTM step has eight such
 * means of feature maps, issue 14). Here dy (divided by the count, for Mean) is tiled over the reduced axes: the
 * same values to the bit, as dy·1 = dy and (dy·1)/n = dy/n element by element, including −0, ±∞ and NaN.
 */

function expandedShapeAndReps(xShape: readonly number[], axis: number | number[]): { expanded: number[]; reps: number[] } {
  const axes = tf.util.parseAxisParam(axis, [...xShape]);
  const expanded = [...xShape];
  const reps = xShape.map(() => 1);
  for (const a of axes) {
    expanded[a] = 1;
    reps[a] = xShape[a]!;
  }
  return { expanded, reps };
}

function broadcastBack(dy: tf.Tensor, x: tf.Tensor, axis: number | number[], divisor: number | null): tf.Tensor {
  const { expanded, reps } = expandedShapeAndReps(x.shape, axis);
  const reshaped = tf.reshape(dy.dtype === 'float32' ? dy : tf.cast(dy, 'float32'), expanded);
  const scaled = divisor === null ? reshaped : tf.div(reshaped, divisor);
  return reps.every((r) => r === 1) ? scaled : tf.tile(scaled, reps);
}

let registered = false;

/** Install the gradients above (idempotent). */
export function registerGradientFixes(): void {
  if (registered) return;
  registered = true;
  tf.registerGradient({
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as tf.Tensor[];
      const { axis } = attrs as unknown as { axis: number | number[] };
      return { x: () => broadcastBack(dy as tf.Tensor, x!, axis, null) };
    },
  });
  tf.registerGradient({
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as tf.Tensor[];
      const { axis } = attrs as unknown as { axis: number | number[] };
      const { reps } = expandedShapeAndReps(x!.shape, axis);
      return { x: () => broadcastBack(dy as tf.Tensor, x!, axis, reps.reduce((a, b) => a * b, 1)) };
    },
  });
}

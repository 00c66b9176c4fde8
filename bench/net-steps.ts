import * as tf from '@tensorflow/tfjs';
import type { BackendName } from '../src/backend/index.ts';
import type { MultimodalNet } from '../src/nn/types.ts';

/**
 * What the network benchmarks time, on fixed inputs: one training step (the trainer's loss Σ_k CE(ŷk), minimised
 * by `optimizer`, synchronised by reading the loss) and one evaluation forward (synchronised by reading ŷ).
 */
export function netSteps(net: MultimodalNet, inputs: tf.Tensor[], labels: tf.Tensor, optimizer: tf.Optimizer): { trainStep: () => void; forward: () => void } {
  const variables = net.trainableVariables as tf.Variable[];
  const trainStep = () => {
    const loss = optimizer.minimize(
      () => {
        const out = net.forward(inputs, { mode: 'regular', training: true, regularTrainingStep: true });
        return tf.addN(out.branchLogits.map((l) => tf.losses.softmaxCrossEntropy(labels, l))) as tf.Scalar;
      },
      true,
      variables,
    )!;
    loss.dataSync();
    loss.dispose();
  };
  const forward = () => {
    tf.tidy(() => net.forward(inputs, { mode: 'regular', training: false }).logits.dataSync());
  };
  return { trainStep, forward };
}

/** Measure on every backend in turn; a backend that does not start or fails is skipped with its reason. */
export async function measureEachBackend<T>(bench: string, backends: readonly BackendName[], setting: string, measure: (backend: BackendName) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (const backend of backends) {
    try {
      process.stderr.write(`${bench}: measuring ${backend} (${setting})…\n`);
      results.push(await measure(backend));
    } catch (error) {
      process.stderr.write(`${bench}: ${backend} skipped: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}\n`);
    }
  }
  return results;
}

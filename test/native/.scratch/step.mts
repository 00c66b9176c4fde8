import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/backend/index.ts';
import { createCmnistNet } from '../../../src/nn/cmnist.ts';
import { FIDELITY_PROFILES } from '../../../src/spec/fidelity.ts';
import { twoBranchLoss } from '../../../src/train/loss.ts';
import { Sgd } from '../../../src/train/sgd.ts';
await initBackend('tensorflow');
if (process.argv[2] === 'fast') {
  tf.registerKernel({ kernelName: 'Step', backendName: 'tensorflow', kernelFunc: ({ inputs, backend, attrs }: any) => {
    const b = backend as any; const x = inputs.x;
    if ((attrs.alpha ?? 0) !== 0) throw new Error('alpha');
    return tf.tidy(() => { const g = tf.greater(x, 0); return b.executeSingleOutput('Cast', [{ name: 'SrcT', type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_BOOL }, { name: 'DstT', type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_FLOAT }, { name: 'Truncate', type: b.binding.TF_ATTR_BOOL, value: false }], [g]); });
  } } as any);
}
const B = 128;
const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 0, fidelity: FIDELITY_PROFILES.code });
const x0 = tf.randomUniform([B, 28, 28, 3]); const x1 = tf.randomUniform([B, 28, 28, 1]);
const oneHot = tf.oneHot(tf.randomUniform([B], 0, 10, 'int32') as tf.Tensor1D, 10).toFloat() as tf.Tensor2D;
const variables = [...net.trainableVariables];
const sgd = new Sgd(variables, { lr: 0.01, momentum: 0.9, weightDecay: 0 });
const step = async () => {
  const { value, grads } = tf.variableGrads(() => { const out = net.forward(x0, x1, { mode: 'regular', training: true, regularTrainingStep: true }); return twoBranchLoss(out.logits0 as any, out.logits1 as any, oneHot); }, variables);
  sgd.step(variables.map((v) => grads[v.name] ?? null)); const l = (await value.data())[0]; tf.dispose([value, ...Object.values(grads)]); return l;
};
const losses = []; for (let i = 0; i < 3; i++) losses.push(await step());
const ts = []; for (let i = 0; i < 7; i++) { const t0 = performance.now(); await step(); ts.push(performance.now() - t0); }
ts.sort((a, b) => a - b);
const info = await tf.profile(async () => { await step(); });
const by = new Map<string, number>();
for (const k of info.kernels) by.set(k.name, (by.get(k.name) ?? 0) + (k.kernelTimeMs as number));
console.log(process.argv[2] ?? 'stock', 'median ms', ts[3].toFixed(0), 'losses', losses.map((l) => l.toFixed(5)).join(' '), 'top', [...by].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([n, t]) => `${n} ${t.toFixed(0)}`).join(', '));

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cmnistStageChannels,
  createCmnistNet,
  createCmnistUnimodalSeNet,
  type CmnistMultimodalNet,
} from '../../src/nn/cmnist.ts';
import type { ForwardMode } from '../../src/nn/types.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const scalars = (vs: readonly tf.Variable[]) => vs.reduce((a, v) => a + v.size, 0);
const namesOf = (net: CmnistMultimodalNet, vs: readonly tf.Variable[]) => {
  const byVariable = new Map(net.namedParameters.map((p) => [p.variable, p.name]));
  return vs.map((v) => byVariable.get(v)!);
};
const values = (vs: readonly tf.Variable[]) => vs.map((v) => Array.from(v.dataSync()));

/** Small, fast configuration: width 0.25 (8, 8, 16, 16 channels) on 12×12 inputs. */
function smallNet(seed = 3, profile: 'code' | 'paper' = 'code', mmtmPositions?: number[]) {
  return createCmnistNet({
    channels: [3, 1],
    numClasses: 10,
    seed,
    fidelity: FIDELITY_PROFILES[profile],
    width: 0.25,
    ...(mmtmPositions ? { mmtmPositions } : {}),
  });
}
function inputs(seed: number, batch = 3, size = 12): [tf.Tensor4D, tf.Tensor4D] {
  return [tf.randomUniform([batch, size, size, 3], 0, 1, 'float32', seed), tf.randomUniform([batch, size, size, 1], 0, 1, 'float32', seed + 1)];
}

describe('CMNIST network: sizes and parameter groups (paper-spec §4.1, §7.2)', () => {
  it('has the parameter counts of §4.1 and groups θ0, θ1, θ0′, θ1′ by role', () => {
    const net = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 0, fidelity: FIDELITY_PROFILES.code });
    const [theta0, theta1] = net.groups.theta as [tf.Variable[], tf.Variable[]];
    const [theta0Prime, theta1Prime] = net.groups.thetaPrime as [tf.Variable[], tf.Variable[]];
    expect(scalars(theta0)).toBe(67_760);
    expect(scalars(theta1)).toBe(66_156);
    expect(scalars(net.mmtms.flatMap((m) => m.parameters.map((p) => p.variable)))).toBe(37_344);
    expect(net.mmtms.map((m) => m.bottleneck)).toEqual([32, 64, 64]);
    expect(net.fusionCount).toBe(3);
    expect(scalars(net.trainableVariables)).toBe(67_760 + 66_156 + 37_344);

    const branchNames = (k: number) => [
      `branch${k}.bn0.weight`,
      `branch${k}.bn0.bias`,
      ...[1, 2, 3, 4].flatMap((c) => [`branch${k}.conv${c}.weight`, `branch${k}.conv${c}.bias`]),
      `branch${k}.head.weight`,
      `branch${k}.head.bias`,
    ];
    expect(namesOf(net, theta0)).toEqual(branchNames(0));
    expect(namesOf(net, theta1)).toEqual(branchNames(1));
    const primeNames = (excite: string) =>
      [2, 3, 4].flatMap((p) =>
        ['squeeze.weight', 'squeeze.bias', `${excite}.weight`, `${excite}.bias`].map((n) => `mmtm${p}.${n}`),
      );
    expect(namesOf(net, theta0Prime)).toEqual(primeNames('excite0'));
    expect(namesOf(net, theta1Prime)).toEqual(primeNames('excite1'));
    // Squeeze (32·2·32+32 = 2,080; 64·2·64+64 = 8,256) + one excitation (1,056; 4,160) per MMTM.
    expect(scalars(theta0Prime)).toBe(2_080 + 1_056 + 2 * (8_256 + 4_160));
    expect(scalars(theta1Prime)).toBe(scalars(theta0Prime));

    // The squeeze layers are the same variables in both primes; nothing else is shared between groups.
    const squeeze = new Set(net.mmtms.flatMap((m) => m.squeeze.parameters.map((p) => p.variable)));
    expect(theta0Prime.filter((v) => theta1Prime.includes(v))).toEqual([...squeeze]);
    const all = [...theta0, ...theta1, ...theta0Prime, ...theta1Prime.filter((v) => !squeeze.has(v))];
    expect(new Set(all).size).toBe(all.length);
    expect(new Set(all)).toEqual(new Set(net.trainableVariables));
    expect(net.trainableVariables.length).toBe(12 + 12 + 18);
    expect(net.trainableVariables.every((v) => v.trainable)).toBe(true);
    net.dispose();
  });

  it('gray+gray control and width multiplier scale as expected; positions are validated', () => {
    const gray = createCmnistNet({ channels: [1, 1], numClasses: 10, seed: 0, fidelity: FIDELITY_PROFILES.paper });
    expect(scalars(gray.groups.theta[0])).toBe(66_156);
    expect(scalars(gray.groups.theta[1])).toBe(66_156);
    gray.dispose();
    expect(cmnistStageChannels(0.25)).toEqual([8, 8, 16, 16]);
    expect(cmnistStageChannels(2)).toEqual([64, 64, 128, 128]);
    const early = smallNet(0, 'code', [1, 3]);
    expect(early.mmtms.map((m) => [m.channels[0], m.bottleneck])).toEqual([
      [8, 8],
      [16, 16],
    ]);
    early.dispose();
    expect(() => smallNet(0, 'code', [0, 2])).toThrow(/stage indices in 1…4/);
    expect(() => smallNet(0, 'code', [2, 2])).toThrow(/twice/);
    expect(() => cmnistStageChannels(0)).toThrow(/width/);
  });

  it('dispose() frees every tensor the networks hold', () => {
    const before = tf.memory().numTensors;
    const net = smallNet(1, 'paper');
    net.setSqueezeMeans(net.mmtms.map((m) => [new Float32Array(m.channels[0]), new Float32Array(m.channels[1])]));
    net.setState(net.getState());
    const se = createCmnistUnimodalSeNet({ channels: 1, numClasses: 10, seed: 1, fidelity: { gateScale: 2 }, width: 0.25 });
    se.setState(se.getState());
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    net.dispose();
    se.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('same seed → identical weights; another seed → different; branch weights do not depend on MMTM positions', () => {
    const a = smallNet(11);
    const b = smallNet(11);
    const c = smallNet(12);
    const d = smallNet(11, 'code', [1]);
    expect(values(b.trainableVariables)).toEqual(values(a.trainableVariables));
    const va = values(a.trainableVariables).flat();
    const vc = values(c.trainableVariables).flat();
    expect(vc.filter((v, i) => v === va[i] && v !== 0 && v !== 1).length).toBe(0);
    expect(values(d.groups.theta[0])).toEqual(values(a.groups.theta[0]));
    expect(values(d.groups.theta[1])).toEqual(values(a.groups.theta[1]));
    for (const n of [a, b, c, d]) n.dispose();
  });
});

describe('CMNIST network: forward', () => {
  it('returns ŷ0, ŷ1, ŷ = (ŷ0+ŷ1)/2 on logits, pooled features and squeezed inputs per MMTM', () => {
    const net = smallNet();
    const [x0, x1] = inputs(1);
    tf.tidy(() => {
      const out = net.forward([x0, x1], { mode: 'regular', training: false, collectSqueezed: true });
      expect(out.branchLogits[0].shape).toEqual([3, 10]);
      expect(out.branchFeatures[0].shape).toEqual([3, 16]);
      expect(out.branchFeatures[1].shape).toEqual([3, 16]);
      const mean = tf.div(tf.add(out.branchLogits[0], out.branchLogits[1]), 2);
      expect(Array.from(out.logits.dataSync())).toEqual(Array.from(mean.dataSync()));
      expect(out.squeezed!.map((s) => [s[0].shape, s[1].shape])).toEqual([
        [
          [3, 8],
          [3, 8],
        ],
        [
          [3, 16],
          [3, 16],
        ],
        [
          [3, 16],
          [3, 16],
        ],
      ]);
      // The head reads the pooled features.
      const head = net.branches[0].head;
      const logits0 = tf.add(tf.matMul(out.branchFeatures[0], head.weight.variable), head.bias.variable);
      const diff = tf.max(tf.abs(tf.sub(logits0, out.branchLogits[0]))).dataSync()[0]!;
      expect(diff).toBeLessThan(1e-5);
    });
    expect(() => net.forward([x1, x0], { mode: 'regular', training: false })).toThrow(/input 0: expected a rank-4 channels-last input with 3 channels/);
    x0.dispose();
    x1.dispose();
    net.dispose();
  });

  function logitsOf(net: CmnistMultimodalNet, x0: tf.Tensor, x1: tf.Tensor, mode: ForwardMode) {
    return tf.tidy(() => {
      const out = net.forward([x0, x1], { mode, training: false });
      return { y0: Array.from(out.branchLogits[0].dataSync()), y1: Array.from(out.branchLogits[1].dataSync()) };
    });
  }
  const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));

  for (const profile of ['code', 'paper'] as const) {
    it(`unimodalMeans (${profile}): ŷ0 ignores x_m1 and ŷ1 ignores x_m0; regular mode does not`, () => {
      const net = smallNet(5, profile);
      const [x0, x1] = inputs(10);
      const [x0b, x1b] = inputs(20);
      // h̄ from a "training set" batch.
      const means = tf.tidy(() =>
        net
          .forward([x0, x1], { mode: 'regular', training: false, collectSqueezed: true })
          .squeezed!.map((s) => s.map((h) => tf.mean(h, 0).dataSync() as Float32Array)),
      );
      net.setSqueezeMeans(means);

      const base = logitsOf(net, x0, x1, 'unimodalMeans');
      const other1 = logitsOf(net, x0, x1b, 'unimodalMeans');
      const other0 = logitsOf(net, x0b, x1, 'unimodalMeans');
      expect(other1.y0).toEqual(base.y0);
      expect(maxDiff(other1.y1, base.y1)).toBeGreaterThan(1e-4);
      expect(other0.y1).toEqual(base.y1);
      expect(maxDiff(other0.y0, base.y0)).toBeGreaterThan(1e-4);

      const regular = logitsOf(net, x0, x1, 'regular');
      expect(maxDiff(logitsOf(net, x0, x1b, 'regular').y0, regular.y0)).toBeGreaterThan(1e-6);
      expect(maxDiff(logitsOf(net, x0b, x1, 'regular').y1, regular.y1)).toBeGreaterThan(1e-6);
      expect(() => net.setSqueezeMeans(means.slice(1))).toThrow(/means for 2 MMTMs/);
      for (const t of [x0, x1, x0b, x1b]) t.dispose();
      net.dispose();
    });
  }
});

describe('CMNIST network: state and training', () => {
  it('getState/setState restores BN statistics and MMTM averages/counters for an exact resume', () => {
    const net = smallNet(7, 'paper');
    const [x0, x1] = inputs(30, 4);
    const trainForward = (mode: ForwardMode, regularTrainingStep: boolean) =>
      tf.tidy(() => Array.from(net.forward([x0, x1], { mode, training: true, regularTrainingStep }).logits.dataSync()));
    trainForward('regular', true);
    trainForward('regular', true);
    const saved = net.getState();
    expect(Array.from(saved['mmtm2.paperSamples']!)).toEqual([0, 8]);
    expect(Math.max(...Array.from(saved['branch0.bn0.runningMean']!).map(Math.abs))).toBeGreaterThan(0.01);

    const first = [trainForward('regular', true), trainForward('rebalance0', false)];
    const stateAfter = net.getState();
    net.setState(saved);
    expect(net.getState()).toEqual(saved);
    const second = [trainForward('regular', true), trainForward('rebalance0', false)];
    expect(second).toEqual(first);
    expect(net.getState()).toEqual(stateAfter);

    const other = smallNet(7, 'paper', [2, 3]);
    expect(() => other.setState(saved)).toThrow(/unknown: mmtm4/);
    other.dispose();
    x0.dispose();
    x1.dispose();
    net.dispose();
  });

  it('trains on a fixed batch with SGD through regular and re-balancing steps without leaking tensors', () => {
    const net = smallNet(9, 'code');
    const [x0, x1] = inputs(40, 8, 8);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10);
    const optimizer = tf.train.sgd(0.5);
    const loss = (mode: ForwardMode) => () => {
      const out = net.forward([x0, x1], { mode, training: true, regularTrainingStep: mode === 'regular' });
      return tf.add(tf.losses.softmaxCrossEntropy(labels, out.branchLogits[0]), tf.losses.softmaxCrossEntropy(labels, out.branchLogits[1])) as tf.Scalar;
    };
    const { value, grads } = tf.variableGrads(loss('regular'));
    const groupGradNorm = (vs: tf.Variable[]) =>
      tf.tidy(() => vs.reduce((a, v) => a + tf.sum(tf.square(grads[v.name]!)).dataSync()[0]!, 0));
    for (const group of [...net.groups.theta, ...net.groups.thetaPrime]) expect(groupGradNorm(group)).toBeGreaterThan(0);
    const initial = value.dataSync()[0]!;
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();

    const tensorsBefore = tf.memory().numTensors;
    const modes: ForwardMode[] = ['regular', 'rebalance0', 'regular', 'rebalance1'];
    for (let round = 0; round < 3; round++) for (const mode of modes) optimizer.minimize(loss(mode));
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const final = tf.tidy(() => loss('regular')().dataSync()[0]!);
    expect(final).toBeLessThan(initial - 0.05);
    optimizer.dispose();
    for (const t of [x0, x1, labels]) t.dispose();
    net.dispose();
  });
});

describe('uni-modal SE network (paper-spec §11)', () => {
  it('has the backbone plus SE blocks with Z = C, shares the seeded backbone with the branch, and trains', () => {
    const full = createCmnistUnimodalSeNet({ channels: 1, numClasses: 10, seed: 4, fidelity: { gateScale: 1 }, modality: 1 });
    // SE(32): 2·(32·32+32) = 2,112; SE(64): 2·(64·64+64) = 8,320.
    expect(scalars(full.trainableVariables)).toBe(66_156 + 2_112 + 2 * 8_320);
    expect(full.fusionCount).toBe(3);
    const twoBranch = createCmnistNet({ channels: [3, 1], numClasses: 10, seed: 4, fidelity: FIDELITY_PROFILES.code });
    expect(values(full.trainableVariables.slice(0, 12))).toEqual(values(twoBranch.groups.theta[1]));
    full.dispose();
    twoBranch.dispose();

    const make = (gateScale: 1 | 2) =>
      createCmnistUnimodalSeNet({ channels: 3, numClasses: 10, seed: 6, fidelity: { gateScale }, width: 0.25 });
    const net = make(1);
    const doubled = make(2);
    const [x] = inputs(50, 8, 8);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32'), 10);
    const features = (n: typeof net) => tf.tidy(() => Array.from(n.forward(x, { training: false }).features.dataSync()));
    // Same weights, gate scale 2 vs 1: the SE gates change the features.
    expect(values(doubled.trainableVariables)).toEqual(values(net.trainableVariables));
    expect(features(doubled)).not.toEqual(features(net));
    doubled.dispose();

    const optimizer = tf.train.sgd(0.5);
    const loss = () => tf.losses.softmaxCrossEntropy(labels, net.forward(x, { training: true }).logits) as tf.Scalar;
    const initial = tf.tidy(() => loss().dataSync()[0]!);
    const saved = net.getState();
    for (let i = 0; i < 8; i++) optimizer.minimize(loss);
    const final = tf.tidy(() => loss().dataSync()[0]!);
    expect(final).toBeLessThan(initial - 0.05);
    expect(net.getState()).not.toEqual(saved);
    net.setState(saved);
    expect(net.getState()).toEqual(saved);
    optimizer.dispose();
    for (const t of [x, labels]) t.dispose();
    net.dispose();
  });
});

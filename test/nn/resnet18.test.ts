import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNet } from '../../src/nn/index.ts';
import { normalValues, uniformValues } from '../../src/nn/random.ts';
import { createResnet18MmtmNet, createResnet18UnimodalSeNet, Resnet18Branch, resnet18StageChannels } from '../../src/nn/resnet18.ts';
import type { MultiBranchMmtmNet } from '../../src/nn/multi-branch.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';
import { trainTrialSpecSchema } from '../../src/spec/trial.ts';
import { UnimodalAsMultimodal } from '../../src/nn/unimodal.ts';
import type { Dataset } from '../../src/data/types.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const count = (vs: readonly tf.Variable[]) => vs.reduce((a, v) => a + v.size, 0);
const namesOf = (net: MultiBranchMmtmNet, vs: readonly tf.Variable[]) => {
  const byVariable = new Map(net.namedParameters.map((p) => [p.variable, p.name]));
  return vs.map((v) => byVariable.get(v)!);
};

describe('ResNet18-MMTM network (paper-spec §4.2, §7.2)', () => {
  let net: MultiBranchMmtmNet;
  beforeAll(() => {
    net = createResnet18MmtmNet({ channels: [3, 3], numClasses: 40, seed: 1, fidelity: FIDELITY_PROFILES.code });
  });
  afterAll(() => net.dispose());

  it('has 11,197,032 parameters per branch and 1,378,944 in the three MMTMs', () => {
    expect(count(net.groups.theta[0])).toBe(11_197_032);
    expect(count(net.groups.theta[1])).toBe(11_197_032);
    expect(net.mmtms.map((m) => [m.channels[0], m.bottleneck])).toEqual([
      [128, 128],
      [256, 256],
      [512, 512],
    ]);
    expect(net.mmtms.map((m) => count(m.parameters.map((p) => p.variable)))).toEqual([65_920, 262_912, 1_050_112]);
    expect(count(net.trainableVariables)).toBe(23_773_008);
    expect(net.groups.theta[0].length).toBe(62);
  });

  it('uses torchvision names and groups parameters by role', () => {
    const names0 = namesOf(net, net.groups.theta[0]);
    expect(names0.slice(0, 3)).toEqual(['branch0.conv1.weight', 'branch0.bn1.weight', 'branch0.bn1.bias']);
    expect(names0).toContain('branch0.layer2.0.downsample.0.weight');
    expect(names0).toContain('branch0.layer4.1.bn2.bias');
    expect(names0.slice(-2)).toEqual(['branch0.fc.weight', 'branch0.fc.bias']);
    expect(names0.every((n) => n.startsWith('branch0.'))).toBe(true);
    expect(namesOf(net, net.groups.theta[1]).every((n) => n.startsWith('branch1.'))).toBe(true);
    const prime = (k: 0 | 1) => [2, 3, 4].flatMap((p) => ['squeeze.weight', 'squeeze.bias', `excite${k}.weight`, `excite${k}.bias`].map((n) => `mmtm${p}.${n}`));
    expect(namesOf(net, net.groups.thetaPrime[0])).toEqual(prime(0));
    expect(namesOf(net, net.groups.thetaPrime[1])).toEqual(prime(1));
    // No bias on convolutions; 20 BatchNorms per branch → 40 running statistics each, plus 6 entries per MMTM.
    expect(names0.filter((n) => /conv\d?\.bias|downsample\.0\.bias/.test(n))).toEqual([]);
    expect(Object.keys(net.getState()).length).toBe(2 * 40 + 3 * 6);
  });

  it('initialises convolutions Kaiming-normal (fan_out) and BatchNorm to γ = 1, β = 0', () => {
    const conv1 = net.branches[0] as Resnet18Branch;
    const w = Array.from(conv1.conv1.weight.variable.dataSync());
    const mean = w.reduce((a, v) => a + v, 0) / w.length;
    const std = Math.sqrt(w.reduce((a, v) => a + (v - mean) ** 2, 0) / w.length);
    expect(w.length).toBe(7 * 7 * 3 * 64);
    expect(std).toBeGreaterThan(0.97 * Math.sqrt(2 / (64 * 49)));
    expect(std).toBeLessThan(1.03 * Math.sqrt(2 / (64 * 49)));
    expect(Math.abs(mean)).toBeLessThan(0.002);
    expect(Array.from(conv1.bn1.gamma.variable.dataSync()).every((v) => v === 1)).toBe(true);
    // The same seed and name give the same weights; another seed does not.
    expect(Array.from(normalValues(1, 'branch0.conv1.weight', 5, Math.sqrt(2 / (64 * 49))))).toEqual(w.slice(0, 5));
  });
});

describe('ResNet18 shapes and knobs', () => {
  it('reaches 56/28/14/7 after layer1–4 at 224×224 and adapts to 32×32 inputs', () => {
    const branch = new Resnet18Branch({ seed: 2, prefix: 'branch0' }, { inChannels: 3, numClasses: 40, width: 1 / 16 });
    expect(branch.stageChannels).toEqual([4, 8, 16, 32]);
    for (const [size, expected] of [
      [224, [56, 28, 14, 7]],
      [32, [8, 4, 2, 1]],
    ] as const) {
      const sides = tf.tidy(() => {
        let a: tf.Tensor = tf.zeros([1, size, size, 3]);
        const out: number[] = [];
        for (let p = 1; p <= 4; p++) {
          a = branch.stage(p, a, false);
          out.push(a.shape[1]!);
        }
        expect(branch.finish(a).logits.shape).toEqual([1, 40]);
        return out;
      });
      expect(sides).toEqual(expected);
    }
    branch.dispose();
    expect(resnet18StageChannels(0.125)).toEqual([8, 16, 32, 64]);
  });

  it('runs one width-1 forward at a small input size with MMTM squeezes of 128/256/512 channels', () => {
    const net = createResnet18MmtmNet({ channels: [3, 3], numClasses: 40, seed: 4, fidelity: FIDELITY_PROFILES.paper });
    const shapes = tf.tidy(() => {
      const x = tf.tensor4d(uniformValues(1, 'x', 2 * 32 * 32 * 3, 1), [2, 32, 32, 3]);
      const out = net.forward([x, x], { mode: 'regular', training: true, regularTrainingStep: true, collectSqueezed: true });
      return { logits: out.logits.shape, squeezed: out.squeezed!.map((s) => s[0].shape[1]) };
    });
    expect(shapes).toEqual({ logits: [2, 40], squeezed: [128, 256, 512] });
    expect(() => tf.tidy(() => net.forward([tf.zeros([1, 32, 32, 1]), tf.zeros([1, 32, 32, 3])], { mode: 'regular', training: false }).logits)).toThrow(
      /3 channels, got shape \[1, 32, 32, 1\]/,
    );
    net.dispose();
  });

  it('builds the uni-modal SE baseline: one branch plus SE blocks (Z = C) after layer2/3/4', () => {
    const se = createResnet18UnimodalSeNet({ channels: 3, numClasses: 40, seed: 1, fidelity: FIDELITY_PROFILES.code, modality: 1 });
    expect(count(se.trainableVariables)).toBe(11_197_032 + 2 * (128 * 128 + 128) * 1 + 2 * (256 * 256 + 256) + 2 * (512 * 512 + 512));
    expect(se.fusionCount).toBe(3);
    expect(se.namedParameters[0]!.name).toBe('branch1.conv1.weight');
    const out = tf.tidy(() => se.forward(tf.zeros([2, 32, 32, 3]), { training: false }).logits.shape);
    expect(out).toEqual([2, 40]);
    se.dispose();
  });
});

describe('createNet', () => {
  const fakeDataset = (name: string, channels: [number, number], numClasses: number, side: number): Dataset => ({
    name,
    modalities: [
      { name: 'a', shape: [side, side, channels[0]] },
      { name: 'b', shape: [side, side, channels[1]] },
    ],
    numClasses,
    classNames: [],
    size: () => 0,
    batches: () => [],
    labels: () => new Int32Array(0),
  });
  const spec = (dataset: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    trainTrialSpecSchema.parse({ dataset, lr: 0.1, seed: 5, width: 0.125, ...extra });

  it('dispatches on the dataset and the architecture', () => {
    const mn = createNet(spec({ name: 'modelnet40', imageSize: 32 }), fakeDataset('modelnet40', [3, 3], 40, 32)) as MultiBranchMmtmNet;
    expect(mn.fusionCount).toBe(3);
    expect(mn.namedParameters[0]!.name).toBe('branch0.conv1.weight');
    const direct = createResnet18MmtmNet({ channels: [3, 3], numClasses: 40, seed: 5, fidelity: FIDELITY_PROFILES.code, width: 0.125 });
    // Same seed, same weights: the factory passes the spec's seed and width through.
    expect(mn.trainableVariables.map((v) => Array.from(v.dataSync().slice(0, 3)))).toEqual(direct.trainableVariables.map((v) => Array.from(v.dataSync().slice(0, 3))));
    direct.dispose();
    mn.dispose();
    const uni = createNet(spec({ name: 'modelnet40' }, { architecture: 'unimodal-se', unimodalModality: 1 }), fakeDataset('modelnet40', [3, 3], 40, 32));
    expect(uni).toBeInstanceOf(UnimodalAsMultimodal);
    expect(uni.groups.theta[1].length).toBeGreaterThan(0);
    expect(uni.groups.theta[0]).toEqual([]);
    uni.dispose();
    const cm = createNet(spec({ name: 'cmnist' }), fakeDataset('cmnist', [3, 1], 10, 28));
    expect(cm.fusionCount).toBe(3);
    expect(count(cm.groups.theta[1])).toBeLessThan(count(cm.groups.theta[0])); // gray branch: 1 input channel
    cm.dispose();
    // nvgesture (I3D) is covered by the NVGesture tests.
  });
});

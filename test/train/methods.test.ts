import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCmnistLateFusionNet } from '../../src/nn/cmnist.ts';
import type { ForwardOutput } from '../../src/nn/types.ts';
import { ogmGeSchema } from '../../src/spec/methods.ts';
import { mmParetoSchema, pmrSchema } from '../../src/spec/methods.ts';
import {
  blendingWeights,
  GradientBlendingMethod,
  MmParetoMethod,
  OgmGeMethod,
  ogmCoefficients,
  paretoWeights,
  PmrMethod,
  prototypeLogits,
} from '../../src/train/methods.ts';
import { crossEntropy } from '../../src/train/loss.ts';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('OGM-GE coefficients (Peng et al. 2022, Eq. 9–10)', () => {
  it('slows only the dominant modality: k = 1 − tanh(α·ρ) for ρ > 1 (values from Python math.tanh)', () => {
    const a = ogmCoefficients([3.2, 1.6], 0.1);
    expect(a.ratios[0]).toBeCloseTo(2, 12);
    expect(a.ratios[1]).toBeCloseTo(0.5, 12);
    expect(a.coefficients[0]).toBeCloseTo(0.802624679775096, 12);
    expect(a.coefficients[1]).toBe(1);
    const b = ogmCoefficients([1.0, 2.5], 0.8);
    expect(b.coefficients[0]).toBe(1);
    expect(b.coefficients[1]).toBeCloseTo(0.0359724199241831, 12);
    // The shifted form of later re-implementations: 1 − tanh(0.1·(2 − 1)).
    expect(ogmCoefficients([3.2, 1.6], 0.1, 'shifted').coefficients[0]).toBeCloseTo(0.9003320053750442, 12);
    // Equal scores: nobody dominates.
    expect(ogmCoefficients([2, 2], 0.1).coefficients).toEqual([1, 1]);
    expect(() => ogmCoefficients([1, 2, 3], 0.1)).toThrow(/two modalities/);
  });
});

/** Softmax of one row, in plain JS. */
function softmax(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('OGM-GE on a late-fusion CMNIST net', () => {
  const K = 4;
  const B = 6;
  const labels = [0, 1, 2, 3, 1, 2];
  const setup = () => {
    const net = createCmnistLateFusionNet({ channels: [3, 1], numClasses: K, seed: 9, width: 0.5 });
    let s = 777;
    const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296) * 2 - 1;
    const x = [3, 1].map((c) => tf.tensor(Float32Array.from({ length: B * 12 * 12 * c }, rand), [B, 12, 12, c]));
    const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), K).toFloat() as tf.Tensor2D;
    return { net, x, oneHot };
  };

  /** Raw CE(ŷ) gradients, the step's terms, and what the method observed. */
  function step(method: OgmGeMethod, net: ReturnType<typeof setup>['net'], x: tf.Tensor[], oneHot: tf.Tensor2D) {
    const kept: { terms?: number[][][]; observed?: tf.Tensor[] } = {};
    const { value, grads } = tf.variableGrads(() => {
      const out: ForwardOutput = net.forward(x, { mode: 'regular', training: true });
      kept.terms = out.lateFusion!.terms.map((t) => t.arraySync() as number[][]);
      kept.observed = method.observe(out, oneHot).map((t) => tf.keep(t));
      return method.loss(out, oneHot);
    }, net.trainableVariables as tf.Variable[]);
    value.dispose();
    return { grads, terms: kept.terms!, observed: kept.observed! };
  }

  it('scales the dominant encoder’s conv kernels by k (scores from the terms, by hand) and leaves the rest alone', () => {
    const { net, x, oneHot } = setup();
    const alpha = 0.5;
    const method = new OgmGeMethod(ogmGeSchema.parse({ alpha, noise: false }), net.groups.theta, 3);
    const { grads, terms, observed } = step(method, net, x, oneHot);
    // Hand: s_u = Σ_i softmax(terms_u,i)[y_i]; ρ_u = s_u / s_other; k = 1 − tanh(α ρ) for ρ > 1.
    const scores = terms.map((t) => t.reduce((acc, row, i) => acc + softmax(row)[labels[i]!]!, 0));
    const rho = [scores[0]! / scores[1]!, scores[1]! / scores[0]!];
    const k = rho.map((r) => (r > 1 ? 1 - Math.tanh(alpha * r) : 1));
    expect(k.some((c) => c < 1)).toBe(true);
    const raw = Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, Array.from(g.dataSync())]));
    method.modifyGradients(grads, observed, { epoch: 1, step: 1 });
    expect(method.lastCoefficients[0]).toBeCloseTo(k[0]!, 5);
    expect(method.lastCoefficients[1]).toBeCloseTo(k[1]!, 5);
    let kernels = 0;
    net.groups.theta.forEach((theta, u) => {
      for (const v of theta) {
        const after = grads[v.name]!.dataSync();
        const factor = v.rank >= 4 ? k[u]! : 1;
        if (v.rank >= 4) kernels += 1;
        raw[v.name]!.forEach((g, i) => expect(after[i]).toBeCloseTo(g * factor, 6));
      }
    });
    expect(kernels).toBe(8); // conv1…conv4 of two encoders
    for (const w of [...net.fusionWeights, net.fusionBias]) {
      const after = grads[w.variable.name]!.dataSync();
      raw[w.variable.name]!.forEach((g, i) => expect(after[i]).toBe(g));
    }
    // Outside the modulation epochs nothing changes.
    const late = new OgmGeMethod(ogmGeSchema.parse({ alpha, noise: true, endEpoch: 2 }), net.groups.theta, 3);
    const again = step(late, net, x, oneHot);
    const before = Object.fromEntries(Object.entries(again.grads).map(([n, g]) => [n, Array.from(g.dataSync())]));
    late.modifyGradients(again.grads, again.observed, { epoch: 3, step: 1 });
    for (const [n, g] of Object.entries(again.grads)) expect(Array.from(g.dataSync())).toEqual(before[n]);
    tf.dispose([...Object.values(grads), ...observed, ...Object.values(again.grads), ...again.observed, ...x, oneHot]);
    net.dispose();
  });

  it('GE adds zero-mean noise with the std of the modulated gradient, the same draw for the same step', () => {
    const { net, x, oneHot } = setup();
    const method = new OgmGeMethod(ogmGeSchema.parse({ alpha: 0.5, noise: true }), net.groups.theta, 3);
    const draw = (stepNumber: number) => {
      const { grads, observed } = step(method, net, x, oneHot);
      const raw = Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, Array.from(g.dataSync())]));
      method.modifyGradients(grads, observed, { epoch: 1, step: stepNumber });
      const out = Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, Array.from(g.dataSync())]));
      tf.dispose([...Object.values(grads), ...observed]);
      return { raw, out, k: [...method.lastCoefficients] };
    };
    const a = draw(5);
    // conv4 of encoder 0 (3·3·32·32 = 9216 values) and of encoder 1: noise = out − k·raw.
    for (const u of [0, 1]) {
      const v = net.groups.theta[u]!.filter((t) => t.rank >= 4).at(-1)!;
      const scaled = a.raw[v.name]!.map((g) => g * a.k[u]!);
      const noise = a.out[v.name]!.map((g, i) => g - scaled[i]!);
      const n = noise.length;
      const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
      const std = (xs: number[]) => Math.sqrt(xs.reduce((p, q) => p + (q - mean(xs)) ** 2, 0) / (xs.length - 1));
      const target = std(scaled) + 1e-8;
      expect(n).toBe(9216);
      expect(Math.abs(mean(noise))).toBeLessThan((4 * target) / Math.sqrt(n));
      expect(std(noise) / target).toBeGreaterThan(0.95);
      expect(std(noise) / target).toBeLessThan(1.05);
    }
    const b = draw(5);
    const c = draw(6);
    const name = net.groups.theta[1]![2]!.name; // conv1 kernel of encoder 1
    expect(b.out[name]).toEqual(a.out[name]);
    expect(c.out[name]).not.toEqual(a.out[name]);
    tf.dispose([...x, oneHot]);
    net.dispose();
  });
});

describe('Gradient-Blending (Wang et al. 2020, §3.2, Eq. 6)', () => {
  it('w_k ∝ ΔG_k / ΔO_k², Σ w = 1 (values from a Python computation)', () => {
    const before = { train: [1.0, 1.2, 1.5], val: [1.1, 1.3, 1.6] };
    const after = { train: [0.5, 0.9, 1.4], val: [0.8, 1.05, 1.45] };
    const w = blendingWeights(before, after)!;
    [0.044776119402985044, 0.5970149253731336, 0.3582089552238813].forEach((v, i) => expect(w[i]).toBeCloseTo(v, 10));
    // A head whose held-out loss rose gets 0; when all do, no estimate.
    const worse = blendingWeights(before, { train: [0.5, 0.9, 1.4], val: [0.8, 1.35, 1.45] })!;
    expect(worse[1]).toBe(0);
    expect(worse[0]! + worse[2]!).toBeCloseTo(1, 12);
    expect(blendingWeights(before, { train: before.train, val: [1.2, 1.4, 1.7] })).toBeNull();
  });

  it('starts equal, re-estimates after every super-epoch from the probe, and weighs the head losses', () => {
    const method = new GradientBlendingMethod({ superEpoch: 2 }, 2);
    expect(method.weights).toEqual([1 / 3, 1 / 3, 1 / 3]);
    const snapshots = [
      { train: [1.0, 1.2, 1.5], val: [1.1, 1.3, 1.6] },
      { train: [0.5, 0.9, 1.4], val: [0.8, 1.05, 1.45] },
    ];
    let calls = 0;
    const probe = {
      headLosses: (split: 'train' | 'val') => snapshots[Math.floor(calls++ / 2)]![split],
      classFeatureMeans: () => {
        throw new Error('not used by Gradient-Blending');
      },
    };
    method.onEpochBegin(1, probe);
    method.onEpochEnd(1, probe); // not a super-epoch boundary: no probe
    expect(calls).toBe(2);
    method.onEpochBegin(2, probe); // the reference exists already
    method.onEpochEnd(2, probe);
    expect(calls).toBe(4);
    expect(method.weights[1]).toBeCloseTo(0.5970149253731336, 10);
    // State survives a checkpoint round trip.
    const copy = new GradientBlendingMethod({ superEpoch: 2 }, 2);
    copy.setState(JSON.parse(JSON.stringify(method.getState())));
    expect(copy.weights).toEqual(method.weights);

    // Loss = Σ w_i·CE(head_i), CE by hand.
    const logits = [
      [1, 0, -1],
      [0.5, 0.2, 0.1],
    ];
    const heads = [
      [[0, 1, 0], [2, 0, 0]],
      [[0.3, 0.3, 0.3], [-1, 1, 0]],
    ];
    const y = [1, 0];
    const ce = (ls: number[][]) => ls.reduce((acc, row, i) => acc - Math.log(softmax(row)[y[i]!]!), 0) / ls.length;
    const expected = [logits, ...heads].reduce((acc, ls, i) => acc + method.weights[i]! * ce(ls), 0);
    const t = (a: number[][]) => tf.tensor2d(a);
    const out = {
      logits: t(logits),
      branchLogits: [],
      branchFeatures: [],
      lateFusion: { terms: [], unimodalLogits: heads.map(t) },
    } as unknown as ForwardOutput;
    const oneHot = tf.oneHot(tf.tensor1d(y, 'int32'), 3).toFloat() as tf.Tensor2D;
    expect(method.loss(out, oneHot).dataSync()[0]).toBeCloseTo(expected, 5);
  });
});

describe('PMR (Fan et al. 2023, §3.2–3.3, as the official code trains)', () => {
  it('prototype logits are −‖e − c‖₂', () => {
    const l = prototypeLogits(tf.tensor2d([[0, 0], [3, 4]]), tf.tensor2d([[0, 0], [1, 0]])).arraySync();
    expect(l[0]![0]).toBeCloseTo(0, 5);
    expect(l[0]![1]).toBeCloseTo(-1, 6);
    expect(l[1]![0]).toBeCloseTo(-5, 6);
    expect(l[1]![1]).toBeCloseTo(-Math.sqrt(20), 5);
  });

  it('prototypes: class means first, then (1 − μ)·new + μ·old; an absent class keeps its prototype', () => {
    const method = new PmrMethod(pmrSchema.parse({ momentum: 0.25 }), 2);
    const rounds = [
      { means: [[Float32Array.of(1, 2), Float32Array.of(3, 4)], [Float32Array.of(5), Float32Array.of(6)]], counts: [3, 2] },
      { means: [[Float32Array.of(9, 10), Float32Array.of(0, 0)], [Float32Array.of(1), Float32Array.of(0)]], counts: [4, 0] },
    ];
    let call = 0;
    const probe = { headLosses: () => [], classFeatureMeans: () => rounds[call++]! };
    method.onEpochBegin(1, probe);
    expect(method.prototypes!.map((p) => Array.from(p))).toEqual([[1, 2, 3, 4], [5, 6]]);
    method.onEpochBegin(1, probe); // already there: no second probe
    expect(call).toBe(1);
    method.onEpochEnd(1, probe);
    expect(Array.from(method.prototypes![0]!)).toEqual([0.75 * 9 + 0.25 * 1, 0.75 * 10 + 0.25 * 2, 3, 4]);
    expect(Array.from(method.prototypes![1]!)).toEqual([0.75 * 1 + 0.25 * 5, 6]);
    const copy = new PmrMethod(pmrSchema.parse({}), 2);
    copy.setState(JSON.parse(JSON.stringify(method.getState())));
    expect(copy.prototypes).toEqual(method.prototypes);
  });

  it('loss = CE(ŷ) + α·PCE of the modality with the lower prototype score (hand computation)', () => {
    const alpha = 0.7;
    const method = new PmrMethod(pmrSchema.parse({ alpha, endEpoch: 3 }), 3);
    // Prototypes (K = 3): modality 0 in 2-d, modality 1 in 1-d.
    method.setState({ prototypes: [[0, 0, 1, 0, 0, 1], [0, 1, 2]], widths: [2, 1] });
    const probe = { headLosses: () => [], classFeatureMeans: () => ({ means: [], counts: [] }) };
    method.onEpochBegin(2, probe);
    const e0 = [[0.1, 0.1], [0.9, 0.2]];
    const e1 = [[1.8], [0.4]];
    const logits = [[0.2, 0.1, -0.3], [0.0, 0.5, 0.1]];
    const y = [0, 1];
    const out = { logits: tf.tensor2d(logits), branchLogits: [], branchFeatures: [tf.tensor2d(e0), tf.tensor2d(e1)] } as unknown as ForwardOutput;
    const oneHot = tf.oneHot(tf.tensor1d(y, 'int32'), 3).toFloat() as tf.Tensor2D;
    const protos = [[[0, 0], [1, 0], [0, 1]], [[0], [1], [2]]];
    const protoLogits = (es: number[][], cs: number[][]) => es.map((e) => cs.map((c) => -Math.sqrt(c.reduce((acc, ci, j) => acc + (e[j]! - ci) ** 2, 0))));
    const pl = [protoLogits(e0, protos[0]!), protoLogits(e1, protos[1]!)];
    const score = (ls: number[][]) => ls.reduce((acc, row, i) => acc + softmax(row)[y[i]!]!, 0);
    const ce = (ls: number[][]) => ls.reduce((acc, row, i) => acc - Math.log(softmax(row)[y[i]!]!), 0) / ls.length;
    const rho = score(pl[0]!) / score(pl[1]!);
    const slower = rho > 1 ? 1 : 0;
    const expected = ce(logits) + alpha * ce(pl[slower]!);
    expect(method.loss(out, oneHot).dataSync()[0]).toBeCloseTo(expected, 5);
    expect(method.lastRatio).toBeCloseTo(rho, 5);
    expect(method.lastCoefficients[slower]).toBe(alpha);
    expect(method.lastCoefficients[1 - slower]).toBe(0);
    // Past endEpoch: CE(ŷ) only.
    method.onEpochBegin(4, probe);
    expect(method.loss(out, oneHot).dataSync()[0]).toBeCloseTo(ce(logits), 5);
  });
});

describe('MMPareto (Wei & Hu 2024, §4 and the official code)', () => {
  it('weights: ½, ½ without conflict; the min-norm point of the two gradients with one', () => {
    expect(paretoWeights(1, 0.5, 4)).toEqual({ cosine: 0.25, weights: [0.5, 0.5] });
    // g_m·g_m = 4, g_m·g_u = −1, g_u·g_u = 1: γ = (1 + 1)/(4 + 1 + 2) = 2/7 on g_m.
    const conflict = paretoWeights(4, -1, 1);
    expect(conflict.cosine).toBeCloseTo(-0.5, 12);
    expect(conflict.weights[0]).toBeCloseTo(2 / 7, 12);
    expect(conflict.weights[1]).toBeCloseTo(5 / 7, 12);
    // The min-norm point is orthogonal to g_m − g_u: (γ g_m + (1−γ) g_u)·(g_m − g_u) = 0.
    const [g] = conflict.weights;
    expect(g * 4 + (1 - 2 * g) * -1 - (1 - g) * 1).toBeCloseTo(0, 12);
  });

  it('combines each encoder’s multimodal and uni-modal gradients per tensor, γ·max(1, ‖∇L‖/‖g_new‖)·g_new (by hand)', () => {
    const K = 4;
    const B = 6;
    const net = createCmnistLateFusionNet({ channels: [3, 1], numClasses: K, seed: 4, width: 0.25, unimodalHeads: true });
    let s = 99;
    const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296) * 2 - 1;
    const x = [3, 1].map((c) => tf.tensor(Float32Array.from({ length: B * 12 * 12 * c }, rand), [B, 12, 12, c]));
    const oneHot = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 1, 2], 'int32'), K).toFloat() as tf.Tensor2D;
    const heads = net.encoders.map((e) => e.head.map((p) => p.variable));
    const method = new MmParetoMethod(mmParetoSchema.parse({}), net.groups.theta, heads);
    const variables = net.trainableVariables as tf.Variable[];
    const gradsOf = (lossOf: (out: ForwardOutput) => tf.Scalar) => {
      const saved = net.getState();
      const { value, grads } = tf.variableGrads(() => lossOf(net.forward(x, { mode: 'regular', training: true })), variables);
      value.dispose();
      net.setState(saved);
      return grads;
    };
    const total = gradsOf((out) => method.loss(out, oneHot));
    const multimodal = gradsOf((out) => crossEntropy(out.logits, oneHot));
    const host = (m: tf.NamedTensorMap) => Object.fromEntries(Object.entries(m).map(([n, g]) => [n, Array.from(g.dataSync())]));
    const t = host(total);
    const m = host(multimodal);
    method.modifyGradients(total, [], { epoch: 1, step: 1 }, [multimodal]);
    const after = host(total);
    const dot = (a: number[], b: number[]) => a.reduce((acc, v, i) => acc + v * b[i]!, 0);
    const norm = (a: number[]) => Math.sqrt(dot(a, a));
    net.groups.theta.forEach((theta, k) => {
      const body = theta.filter((v) => !heads[k]!.includes(v));
      expect(body.length).toBe(10);
      const gm = body.flatMap((v) => m[v.name] ?? new Array(v.size).fill(0));
      const gu = body.flatMap((v) => t[v.name]!.map((g, i) => g - (m[v.name]?.[i] ?? 0)));
      const cos = dot(gm, gu) / (norm(gm) * norm(gu));
      let w: number[];
      if (cos > 0) w = [0.5, 0.5];
      else {
        const gamma = (dot(gu, gu) - dot(gm, gu)) / (dot(gm, gm) + dot(gu, gu) - 2 * dot(gm, gu));
        w = [gamma, 1 - gamma];
      }
      expect(method.last[k]!.cosine).toBeCloseTo(cos, 4);
      for (const v of body) {
        const gmv = m[v.name] ?? new Array(v.size).fill(0);
        const next = t[v.name]!.map((g, i) => 2 * w[0]! * gmv[i]! + 2 * w[1]! * (g - gmv[i]!));
        const scale = 1.5 * Math.max(1, norm(t[v.name]!) / norm(next));
        after[v.name]!.forEach((g, i) => expect(g).toBeCloseTo(scale * next[i]!, 5));
      }
      // The per-branch head keeps its plain gradient.
      for (const v of heads[k]!) expect(after[v.name]).toEqual(t[v.name]);
    });
    for (const w of [...net.fusionWeights, net.fusionBias]) expect(after[w.variable.name]).toEqual(t[w.variable.name]);
    tf.dispose([...Object.values(total), ...Object.values(multimodal), ...x, oneHot]);
    net.dispose();
  });
});

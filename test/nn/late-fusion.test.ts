import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCmnistLateFusionNet } from '../../src/nn/cmnist.ts';

// The CMNIST late-fusion net at width 1/8 (features F = 8 per branch), K = 3, on 12×12 inputs. The fused head is
// checked against plain-JS matrix products on the encoders' reported features and the head's weights.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const K = 3;
const B = 4;
const make = (unimodalHeads = false) => createCmnistLateFusionNet({ channels: [3, 1], numClasses: K, seed: 5, width: 0.125, unimodalHeads });

function inputs(): tf.Tensor[] {
  let s = 12345;
  const rand = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296) * 2 - 1;
  return [3, 1].map((c) => tf.tensor(Float32Array.from({ length: B * 12 * 12 * c }, rand), [B, 12, 12, c]));
}

const rows = (t: tf.Tensor) => t.arraySync() as number[][];
const vec = (t: tf.Tensor) => Array.from(t.dataSync());

/** x·W (+ b) for x: n×F, W: F×K as nested arrays. */
function affine(x: number[][], w: number[][], b?: number[]): number[][] {
  return x.map((row) => w[0]!.map((_, j) => row.reduce((acc, xi, i) => acc + xi * w[i]![j]!, b ? b[j]! : 0)));
}
const add = (a: number[][], b: number[][]) => a.map((r, i) => r.map((v, j) => v + b[i]![j]!));

function expectClose(actual: number[][], expected: number[][]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(expected[i]![j]!, 5)));
}

describe('late-fusion net: ŷ = Σ_k e_k·W_k + b (hand computation)', () => {
  it('regular mode: fused logits, per-modality terms e_k·W_k + b/2, and f_k = ŷ', () => {
    const net = make();
    const x = inputs();
    tf.tidy(() => {
      const out = net.forward(x, { mode: 'regular', training: false });
      const e = out.branchFeatures.map(rows);
      expect(e[0]![0]!.length).toBe(8);
      const W = net.fusionWeights.map((w) => rows(w.variable));
      const b = vec(net.fusionBias.variable);
      const expected = add(affine(e[0]!, W[0]!, b), affine(e[1]!, W[1]!));
      expectClose(rows(out.logits), expected);
      out.branchLogits.forEach((l) => expectClose(rows(l), expected));
      const half = b.map((v) => v / 2);
      out.lateFusion!.terms.forEach((t, k) => expectClose(rows(t), affine(e[k]!, W[k]!, half)));
      expect(out.lateFusion!.unimodalLogits).toBeUndefined();
    });
    net.dispose();
    x.forEach((t) => t.dispose());
  });

  it('unimodalMeans mode: f_k′(x) = e_k(x)·W_k + ē_j·W_j + b for the other branch j', () => {
    const net = make();
    const x = inputs();
    const means = [Float32Array.from({ length: 8 }, (_, i) => 0.1 * i), Float32Array.from({ length: 8 }, (_, i) => 0.3 - 0.05 * i)];
    net.setSqueezeMeans([means]);
    tf.tidy(() => {
      const out = net.forward(x, { mode: 'unimodalMeans', training: false, collectSqueezed: true });
      const e = out.branchFeatures.map(rows);
      // The features are what the metrics average into ē (one fusion position).
      expect(out.squeezed!.length).toBe(1);
      out.squeezed![0]!.forEach((h, k) => expectClose(rows(h), e[k]!));
      const W = net.fusionWeights.map((w) => rows(w.variable));
      const b = vec(net.fusionBias.variable);
      const meanRows = means.map((m) => Array.from({ length: B }, () => Array.from(m)));
      expectClose(rows(out.branchLogits[0]!), add(affine(e[0]!, W[0]!, b), affine(meanRows[1]!, W[1]!)));
      expectClose(rows(out.branchLogits[1]!), add(affine(meanRows[0]!, W[0]!, b), affine(e[1]!, W[1]!)));
      // ŷ itself is unchanged by the mode.
      expectClose(rows(out.logits), add(affine(e[0]!, W[0]!, b), affine(e[1]!, W[1]!)));
    });
    net.dispose();
    x.forEach((t) => t.dispose());
  });

  it('per-branch heads (when built) read only their own features', () => {
    const net = make(true);
    const x = inputs();
    tf.tidy(() => {
      const out = net.forward(x, { mode: 'regular', training: false });
      const heads = out.lateFusion!.unimodalLogits!;
      net.encoders.forEach((enc, k) => {
        const [w, bias] = enc.head;
        expectClose(rows(heads[k]!), affine(rows(out.branchFeatures[k]!), rows(w!.variable), vec(bias!.variable)));
      });
    });
    net.dispose();
    x.forEach((t) => t.dispose());
  });

  it('groups: θk = encoder k (its head only when kept), θk′ = W_k; the fused bias is in no group', () => {
    const plain = make();
    const headed = make(true);
    for (const net of [plain, headed]) {
      const all = new Set(net.trainableVariables);
      net.groups.thetaPrime.forEach((g, k) => expect(g).toEqual([net.fusionWeights[k]!.variable]));
      for (const g of [...net.groups.theta, ...net.groups.thetaPrime]) g.forEach((v) => expect(all.has(v)).toBe(true));
      const grouped = new Set([...net.groups.theta.flat(), ...net.groups.thetaPrime.flat()]);
      expect(grouped.has(net.fusionBias.variable)).toBe(false);
      expect(all.has(net.fusionBias.variable)).toBe(true);
    }
    // Input BN γ, β and conv1…conv4 weight, bias: 10 tensors; + head weight, bias = 12.
    expect(plain.groups.theta.map((g) => g.length)).toEqual([10, 10]);
    expect(headed.groups.theta.map((g) => g.length)).toEqual([12, 12]);
    expect(plain.trainableVariables.length).toBe(10 + 10 + 3);
    plain.encoders.forEach((enc) => enc.head.forEach((p) => expect(plain.trainableVariables).not.toContain(p.variable)));
    plain.dispose();
    headed.dispose();
  });

  it('refuses re-balancing modes, unimodalMeans without means, and means of the wrong width', () => {
    const net = make();
    const x = inputs();
    expect(() => tf.tidy(() => { net.forward(x, { mode: 'rebalance0', training: false }); })).toThrow(/late-fusion net has none/);
    expect(() => tf.tidy(() => { net.forward(x, { mode: 'unimodalMeans', training: false }); })).toThrow(/setSqueezeMeans/);
    expect(() => net.setSqueezeMeans([[new Float32Array(8), new Float32Array(7)]])).toThrow(/8 values, 8 values/);
    net.dispose();
    x.forEach((t) => t.dispose());
  });
});

import { describe, expect, it } from 'vitest';
import { ByteArrayDataset, epochOrder, type ByteModality } from '../../src/data/batching.ts';
import type { BatchOptions, HostBatch } from '../../src/data/types.ts';

// A tiny synthetic dataset: 2×1 "images" with 3 channels on branch 0 and 1 channel on branch 1; sample i holds
// bytes derived from i so every value in a batch can be traced back to its sample.
const N = 23;
const rgb: ByteModality = { name: 'rgb', shape: [2, 1, 3], mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2] };
const mono: ByteModality = { name: 'mono', shape: [2, 1, 1], mean: [0.1], std: [0.2] };
const x0 = Uint8Array.from({ length: N * 6 }, (_, j) => (j * 37 + 11) % 256);
const x1 = Uint8Array.from({ length: N * 2 }, (_, j) => (j * 53 + 5) % 256);
const labels = Uint8Array.from({ length: N }, (_, i) => i % 4);
const split = { inputs: [x0, x1], labels, sourceCount: N };
const ds = new ByteArrayDataset('toy', [rgb, mono], 4, ['a', 'b', 'c', 'd'], { train: split, val: split, test: split });

const options = (o: Partial<BatchOptions> = {}): BatchOptions => ({ batchSize: 5, shuffle: true, augment: false, seed: 7, epoch: 1, ...o });
const collect = (batches: Iterable<HostBatch>) => Array.from(batches);
const allIndices = (batches: HostBatch[]) => batches.flatMap((b) => Array.from(b.indices));

describe('ByteArrayDataset batches', () => {
  it('normalises every value per channel exactly as (byte/255 − mean)/std', () => {
    const [b] = collect(ds.batches('train', options({ batchSize: N, shuffle: false })));
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < 6; j++) {
        const c = j % 3;
        expect(b.inputs[0][i * 6 + j]).toBeCloseTo((x0[i * 6 + j] / 255 - rgb.mean[c]) / rgb.std[c], 5);
      }
      for (let j = 0; j < 2; j++) expect(b.inputs[1][i * 2 + j]).toBeCloseTo((x1[i * 2 + j] / 255 - 0.1) / 0.2, 5);
    }
    // Hand-computed: sample 0 byte 0 is 11 → (11/255 − 0.5)/0.5 = −0.913725…
    expect(b.inputs[0][0]).toBeCloseTo(-0.9137255, 6);
    expect(Array.from(b.y)).toEqual(Array.from(labels));
    expect(Array.from(b.indices)).toEqual(Array.from({ length: N }, (_, i) => i));
  });

  it('visits every index exactly once per epoch; the last batch is smaller', () => {
    const batches = collect(ds.batches('train', options()));
    expect(batches.map((b) => b.size)).toEqual([5, 5, 5, 5, 3]);
    expect(allIndices(batches).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i));
    // Labels and inputs travel with their index.
    for (const b of batches) {
      for (let k = 0; k < b.size; k++) {
        expect(b.y[k]).toBe(labels[b.indices[k]]);
        expect(b.inputs[1][2 * k]).toBeCloseTo((x1[2 * b.indices[k]] / 255 - 0.1) / 0.2, 5);
      }
    }
  });

  it('orders by (seed, epoch): reproducible, different across epochs and seeds, independent of batch size', () => {
    const order = (o: Partial<BatchOptions>) => allIndices(collect(ds.batches('train', options(o))));
    expect(order({ epoch: 1 })).toEqual(order({ epoch: 1 }));
    expect(order({ epoch: 1 })).not.toEqual(order({ epoch: 2 }));
    expect(order({ seed: 7 })).not.toEqual(order({ seed: 8 }));
    expect(order({ batchSize: 4 })).toEqual(order({ batchSize: 6 }));
    expect(order({ shuffle: false })).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(Array.from(epochOrder('train', N, true, 7, 1))).toEqual(order({}));
  });

  it('resumes exactly with startBatch', () => {
    const full = collect(ds.batches('train', options({ epoch: 3 })));
    const resumed = collect(ds.batches('train', options({ epoch: 3, startBatch: 2 })));
    expect(resumed).toEqual(full.slice(2));
    expect(collect(ds.batches('train', options({ startBatch: 5 })))).toEqual([]);
    expect(() => collect(ds.batches('train', options({ startBatch: -1 })))).toThrow(/startBatch/);
    expect(() => collect(ds.batches('train', options({ batchSize: 0 })))).toThrow(/batchSize/);
  });

  it('copies the normalised input when both branches share one modality', () => {
    const shared = { inputs: [x0, x0], labels, sourceCount: N };
    const dup = new ByteArrayDataset('dup', [rgb, rgb], 4, ['a', 'b', 'c', 'd'], { train: shared, val: shared, test: shared });
    const [b] = collect(dup.batches('train', options({ batchSize: 8 })));
    expect(b.inputs[1]).toEqual(b.inputs[0]);
    expect(b.inputs[1]).not.toBe(b.inputs[0]);
    expect(b.inputs[0][0]).toBeCloseTo((x0[b.indices[0] * 6] / 255 - 0.5) / 0.5, 5);
  });

  it('batches any number of branches ≥ 2: one input per modality, duplicated ones copied', () => {
    // Branches: rgb (x0), mono (x1), rgb again on the same bytes → branch 2 must equal branch 0 but be its own array.
    const tri = { inputs: [x0, x1, x0], labels, sourceCount: N };
    const ds3 = new ByteArrayDataset('tri', [rgb, mono, rgb], 4, ['a', 'b', 'c', 'd'], { train: tri, val: tri, test: tri });
    expect(ds3.modalities.map((m) => m.name)).toEqual(['rgb', 'mono', 'rgb']);
    const [b] = collect(ds3.batches('train', options({ batchSize: 6 })));
    const [two] = collect(ds.batches('train', options({ batchSize: 6 })));
    expect(b.inputs.length).toBe(3);
    // Branches 0 and 1 are exactly the two-modality dataset's batch (same order, same values).
    expect(Array.from(b.indices)).toEqual(Array.from(two.indices));
    expect(b.inputs[0]).toEqual(two.inputs[0]);
    expect(b.inputs[1]).toEqual(two.inputs[1]);
    expect(b.inputs[2]).toEqual(b.inputs[0]);
    expect(b.inputs[2]).not.toBe(b.inputs[0]);
    // Hand-computed: byte 3 of sample i (channel 0) is (3·37 + 11 + 6·37·i) mod 256.
    const i = b.indices[1];
    const byte = (6 * i * 37 + 3 * 37 + 11) % 256;
    expect(b.inputs[2][6 + 3]).toBeCloseTo((byte / 255 - 0.5) / 0.5, 5);
    expect(Array.from(ds3.sampleBytes('train', 4, 2))).toEqual(Array.from(x0.subarray(24, 30)));
    // A third modality with its own bytes is normalised with its own tables.
    const x2 = Uint8Array.from({ length: N * 2 }, (_, j) => 255 - j);
    const own = { inputs: [x0, x1, x2], labels, sourceCount: N };
    const other: ByteModality = { name: 'other', shape: [2, 1, 1], mean: [0], std: [1] };
    const [c] = collect(new ByteArrayDataset('own', [rgb, mono, other], 4, ['a', 'b', 'c', 'd'], { train: own, val: own, test: own }).batches('train', options({ shuffle: false })));
    expect(c.inputs[2][3]).toBeCloseTo((255 - 3) / 255, 6);
  });

  it('rejects fewer than two modalities and input arrays that do not match the modalities', () => {
    const one = { inputs: [x0], labels, sourceCount: N };
    expect(() => new ByteArrayDataset('one', [rgb], 4, ['a', 'b', 'c', 'd'], { train: one, val: one, test: one })).toThrow(/at least two modalities, got 1/);
    expect(() => new ByteArrayDataset('bad', [rgb, mono, mono], 4, ['a', 'b', 'c', 'd'], { train: split, val: split, test: split })).toThrow(
      /bad\/train: 2 input arrays for 3 modalities/,
    );
    expect(() => new ByteArrayDataset('short', [rgb, rgb], 4, ['a', 'b', 'c', 'd'], { train: split, val: split, test: split })).toThrow(
      /short\/train: branch 1 holds 46 bytes, expected 23 × 6/,
    );
    expect(() => ds.sampleBytes('train', 0, 2)).toThrow(/no branch 2/);
  });

  it('maps subset positions to source samples', () => {
    const sub = { ...split, sourceIndex: Int32Array.from([3, 10, 20]) };
    const small = new ByteArrayDataset('sub', [rgb, mono], 4, ['a', 'b', 'c', 'd'], { train: sub, val: sub, test: sub });
    expect(small.size('train')).toBe(3);
    expect(Array.from(small.labels('train'))).toEqual([3, 2, 0]);
    const [b] = collect(small.batches('train', options({ shuffle: false, batchSize: 10 })));
    expect(Array.from(b.indices)).toEqual([0, 1, 2]);
    expect(b.inputs[1][2]).toBeCloseTo((x1[20] / 255 - 0.1) / 0.2, 5);
  });
});

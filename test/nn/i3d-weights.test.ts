import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/index.ts';
import { createI3dNet, createI3dUnimodalSeNet, i3dLayout, i3dTensorSpecs, inceptionUnits } from '../../src/nn/i3d.ts';
import type { I3dBranch } from '../../src/nn/i3d.ts';
import type { Unit3dSpec } from '../../src/nn/layers3d.ts';
import { encodeSafetensors, loadI3dWeights, loadI3dWeightsFile, parseSafetensors, readSafetensors, type NamedTensorData } from '../../src/nn/weights.ts';
import { FIDELITY_PROFILES } from '../../src/spec/fidelity.ts';

/**
 * Pretrained I3D weights: the safetensors reader, the converter from a PyTorch checkpoint (a tiny I3D-style
 * state_dict written here with torch, when python3 and torch are installed), and loading into both branches.
 */

const CONVERTER = resolve(import.meta.dirname, '../../tools/convert_i3d.py');
const WIDTH = 1 / 16;
const fidelity = FIDELITY_PROFILES.code;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mmsweep-i3d-weights-'));
  await initBackend('cpu');
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('safetensors reader', () => {
  it('round-trips float32 tensors with metadata and decodes F16, BF16 and F64', () => {
    const tensors = new Map<string, NamedTensorData>([
      ['a.weight', { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-7, -0]) }],
      ['b', { shape: [1], data: Float32Array.of(Math.fround(Math.PI)) }],
    ]);
    const parsed = parseSafetensors(encodeSafetensors(tensors, { format: 'x' }), 'mem');
    expect(parsed.metadata).toEqual({ format: 'x' });
    expect([...parsed.tensors.keys()]).toEqual(['a.weight', 'b']);
    expect(Array.from(parsed.tensors.get('a.weight')!.data)).toEqual(Array.from(tensors.get('a.weight')!.data));
    expect(parsed.tensors.get('b')!.data[0]).toBe(Math.fround(Math.PI));

    // Hand-built file: F16 [1, −2, 0.5, 65504], BF16 [1, −3], F64 [0.1] at an unaligned offset.
    const header = JSON.stringify({
      h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] },
      d: { dtype: 'F64', shape: [1], data_offsets: [12, 20] },
    });
    const bytes = new Uint8Array(8 + header.length + 20);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(header.length), true);
    bytes.set(new TextEncoder().encode(header), 8);
    const at = 8 + header.length;
    [0x3c00, 0xc000, 0x3800, 0x7bff].forEach((h, i) => view.setUint16(at + 2 * i, h, true));
    [0x3f80, 0xc040].forEach((h, i) => view.setUint16(at + 8 + 2 * i, h, true));
    view.setFloat64(at + 12, 0.1, true);
    const mixed = parseSafetensors(bytes, 'mixed');
    expect(Array.from(mixed.tensors.get('h')!.data)).toEqual([1, -2, 0.5, 65504]);
    expect(Array.from(mixed.tensors.get('b')!.data)).toEqual([1, -3]);
    expect(mixed.tensors.get('d')!.data[0]).toBe(Math.fround(0.1));
  });

  it('rejects files that are not safetensors, naming the file', () => {
    const file = join(dir, 'bad.safetensors');
    writeFileSync(file, 'not a tensor file at all');
    expect(() => readSafetensors(file)).toThrow(new RegExp(`${file}: header length`));
    expect(() => readSafetensors(join(dir, 'missing.safetensors'))).toThrow(/missing\.safetensors: cannot read it \(ENOENT\)/);
    const header = JSON.stringify({ t: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } });
    const bytes = new Uint8Array(8 + header.length + 8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(new TextEncoder().encode(header), 8);
    expect(() => parseSafetensors(bytes, 'short')).toThrow(/short: tensor 't'.*do not fit/);
  });
});

/** The tensors a converted file holds for a branch of this layout, filled with distinct values. */
function syntheticWeights(inChannels: number, width: number): Map<string, NamedTensorData> {
  const specs = i3dTensorSpecs(i3dLayout({ inChannels, numClasses: 400, width }));
  let k = 0;
  return new Map(
    specs.map((s) => {
      const size = s.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      for (let i = 0; i < size; i++) data[i] = Math.fround(Math.sin(++k) * (s.name.endsWith('runningVar') ? 0.5 : 1) + (s.name.endsWith('runningVar') ? 1 : 0));
      return [s.name, { shape: s.shape, data }];
    }),
  );
}

function branchValues(branch: I3dBranch): Map<string, Float32Array> {
  const values = new Map<string, Float32Array>();
  for (const p of branch.parameters) values.set(p.name, p.variable.dataSync() as Float32Array);
  for (const s of branch.state) values.set(s.name, s.read());
  return values;
}

/** Sum over the input-channel axis of a [t,h,w,in,out] kernel, written independently of weights.ts. */
function summedKernel(t: NamedTensorData): Float32Array {
  const [kt, kh, kw, cin, cout] = t.shape as [number, number, number, number, number];
  const out = new Float32Array(kt * kh * kw * cout);
  for (let p = 0; p < kt * kh * kw; p++) for (let o = 0; o < cout; o++) {
    let s = 0;
    for (let i = 0; i < cin; i++) s += t.data[p * cin * cout + i * cout + o]!;
    out[p * cout + o] = s;
  }
  return out;
}

function checkLoaded(net: { branches: readonly unknown[] } & { dispose(): void }, weights: Map<string, NamedTensorData>, fresh: Map<string, Float32Array>[], channels: number[]): void {
  net.branches.forEach((b, k) => {
    const branch = b as I3dBranch;
    const got = branchValues(branch);
    for (const [name, values] of got) {
      const bare = name.slice(`branch${k}.`.length);
      if (bare === 'dropoutCalls') continue;
      if (bare.startsWith('logits.')) {
        expect(Array.from(values), `${name} stays freshly initialised`).toEqual(Array.from(fresh[k]!.get(name)!));
        continue;
      }
      const file = weights.get(bare)!;
      const expected = bare === 'Conv3d_1a_7x7.conv3d.weight' && channels[k] === 1 ? summedKernel(file) : file.data;
      expect(Array.from(values), name).toEqual(Array.from(expected));
    }
  });
}

describe('loading converted weights into the I3D networks', () => {
  it('fills both branches (depth conv1 summed over RGB), keeps fresh logits and random MMTMs', () => {
    const weights = syntheticWeights(3, WIDTH);
    const file = join(dir, 'synthetic.safetensors');
    writeFileSync(file, encodeSafetensors(weights, { format: 'mmsweep-i3d' }));
    const fresh = createI3dNet({ channels: [3, 1], numClasses: 25, seed: 4, fidelity, width: WIDTH });
    const net = createI3dNet({ channels: [3, 1], numClasses: 25, seed: 4, fidelity, width: WIDTH });
    try {
      const report = loadI3dWeightsFile(net, file);
      expect(report.adaptedFirstConv).toEqual([false, true]);
      expect(report.skipped).toEqual(['logits.conv3d.weight', 'logits.conv3d.bias']);
      const perBranch = i3dTensorSpecs((net.branches[0] as I3dBranch).layout).filter((s) => !s.name.startsWith('logits.')).length;
      expect(report.loaded).toBe(2 * perBranch);
      checkLoaded(net, weights, fresh.branches.map((b) => branchValues(b as I3dBranch)), [3, 1]);
      net.mmtms.forEach((m, i) => {
        m.parameters.forEach((p, j) => expect(Array.from(p.variable.dataSync())).toEqual(Array.from(fresh.mmtms[i]!.parameters[j]!.variable.dataSync())));
      });
      // The adapted kernel computes on depth what the RGB kernel computes on depth replicated to 3 channels.
      tf.tidy(() => {
        const depth = tf.randomUniform([1, 6, 9, 9, 1], -1, 1, 'float32', 3) as tf.Tensor5D;
        const kernel = weights.get('Conv3d_1a_7x7.conv3d.weight')!;
        const rgbKernel = tf.tensor5d(kernel.data, kernel.shape as [number, number, number, number, number]);
        const replicated = tf.conv3d(tf.concat([depth, depth, depth], 4), rgbKernel, 2, 'same');
        const adapted = tf.conv3d(depth, (net.branches[1] as I3dBranch).units.get('Conv3d_1a_7x7')!.weight.variable as tf.Tensor5D, 2, 'same');
        expect(tf.max(tf.abs(tf.sub(replicated, adapted))).dataSync()[0]).toBeLessThan(1e-4);
      });
    } finally {
      net.dispose();
      fresh.dispose();
    }
  });

  it('loads into the uni-modal SE baseline', () => {
    const weights = syntheticWeights(3, WIDTH);
    const se = createI3dUnimodalSeNet({ channels: 1, numClasses: 25, seed: 1, fidelity, width: WIDTH, modality: 1 });
    try {
      const report = loadI3dWeights(se, { tensors: weights, metadata: {} }, 'mem');
      expect(report.adaptedFirstConv).toEqual([true]);
      const conv1 = (se.branch as I3dBranch).units.get('Conv3d_1a_7x7')!.weight.variable.dataSync();
      expect(Array.from(conv1)).toEqual(Array.from(summedKernel(weights.get('Conv3d_1a_7x7.conv3d.weight')!)));
    } finally {
      se.dispose();
    }
  });

  it('a file of another width or with foreign tensors is rejected and leaves the network untouched', () => {
    const net = createI3dNet({ channels: [3, 1], numClasses: 25, seed: 4, fidelity, width: WIDTH });
    try {
      const before = branchValues(net.branches[0] as I3dBranch);
      expect(() => loadI3dWeights(net, { tensors: syntheticWeights(3, 1 / 8), metadata: {} }, 'wide.safetensors')).toThrow(
        /wide\.safetensors: does not fit the I3D branch branch0: 'Conv3d_1a_7x7\.conv3d\.weight' is \[7,7,7,3,8\] in the file, \[7,7,7,3,4\] in the network.*width 1/,
      );
      const extra = syntheticWeights(3, WIDTH);
      extra.set('Mixed_6a.b0.conv3d.weight', { shape: [1], data: Float32Array.of(1) });
      expect(() => loadI3dWeights(net, { tensors: extra, metadata: {} }, 'extra.safetensors')).toThrow(/extra\.safetensors: holds tensors an I3D branch does not have: Mixed_6a/);
      const missing = syntheticWeights(3, WIDTH);
      missing.delete('Mixed_4c.b2b.bn.runningVar');
      expect(() => loadI3dWeights(net, { tensors: missing, metadata: {} }, 'm')).toThrow(/missing 'Mixed_4c\.b2b\.bn\.runningVar'/);
      const after = branchValues(net.branches[0] as I3dBranch);
      for (const [name, v] of before) expect(Array.from(after.get(name)!), name).toEqual(Array.from(v));
    } finally {
      net.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The converter, on a checkpoint written by PyTorch itself.

function pythonWithTorch(): string | null {
  const probe = spawnSync('python3', ['-c', 'import torch, sys; sys.stdout.write(torch.__version__)'], { encoding: 'utf8' });
  if (probe.error) return `python3 is not available (${(probe.error as NodeJS.ErrnoException).code})`;
  if (probe.status !== 0) return `torch is not importable in python3 (${probe.stderr.trim().split('\n').pop()})`;
  return null;
}

/** Builds nn.Conv3d / nn.BatchNorm3d modules under the piergiaj names, randomises them and saves the state_dict. */
const MAKE_CHECKPOINT = `
import json, sys, torch, torch.nn as nn
units, ckpt, dump = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
torch.manual_seed(0)
class Unit3D(nn.Module):
    def __init__(self, i, o, k, bn):
        super().__init__()
        self.conv3d = nn.Conv3d(i, o, kernel_size=k, bias=not bn)
        if bn:
            self.bn = nn.BatchNorm3d(o, eps=0.001, momentum=0.01)
root = nn.Module()
for u in units:
    parent = root
    *path, leaf = u["name"].split(".")
    for part in path:
        if not hasattr(parent, part):
            parent.add_module(part, nn.Module())
        parent = getattr(parent, part)
    parent.add_module(leaf, Unit3D(u["in"], u["out"], tuple(u["kernel"]), u["bn"]))
with torch.no_grad():
    for name, t in root.state_dict().items():
        if name.endswith("num_batches_tracked"):
            t.fill_(123)
        elif name.endswith("running_var"):
            t.copy_(torch.rand_like(t) + 0.5)
        else:
            t.copy_(torch.randn_like(t))
state = root.state_dict()
torch.save(state, ckpt)
index, blob = {}, bytearray()
for name, t in state.items():
    if t.dtype != torch.float32:
        index[name] = {"shape": list(t.shape), "dtype": str(t.dtype)}
        continue
    data = t.contiguous().numpy().astype("<f4").tobytes()
    index[name] = {"shape": list(t.shape), "offset": len(blob)}
    blob += data
open(dump + ".json", "w").write(json.dumps(index))
open(dump + ".bin", "wb").write(bytes(blob))
`;

function unitList(inChannels: number, width: number): { name: string; in: number; out: number; kernel: number[]; bn: boolean }[] {
  const layout = i3dLayout({ inChannels, numClasses: 400, width });
  const entry = (name: string, u: Unit3dSpec) => ({ name, in: u.inChannels, out: u.outChannels, kernel: u.kernel, bn: u.batchNorm });
  const units: ReturnType<typeof entry>[] = [];
  for (const stage of layout.stages) {
    if (stage.kind === 'unit') units.push(entry(stage.name, stage.unit));
    if (stage.kind === 'mixed') for (const [sub, u] of Object.entries(inceptionUnits(stage.inChannels, stage.widths))) units.push(entry(`${stage.name}.${sub}`, u));
  }
  units.push(entry('logits', layout.logits));
  return units;
}

describe('tools/convert_i3d.py on a PyTorch checkpoint', () => {
  const missing = pythonWithTorch();

  it('converts every tensor exactly (names mapped, conv weights [out,in,t,h,w] → [t,h,w,in,out]) and the result loads', (ctx) => {
    if (missing) {
      console.log(`skipping the converter test: ${missing}`);
      ctx.skip();
    }
    const unitsFile = join(dir, 'units.json');
    writeFileSync(unitsFile, JSON.stringify(unitList(3, WIDTH)));
    const script = join(dir, 'make_checkpoint.py');
    writeFileSync(script, MAKE_CHECKPOINT);
    const ckpt = join(dir, 'tiny_i3d.pt');
    const dump = join(dir, 'tiny_i3d_original');
    const made = spawnSync('python3', [script, unitsFile, ckpt, dump], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const out = join(dir, 'tiny_i3d.safetensors');
    const converted = spawnSync('python3', [CONVERTER, ckpt, out], { encoding: 'utf8' });
    expect(converted.status, converted.stderr).toBe(0);
    expect(converted.stderr).toMatch(/wrote \d+ tensors/);

    const index = JSON.parse(readFileSync(`${dump}.json`, 'utf8')) as Record<string, { shape: number[]; offset?: number }>;
    const blob = readFileSync(`${dump}.bin`);
    const file = readSafetensors(out);
    expect(file.metadata.format).toBe('mmsweep-i3d');
    let checked = 0;
    const expectedNames: string[] = [];
    for (const [name, { shape, offset }] of Object.entries(index)) {
      if (name.endsWith('num_batches_tracked')) {
        expect(offset).toBeUndefined();
        continue;
      }
      const ours = name.replace(/running_mean$/, 'runningMean').replace(/running_var$/, 'runningVar');
      expectedNames.push(ours);
      const size = shape.reduce((a, b) => a * b, 1);
      const original = new Float32Array(blob.buffer.slice(blob.byteOffset + offset!, blob.byteOffset + offset! + size * 4));
      const got = file.tensors.get(ours);
      expect(got, ours).toBeDefined();
      if (shape.length === 5) {
        const [o, i, t, h, w] = shape as [number, number, number, number, number];
        expect(got!.shape).toEqual([t, h, w, i, o]);
        let mismatches = 0;
        for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let c = 0; c < t; c++) for (let d = 0; d < h; d++) for (let e = 0; e < w; e++) {
          const src = original[(((a * i + b) * t + c) * h + d) * w + e]!;
          const dst = got!.data[(((c * h + d) * w + e) * i + b) * o + a]!;
          if (!Object.is(src, dst)) mismatches++;
        }
        expect(mismatches, ours).toBe(0);
      } else {
        expect(got!.shape).toEqual(shape);
        expect(Array.from(got!.data), ours).toEqual(Array.from(original));
      }
      checked++;
    }
    expect([...file.tensors.keys()].sort()).toEqual(expectedNames.sort());
    expect(checked).toBe(i3dTensorSpecs(i3dLayout({ inChannels: 3, numClasses: 400, width: WIDTH })).length);

    // The converted file loads into the two-branch net (RGB as is, depth conv1 summed).
    const fresh = createI3dNet({ channels: [3, 1], numClasses: 25, seed: 9, fidelity, width: WIDTH });
    const net = createI3dNet({ channels: [3, 1], numClasses: 25, seed: 9, fidelity, width: WIDTH });
    try {
      loadI3dWeightsFile(net, out);
      checkLoaded(net, file.tensors, fresh.branches.map((b) => branchValues(b as I3dBranch)), [3, 1]);
    } finally {
      net.dispose();
      fresh.dispose();
    }
  });

  it('refuses a checkpoint that is not an I3D state_dict, naming the keys', (ctx) => {
    if (missing) {
      console.log(`skipping the converter test: ${missing}`);
      ctx.skip();
    }
    const ckpt = join(dir, 'resnet.pt');
    const made = spawnSync('python3', ['-c', `import torch; torch.save({"conv1.weight": torch.zeros(2, 3, 7, 7), "fc.bias": torch.zeros(4)}, ${JSON.stringify(ckpt)})`], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const converted = spawnSync('python3', [CONVERTER, ckpt, join(dir, 'resnet.safetensors')], { encoding: 'utf8' });
    expect(converted.status).not.toBe(0);
    expect(converted.stderr).toMatch(/2 key\(s\) are not I3D tensors in the expected naming: conv1\.weight, fc\.bias/);
  });
});

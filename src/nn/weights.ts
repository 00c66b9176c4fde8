import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { DataFileError } from '../data/idx.ts';
import { I3dBranch, i3dTensorSpecs } from './i3d.ts';
import type { StagedBranch } from './multi-branch.ts';

/**
 * Pretrained I3D weights (paper-spec §4.3, "NVGesture-pretrained") from a safetensors file.
 *
 * ## File format
 * safetensors: 8 bytes little-endian u64 N, N bytes of JSON `{ name: { dtype, shape, data_offsets: [begin, end] },
 * "__metadata__": {…} }`, then the raw little-endian tensor bytes (offsets relative to the end of the header).
 * Read dtypes: F32, F64, F16, BF16 (all converted to float32).
 *
 * ## Name mapping (what `tools/convert_i3d.py` writes from the public PyTorch I3D checkpoint, e.g. `rgb_imagenet.pt`)
 * | PyTorch state_dict (piergiaj names)          | safetensors name (ours)                | layout change                      |
 * |----------------------------------------------|----------------------------------------|------------------------------------|
 * | `<unit>.conv3d.weight` [out, in, t, h, w]    | `<unit>.conv3d.weight` [t, h, w, in, out] | permute (2, 3, 4, 1, 0)         |
 * | `<unit>.conv3d.bias` [out] (logits only)     | `<unit>.conv3d.bias`                   | —                                  |
 * | `<unit>.bn.weight`, `<unit>.bn.bias`         | same                                   | —                                  |
 * | `<unit>.bn.running_mean`, `.running_var`     | `<unit>.bn.runningMean`, `.runningVar` | —                                  |
 * | `<unit>.bn.num_batches_tracked`              | dropped                                |                                    |
 * `<unit>` is a stage (`Conv3d_1a_7x7`, `Conv3d_2b_1x1`, `Conv3d_2c_3x3`), an inception sub-branch
 * (`Mixed_4c.b1b`; sub-branches b0, b1a, b1b, b2a, b2b, b3b) or `logits`. A branch of our network names the same
 * tensor `branch<k>.<name>` (parameters) or holds it as state `branch<k>.<unit>.bn.runningMean|runningVar`.
 *
 * ## Loading into the I3D-MMTM network
 * Every tensor except `logits.*` is loaded into both branches; the logits stay freshly initialised for the 25
 * NVGesture classes (the checkpoint's are Kinetics' 400) and the MMTMs (or SE blocks) stay random
 * (paper-spec §6.4). A branch with one input channel (depth) gets `Conv3d_1a_7x7.conv3d.weight` summed over its
 * input-channel axis. Why the sum (paper-spec A4 names it as the alternative to feeding depth replicated to three
 * channels): a convolution of a 3× replicated input equals the convolution of the single channel with the summed
 * kernel, so both choices compute the same function at initialisation; they differ only during training, where the
 * three replicated kernels each receive the same gradient, so their sum moves 3× as far per step as the one summed
 * kernel does. The sum keeps the depth input at 1 channel (the data layer's shape) and a third of the first
 * layer's parameters.
 */

export type SafetensorsDtype = 'F32' | 'F64' | 'F16' | 'BF16';

export interface NamedTensorData {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, NamedTensorData>;
  metadata: Record<string, string>;
}

/** A DataFileError (name included): the CLI reports a bad weights file as missing/bad data, not retried. */
export class WeightsFileError extends DataFileError {
  constructor(file: string, reason: string) {
    super(file, reason, '');
    this.message = `${file}: ${reason}`;
  }
}

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Parses safetensors bytes; `source` names the file in errors. */
export function parseSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8) throw new WeightsFileError(source, 'too short to be a safetensors file');
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.byteLength) throw new WeightsFileError(source, `header length ${headerLength} exceeds the file (${bytes.byteLength} bytes): not a safetensors file?`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  } catch {
    throw new WeightsFileError(source, 'the header is not JSON: not a safetensors file?');
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, NamedTensorData>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (!(dtype in ITEM_SIZE)) throw new WeightsFileError(source, `tensor '${name}' has dtype ${dtype}; supported: ${Object.keys(ITEM_SIZE).join(', ')}`);
    const size = shape.reduce((a, b) => a * b, 1);
    const itemSize = ITEM_SIZE[dtype as SafetensorsDtype];
    const [begin, end] = offsets;
    if (end - begin !== size * itemSize || dataStart + end > bytes.byteLength || begin < 0) {
      throw new WeightsFileError(source, `tensor '${name}' (${dtype} [${shape}]) has data offsets [${begin}, ${end}] that do not fit its shape or the file`);
    }
    const at = dataStart + begin;
    const data = new Float32Array(size);
    if (dtype === 'F32') {
      // Copy: the offset need not be 4-byte aligned.
      new Uint8Array(data.buffer).set(bytes.subarray(at, at + size * 4));
    } else {
      for (let i = 0; i < size; i++) {
        const p = at + i * itemSize;
        data[i] =
          dtype === 'F64' ? view.getFloat64(p, true)
          : dtype === 'F16' ? halfToFloat(view.getUint16(p, true))
          : new Float32Array(new Uint32Array([view.getUint16(p, true) << 16]).buffer)[0]!;
      }
    }
    tensors.set(name, { shape: [...shape], data });
  }
  return { tensors, metadata };
}

export function readSafetensors(file: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new WeightsFileError(file, `cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseSafetensors(bytes, file);
}

/** Serialises float32 tensors as safetensors (header padded with spaces to a multiple of 8 bytes). */
export function encodeSafetensors(tensors: ReadonlyMap<string, NamedTensorData>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new Error(`tensor '${name}': shape [${t.shape}] holds ${size} values, data has ${t.data.length}`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + size * 4] };
    offset += size * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Sum of a [t, h, w, in, out] kernel over its input-channel axis → [t, h, w, 1, out]. */
export function sumOverInputChannels(data: Float32Array, shape: number[]): NamedTensorData {
  const [t, h, w, cin, cout] = shape as [number, number, number, number, number];
  const out = new Float32Array(t * h * w * cout);
  for (let s = 0; s < t * h * w; s++) {
    for (let o = 0; o < cout; o++) {
      let acc = 0;
      for (let i = 0; i < cin; i++) acc += data[(s * cin + i) * cout + o]!;
      out[s * cout + o] = acc;
    }
  }
  return { shape: [t, h, w, 1, cout], data: out };
}

export interface I3dLoadReport {
  /** Tensors written, over all branches (parameters and BatchNorm statistics). */
  loaded: number;
  /** Tensors of the file not used (the logits unless kept). */
  skipped: string[];
  /** Whether the first convolution was summed over input channels (per branch). */
  adaptedFirstConv: boolean[];
}

export interface LoadI3dOptions {
  /** Also load `logits.*` (only possible when the class counts agree; default false: fresh logits). */
  keepLogits?: boolean;
}

/** Finds the I3D branches of a multi-branch net (`branches`) or an SE net (`branch`). */
function i3dBranchesOf(net: { branches?: readonly StagedBranch[]; branch?: StagedBranch }): I3dBranch[] {
  const branches = net.branches ?? (net.branch ? [net.branch] : []);
  if (branches.length === 0 || !branches.every((b) => b instanceof I3dBranch)) {
    throw new Error('pretrained I3D weights can only be loaded into I3D networks (createI3dNet / createI3dUnimodalSeNet)');
  }
  return branches as I3dBranch[];
}

/**
 * Loads converted I3D weights into every I3D branch of `net` (see the mapping above). Throws, listing the names,
 * when tensors are missing, unknown or of another shape (e.g. a width multiplier ≠ 1).
 */
export function loadI3dWeights(
  net: { branches?: readonly StagedBranch[]; branch?: StagedBranch },
  weights: SafetensorsFile,
  source: string,
  options: LoadI3dOptions = {},
): I3dLoadReport {
  const branches = i3dBranchesOf(net);
  const used = new Set<string>();
  const adapted: boolean[] = [];
  const planned: (() => void)[] = [];
  for (const branch of branches) {
    const prefix = branch.parameters[0]!.name.split('.')[0]!;
    const params = new Map(branch.parameters.map((p) => [p.name, p.variable]));
    const state = new Map(branch.state.map((s) => [s.name, s]));
    const problems: string[] = [];
    let adaptedHere = false;
    for (const spec of i3dTensorSpecs(branch.layout)) {
      if (spec.name.startsWith('logits.') && !options.keepLogits) continue;
      const found = weights.tensors.get(spec.name);
      if (!found) {
        problems.push(`missing '${spec.name}'`);
        continue;
      }
      used.add(spec.name);
      let value = found;
      const firstConv = spec.name === 'Conv3d_1a_7x7.conv3d.weight';
      if (firstConv && spec.shape[3] === 1 && found.shape.length === 5 && found.shape[3] !== 1) {
        value = sumOverInputChannels(found.data, found.shape);
        adaptedHere = true;
      }
      if (value.shape.join(',') !== spec.shape.join(',')) {
        problems.push(`'${spec.name}' is [${value.shape}] in the file, [${spec.shape}] in the network`);
        continue;
      }
      const target = `${prefix}.${spec.name}`;
      if (spec.kind === 'parameter') {
        const variable = params.get(target);
        if (!variable) throw new Error(`internal: no parameter ${target}`);
        planned.push(() => tf.tidy(() => variable.assign(tf.tensor(value.data, spec.shape, 'float32'))));
      } else {
        const entry = state.get(target);
        if (!entry) throw new Error(`internal: no state entry ${target}`);
        planned.push(() => entry.write(value.data));
      }
    }
    if (problems.length > 0) {
      const shown = problems.slice(0, 8).join('; ');
      throw new WeightsFileError(
        source,
        `does not fit the I3D branch ${prefix}: ${shown}${problems.length > 8 ? `; … (${problems.length} problems)` : ''}. ` +
          'Pretrained weights need width 1 and a file written by tools/convert_i3d.py',
      );
    }
    adapted.push(adaptedHere);
  }
  const unknown = [...weights.tensors.keys()].filter((n) => !used.has(n) && !n.startsWith('logits.'));
  if (unknown.length > 0) {
    throw new WeightsFileError(source, `holds tensors an I3D branch does not have: ${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ', …' : ''}`);
  }
  // Assign only once every branch matched, so a bad file leaves the network untouched.
  for (const apply of planned) apply();
  return { loaded: planned.length, skipped: [...weights.tensors.keys()].filter((n) => !used.has(n)), adaptedFirstConv: adapted };
}

/** `loadI3dWeights` from a safetensors file. */
export function loadI3dWeightsFile(
  net: { branches?: readonly StagedBranch[]; branch?: StagedBranch },
  file: string,
  options: LoadI3dOptions = {},
): I3dLoadReport {
  return loadI3dWeights(net, readSafetensors(file), file, options);
}

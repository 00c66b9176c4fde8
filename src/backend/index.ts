import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { backendRequestSchema, type BackendRequest } from '../spec/trial.ts';
import { registerCpuKernelFixes } from './cpu-kernels.ts';
import { registerNativeKernels } from './native-ops.ts';
import { installedWasmKernels, registerWasmTrainingKernels } from './wasm-kernels.ts';

/**
 * Chooses and initialises the tfjs backend (DESIGN.md §6).
 *
 * `auto` tries, in order: `tensorflow-gpu` (@tensorflow/tfjs-node-gpu), `tensorflow` (@tensorflow/tfjs-node),
 * `wasm` (with our training kernels, src/backend/wasm-kernels.ts), `cpu` (pure JS, with the fixes of
 * src/backend/cpu-kernels.ts). The native packages are optional
 * dependencies: they are imported dynamically and used only if they load and pass a smoke op.
 * A forced backend that cannot be used throws a `BackendUnavailableError` saying why and what to do.
 *
 * Environment: `MMSWEEP_BACKEND=<tensorflow-gpu|tensorflow|wasm|cpu|auto>` replaces a request of `auto`
 * (an explicit request wins), e.g. to pin a whole sweep's workers to one backend.
 */

export type BackendName = Exclude<BackendRequest, 'auto'>;

export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  /** Why the backend was not used (absent when it was). */
  reason?: string;
}

export interface BackendInfo {
  name: BackendName;
  /** Versions of the pieces that compute: tfjs, plus the backend package (and libtensorflow when native). */
  version: string;
  /** What runs the arithmetic, e.g. "wasm simd, 1 thread on Intel Xeon …". */
  device: string;
  /** Every backend tried, in order, up to and including the chosen one. */
  attempts: BackendAttempt[];
}

export const BACKEND_ENV_VAR = 'MMSWEEP_BACKEND';

/** Preference order of `auto`. */
export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export class BackendUnavailableError extends Error {
  constructor(
    readonly backend: BackendName,
    readonly reason: string,
  ) {
    super(`backend '${backend}' is unavailable: ${reason}${FALLBACK_HINT[backend]}`);
    this.name = 'BackendUnavailableError';
  }
}

/** What to do when a forced backend fails (the native ones carry their install hint in the reason). */
const FALLBACK_HINT: Record<BackendName, string> = {
  'tensorflow-gpu': '',
  tensorflow: '',
  wasm: ' — reinstall dependencies (`npm ci`; the wasm binaries ship inside @tensorflow/tfjs-backend-wasm) or use --backend cpu',
  cpu: ' — reinstall dependencies (`npm ci`)',
};

/** tfjs registers both native packages under this engine name. */
const TFJS_NAME: Record<BackendName, string> = {
  'tensorflow-gpu': 'tensorflow',
  tensorflow: 'tensorflow',
  wasm: 'wasm',
  cpu: 'cpu',
};

const NATIVE_PACKAGE = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
} as const;

const INSTALL_HINT: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  tensorflow:
    'its own install script downloads libtensorflow from storage.googleapis.com, which fails on machines that reach ' +
    'only the package registries. Run `npm run setup:native` (builds it against the libtensorflow of PyPI\'s ' +
    'tensorflow-cpu wheel), or `npm install @tensorflow/tfjs-node@4.22.0` where that download works.',
  'tensorflow-gpu':
    'it needs an NVIDIA GPU with CUDA 11.2 and cuDNN 8.1, and its install script downloads the GPU build of ' +
    'libtensorflow 2.9.1 from storage.googleapis.com. On such a machine: `npm install @tensorflow/tfjs-node-gpu@4.22.0` ' +
    '(or use --backend tensorflow / wasm).',
};

function cpuModel(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model?.trim() ?? 'unknown CPU'} (${cpus.length} cores)`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

/** A tiny computation whose answer we know: catches backends that load but compute garbage or throw. */
function smokeTest(): void {
  const result = tf.tidy(() => {
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
    const w = tf.tensor4d([1, 0, 0, -1], [2, 2, 1, 1]);
    return tf.conv2d(x, w, 1, 'valid').dataSync();
  });
  const expected = [-4, -4, -4, -4];
  if (result.length !== 4 || result.some((v, i) => Math.abs(v - expected[i]!) > 1e-5)) {
    throw new Error(`smoke test computed ${Array.from(result).join(',')} instead of ${expected.join(',')}`);
  }
}

interface Prepared {
  version: string;
  device: string;
}

async function prepareNative(name: 'tensorflow-gpu' | 'tensorflow'): Promise<Prepared> {
  const pkg = NATIVE_PACKAGE[name];
  let loaded: { version?: Record<string, string> };
  // libtensorflow logs informational banners (oneDNN, CPU features) to stderr on load; keep warnings and errors.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  // TensorFlow's oneDNN kernels (convolutions and their gradients ≈ 2× faster here than the Eigen ones the binary
  // was compiled with, AVX only) are on by default only on CPUs with AVX-512 VNNI/BF16 or AMX: turn them on
  // everywhere (issue 14). TensorFlow reads the variable when it first runs an op; `=0` in the environment wins.
  process.env.TF_ENABLE_ONEDNN_OPTS ??= '1';
  try {
    loaded = (await import(pkg)) as typeof loaded;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(`${pkg} is not installed: ${INSTALL_HINT[name]}`);
    }
    throw new Error(`${pkg} is installed but failed to load (${errorText(error)}); ${INSTALL_HINT[name]}`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but tfjs could not start its backend`);
  registerNativeKernels();
  const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
  const device = name === 'tensorflow-gpu' ? 'GPU via libtensorflow (CUDA)' : `libtensorflow on ${cpuModel()}`;
  const nodeVersion = loaded.version?.['tfjs-node'] ?? (tf.version as Record<string, string>)['tfjs-node'] ?? 'unknown';
  return {
    version: `tfjs ${tf.version.tfjs}, tfjs-node ${nodeVersion}, libtensorflow ${binding?.TF_Version ?? 'unknown'}`,
    device,
  };
}

async function prepareWasm(): Promise<Prepared> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  registerWasmTrainingKernels();
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs could not initialise the wasm backend');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = wasm.getThreadsCount();
  return {
    version: `tfjs ${tf.version.tfjs}, tfjs-backend-wasm ${wasm.version_wasm}`,
    device: `wasm${simd ? ' simd' : ''}, ${threads} thread${threads === 1 ? '' : 's'} on ${cpuModel()}; training kernels: ${installedWasmKernels().join(', ')}`,
  };
}

async function prepareCpu(): Promise<Prepared> {
  await import('@tensorflow/tfjs-backend-cpu');
  registerCpuKernelFixes();
  if (!(await tf.setBackend('cpu'))) throw new Error('tfjs could not initialise the cpu backend');
  // The cpu backend prints an advert for tfjs-node on first use; the choice is ours and recorded, so skip it.
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  return { version: `tfjs ${tf.version.tfjs}, tfjs-backend-cpu ${tf.version.tfjs}`, device: `pure JavaScript, 1 thread on ${cpuModel()}` };
}

async function tryBackend(name: BackendName): Promise<Prepared> {
  const prepared =
    name === 'wasm' ? await prepareWasm() : name === 'cpu' ? await prepareCpu() : await prepareNative(name);
  try {
    smokeTest();
  } catch (error) {
    throw new Error(`it started but failed the smoke test: ${errorText(error)}`);
  }
  return prepared;
}

/** What a request resolves to once `MMSWEEP_BACKEND` is applied to `auto`. */
export function effectiveRequest(request: BackendRequest, env: NodeJS.ProcessEnv = process.env): BackendRequest {
  if (request !== 'auto') return request;
  const fromEnv = env[BACKEND_ENV_VAR]?.trim();
  if (!fromEnv) return 'auto';
  const parsed = backendRequestSchema.safeParse(fromEnv);
  if (!parsed.success) {
    throw new Error(
      `${BACKEND_ENV_VAR}='${fromEnv}' is not a backend; use one of ${backendRequestSchema.options.join(', ')} or unset it`,
    );
  }
  return parsed.data;
}

let current: { request: BackendRequest; info: BackendInfo } | undefined;
let pending: { request: BackendRequest; promise: Promise<BackendInfo> } | undefined;

/**
 * Initialise the backend for `request` and make it tfjs's active backend. Calling it again with the same
 * (effective) request returns the recorded BackendInfo without re-probing.
 */
export async function initBackend(request: BackendRequest = 'auto'): Promise<BackendInfo> {
  const wanted = effectiveRequest(request);
  if (current?.request === wanted && tf.getBackend() === TFJS_NAME[current.info.name]) return current.info;
  if (pending?.request === wanted) return pending.promise;
  const promise = chooseBackend(wanted).finally(() => {
    if (pending?.promise === promise) pending = undefined;
  });
  pending = { request: wanted, promise };
  const info = await promise;
  current = { request: wanted, info };
  return info;
}

async function chooseBackend(wanted: BackendRequest): Promise<BackendInfo> {
  const candidates = wanted === 'auto' ? BACKEND_ORDER : [wanted];
  const attempts: BackendAttempt[] = [];
  for (const name of candidates) {
    try {
      const prepared = await tryBackend(name);
      attempts.push({ name, ok: true });
      return { name, ...prepared, attempts };
    } catch (error) {
      attempts.push({ name, ok: false, reason: errorText(error) });
      if (wanted !== 'auto') throw new BackendUnavailableError(name, errorText(error));
    }
  }
  // Unreachable in practice: the pure-JS cpu backend always loads.
  throw new Error(`no tfjs backend could be started: ${attempts.map((a) => `${a.name}: ${a.reason}`).join('; ')}`);
}

/** The backend chosen by the last `initBackend`, for recording with results; throws if none was chosen. */
export function currentBackend(): BackendInfo {
  if (!current) throw new Error('no backend initialised yet: call initBackend(request) first');
  return current.info;
}

export interface BackendReport {
  /** The request after `MMSWEEP_BACKEND`. */
  request: BackendRequest;
  envOverride?: string;
  /** The backend `initBackend(request)` chose. */
  chosen: BackendInfo;
  /** Every backend probed on its own (not only those `auto` reached), with why it is unusable. */
  backends: BackendAttempt[];
  tfjsVersion: string;
  nodeVersion: string;
  platform: string;
  cpu: string;
  cores: number;
}

/**
 * For `mmsweep doctor`: probe every backend, then leave the one `initBackend(request)` picks active.
 */
export async function describeBackends(request: BackendRequest = 'auto'): Promise<BackendReport> {
  const backends: BackendAttempt[] = [];
  for (const name of BACKEND_ORDER) {
    try {
      await tryBackend(name);
      backends.push({ name, ok: true });
    } catch (error) {
      backends.push({ name, ok: false, reason: errorText(error) });
    }
  }
  current = undefined;
  const chosen = await initBackend(request);
  const envValue = process.env[BACKEND_ENV_VAR]?.trim();
  return {
    request: effectiveRequest(request),
    ...(request === 'auto' && envValue ? { envOverride: envValue } : {}),
    chosen,
    backends,
    tfjsVersion: tf.version.tfjs,
    nodeVersion: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
    cores: os.cpus().length,
  };
}

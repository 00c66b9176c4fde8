import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { GpuInfo } from '../spec/gpu.ts';
import { backendRequestSchema, type BackendRequest } from '../spec/trial.ts';
import { registerCpuKernelFixes } from './cpu-kernels.ts';
import { registerGradientFixes } from './gradients.ts';
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
 * `tensorflow-gpu` counts only when TensorFlow actually computes on a GPU: a tfjs-node-gpu build is probed in a
 * child process first (src/backend/gpu.ts), and when it would run on the CPU `auto` moves on to `tensorflow` and
 * says so on stderr, with the reason (no driver, which CUDA library failed to load).
 *
 * Environment: `MMSWEEP_BACKEND=<tensorflow-gpu|tensorflow|wasm|cpu|auto>` replaces a request of `auto`
 * (an explicit request wins), e.g. to pin a whole sweep's workers to one backend. `MMSWEEP_TFJS_NODE_GPU=<dir>`
 * uses the tfjs-node-gpu build in <dir> instead of node_modules' (the tests' stand-in builds); its files must
 * resolve this checkout's `@tensorflow/tfjs` (a tree of symlinks into node_modules does).
 */

export type BackendName = Exclude<BackendRequest, 'auto'>;

export interface BackendAttempt {
  name: BackendName;
  ok: boolean;
  /** Why the backend was not used (absent when it was). */
  reason?: string;
  /** Set for a tensorflow-gpu build that loads but would compute on the CPU (auto then falls back, saying so). */
  fallback?: boolean;
}

export interface BackendInfo {
  name: BackendName;
  /** Versions of the pieces that compute: tfjs, plus the backend package (and libtensorflow when native). */
  version: string;
  /** What runs the arithmetic, e.g. "wasm simd, 1 thread on Intel Xeon …". */
  device: string;
  /** Every backend tried, in order, up to and including the chosen one. */
  attempts: BackendAttempt[];
  /** The GPU computing (tensorflow-gpu only; null otherwise). */
  gpu: GpuInfo | null;
}

export const BACKEND_ENV_VAR = 'MMSWEEP_BACKEND';
export const GPU_PACKAGE_ENV_VAR = 'MMSWEEP_TFJS_NODE_GPU';

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
    'build it with `mmsweep setup native --gpu` (TensorFlow 2.20 + CUDA 12 libraries from PyPI; needs only the ' +
    'NVIDIA driver), or where storage.googleapis.com is reachable and CUDA 11.2 + cuDNN 8.1 are installed: ' +
    '`npm install @tensorflow/tfjs-node-gpu@4.22.0` (or use --backend tensorflow / wasm).',
};

/** The directory of the tfjs-node-gpu package to use (null: not installed). */
function gpuPackageDir(): string | null {
  const fromEnv = process.env[GPU_PACKAGE_ENV_VAR]?.trim();
  if (fromEnv) return path.resolve(fromEnv);
  try {
    // Through the ES module resolver, as `import()` of the package would (and as test/fixtures/hide-native.mjs hides
    // it), then up from its main file to the package's own directory.
    let dir = path.dirname(fileURLToPath(import.meta.resolve('@tensorflow/tfjs-node-gpu')));
    while (!existsSync(path.join(dir, 'package.json')) || path.basename(dir) !== 'tfjs-node-gpu') {
      const parent = path.dirname(dir);
      if (parent === dir) return null;
      dir = parent;
    }
    return dir;
  } catch {
    return null;
  }
}

/** A GPU build that loads but would compute on the CPU: `auto` falls back, and says so. */
class GpuNotUsedError extends Error {
  override name = 'GpuNotUsedError';
}

/** Whether a built tfjs-node-gpu is installed (what `auto` tries first); reads the disk only, loads nothing. */
export async function gpuBuildInstalled(): Promise<boolean> {
  const { gpuPackageState } = await import('./gpu.ts');
  return gpuPackageState(gpuPackageDir()).kind === 'built';
}

/** Which native package this process has loaded: two libtensorflow builds must not share one process. */
let nativeLoaded: 'tensorflow-gpu' | 'tensorflow' | undefined;

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
  gpu: GpuInfo | null;
}

/** The probe's verdict per build directory and CUDA_VISIBLE_DEVICES: a probe loads 1 GB of TensorFlow. */
const gpuVerdicts = new Map<string, { dir: string; gpu: GpuInfo } | GpuNotUsedError>();

/** Probes the GPU build in a child process; returns the GPU it uses or throws why it uses none. */
async function checkGpuBuild(): Promise<{ dir: string; gpu: GpuInfo }> {
  const gpuModule = await import('./gpu.ts');
  const dir = gpuPackageDir();
  const key = `${dir}\0${process.env.CUDA_VISIBLE_DEVICES ?? ''}`;
  const known = gpuVerdicts.get(key);
  if (known instanceof GpuNotUsedError) throw known;
  if (known) return known;
  const state = gpuModule.gpuPackageState(dir);
  if (state.kind === 'missing') {
    throw new Error(
      `${NATIVE_PACKAGE['tensorflow-gpu']} is not installed${dir && process.env[GPU_PACKAGE_ENV_VAR] ? ` in ${dir} (${GPU_PACKAGE_ENV_VAR})` : ''}: ${INSTALL_HINT['tensorflow-gpu']}`,
    );
  }
  if (state.kind === 'unbuilt') {
    throw new Error(`${NATIVE_PACKAGE['tensorflow-gpu']} is installed but not built (npm skipped its install script): ${INSTALL_HINT['tensorflow-gpu']}`);
  }
  const verdict = gpuModule.interpretGpuProbe(gpuModule.runGpuProbe(state.dir), {
    env: process.env,
    driver: gpuModule.nvidiaDriverVersion(),
    state,
  });
  const outcome = verdict.used ? { dir: state.dir, gpu: verdict.gpu } : new GpuNotUsedError(verdict.reason);
  gpuVerdicts.set(key, outcome);
  if (outcome instanceof GpuNotUsedError) throw outcome;
  return outcome;
}

async function prepareNative(name: 'tensorflow-gpu' | 'tensorflow'): Promise<Prepared> {
  const pkg = NATIVE_PACKAGE[name];
  // The GPU verdict first (a child process): it is the reason that matters even when the other package is loaded.
  const gpuCheck = name === 'tensorflow-gpu' ? await checkGpuBuild() : null;
  if (nativeLoaded && nativeLoaded !== name) {
    throw new Error(
      `not tried in this process: ${NATIVE_PACKAGE[nativeLoaded]} is already loaded here (one native TensorFlow per process)`,
    );
  }
  let loaded: { version?: Record<string, string> };
  // libtensorflow logs informational banners (oneDNN, CPU features) to stderr on load; keep warnings and errors.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  if (gpuCheck) Object.assign(process.env, (await import('./gpu.ts')).withGpuDefaults(process.env));
  // TensorFlow's oneDNN kernels (convolutions and their gradients ≈ 2× faster here than the Eigen ones the binary
  // was compiled with, AVX only) are on by default only on CPUs with AVX-512 VNNI/BF16 or AMX: turn them on
  // everywhere (issue 14). TensorFlow reads the variable when it first runs an op; `=0` in the environment wins.
  process.env.TF_ENABLE_ONEDNN_OPTS ??= '1';
  try {
    // The GPU package is loaded from the directory the probe checked (it may come from MMSWEEP_TFJS_NODE_GPU).
    loaded = gpuCheck
      ? (createRequire(import.meta.url)(gpuCheck.dir) as typeof loaded)
      : ((await import(pkg)) as typeof loaded);
    nativeLoaded = name;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new Error(`${pkg} is not installed: ${INSTALL_HINT[name]}`);
    }
    throw new Error(`${pkg} is installed but failed to load (${errorText(error)}); ${INSTALL_HINT[name]}`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but tfjs could not start its backend`);
  registerNativeKernels();
  const nodeBackend = tf.backend() as unknown as { binding?: { TF_Version?: string }; isUsingGpuDevice?: boolean };
  if (gpuCheck && nodeBackend.isUsingGpuDevice !== true) {
    // The probe saw a GPU but this process does not (e.g. the device is busy or was taken meanwhile).
    throw new GpuNotUsedError(`${pkg} used a GPU in the probe process but not in this one; run mmsweep doctor`);
  }
  const nodeVersion = loaded.version?.['tfjs-node'] ?? (tf.version as Record<string, string>)['tfjs-node'] ?? 'unknown';
  return {
    version: `tfjs ${tf.version.tfjs}, ${name === 'tensorflow-gpu' ? 'tfjs-node-gpu' : 'tfjs-node'} ${nodeVersion}, libtensorflow ${nodeBackend.binding?.TF_Version ?? 'unknown'}`,
    device: gpuCheck ? describeGpu(gpuCheck.gpu) : `libtensorflow on ${cpuModel()}`,
    gpu: gpuCheck?.gpu ?? null,
  };
}

/** e.g. "NVIDIA H100 80GB HBM3 (sm 9.0, CUDA_VISIBLE_DEVICES=1), driver 550.54.15, CUDA 12.5.82, cuDNN 9.3.0, TF32 on". */
export function describeGpu(gpu: GpuInfo): string {
  const where = [gpu.computeCapability ? `sm ${gpu.computeCapability}` : null, gpu.visibleDevices !== null ? `CUDA_VISIBLE_DEVICES=${gpu.visibleDevices}` : null]
    .filter(Boolean)
    .join(', ');
  return (
    `${gpu.model ?? 'NVIDIA GPU'}${where ? ` (${where})` : ''}, driver ${gpu.driver ?? 'unknown'}, CUDA ${gpu.cuda ?? 'unknown'}, ` +
    `cuDNN ${gpu.cudnn ?? 'unknown'}, TF32 ${gpu.tf32 ? 'on' : 'off (NVIDIA_TF32_OVERRIDE=0)'}`
  );
}

async function prepareWasm(): Promise<Prepared> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  registerWasmTrainingKernels();
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs could not initialise the wasm backend');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = wasm.getThreadsCount();
  return {
    gpu: null,
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
  return { version: `tfjs ${tf.version.tfjs}, tfjs-backend-cpu ${tf.version.tfjs}`, device: `pure JavaScript, 1 thread on ${cpuModel()}`, gpu: null };
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
/** Set while `describeBackends` runs: doctor reports the fallback in its own output. */
let quietFallback = false;
let pending: { request: BackendRequest; promise: Promise<BackendInfo> } | undefined;

/**
 * Initialise the backend for `request` and make it tfjs's active backend. Calling it again with the same
 * (effective) request returns the recorded BackendInfo without re-probing.
 */
export async function initBackend(request: BackendRequest = 'auto'): Promise<BackendInfo> {
  // Backend-independent (same values as tfjs's own gradients, fewer ops): installed whatever backend is chosen.
  registerGradientFixes();
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
      const gpuFallback = attempts.find((a) => a.name === 'tensorflow-gpu' && a.fallback);
      if (gpuFallback && !quietFallback) {
        // A GPU build that ends up on the CPU is worth a line on every run: it is rarely what the user meant.
        process.stderr.write(`mmsweep: not training on a GPU: ${gpuFallback.reason}\nmmsweep: using backend '${name}' instead (mmsweep doctor explains)\n`);
      }
      return { name, ...prepared, attempts };
    } catch (error) {
      attempts.push({ name, ok: false, reason: errorText(error), ...(error instanceof GpuNotUsedError ? { fallback: true } : {}) });
      if (wanted !== 'auto') throw new BackendUnavailableError(name, errorText(error));
    }
  }
  // Unreachable in practice: the pure-JS cpu backend always loads.
  throw new Error(`no tfjs backend could be started: ${attempts.map((a) => `${a.name}: ${a.reason}`).join('; ')}`);
}

/** Tensors alive in tfjs's engine; null before any backend was initialised in this process. */
export function liveTensorCount(): number | null {
  return current ? tf.memory().numTensors : null;
}

/** Whether this process computes on a GPU (TensorFlow then holds GPU memory until the process ends). */
export function onGpu(): boolean {
  return current?.info.name === 'tensorflow-gpu';
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
  /**
   * Set when a tfjs-node-gpu build is present but TensorFlow would compute on the CPU, so the request fell back:
   * why, and the variables that show TensorFlow's library loader log.
   */
  gpuFallback?: { reason: string; usedInstead: BackendName; loaderLog: string };
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
  quietFallback = true;
  let chosen: BackendInfo;
  try {
    chosen = await initBackend(request);
  } finally {
    quietFallback = false;
  }
  const envValue = process.env[BACKEND_ENV_VAR]?.trim();
  const fallback = chosen.attempts.find((a) => a.name === 'tensorflow-gpu' && a.fallback);
  const { TF_LOADER_LOG_HINT } = await import('./gpu.ts');
  return {
    request: effectiveRequest(request),
    ...(request === 'auto' && envValue ? { envOverride: envValue } : {}),
    chosen,
    ...(fallback ? { gpuFallback: { reason: fallback.reason ?? '', usedInstead: chosen.name, loaderLog: TF_LOADER_LOG_HINT } } : {}),
    backends,
    tfjsVersion: tf.version.tfjs,
    nodeVersion: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
    cores: os.cpus().length,
  };
}

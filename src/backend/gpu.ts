import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { GpuInfo } from '../spec/gpu.ts';

/**
 * Whether a tfjs-node-gpu build really computes on a GPU, and if not, why (DESIGN.md §6: a GPU backend counts
 * only when a GPU device is used). TensorFlow itself decides at start-up: it dlopens the driver (libcuda.so.1)
 * and seven CUDA libraries, and without any of them quietly runs on the CPU. So the build is probed in a child
 * process (PROBE_SOURCE) with TensorFlow's loader log switched on, and that log is read for the reason. Pure parts (`interpretGpuProbe`, `gpuInfoFromLog`, `missingCudaLibraries`) are tested on their own.
 */

/** The variables that make TensorFlow print its library loader log (which CUDA library failed to dlopen). */
export const TF_LOADER_LOG_ENV = { TF_CPP_MIN_LOG_LEVEL: '0', TF_CPP_VMODULE: 'dso_loader=1' } as const;
export const TF_LOADER_LOG_HINT = 'TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=dso_loader=1';

/**
 * The CUDA libraries TensorFlow 2.20 dlopens (all required, else "Cannot dlopen some GPU libraries" and CPU
 * only), and the deps/nvidia/<folder>/lib where `mmsweep setup native --gpu` puts them.
 */
export const CUDA_LIBRARIES: readonly { soname: string; folder: string }[] = [
  { soname: 'libcudart.so.12', folder: 'cuda_runtime' },
  { soname: 'libcublas.so.12', folder: 'cublas' },
  { soname: 'libcublasLt.so.12', folder: 'cublas' },
  { soname: 'libcufft.so.11', folder: 'cufft' },
  { soname: 'libcusolver.so.11', folder: 'cusolver' },
  { soname: 'libcusparse.so.12', folder: 'cusparse' },
  { soname: 'libcudnn.so.9', folder: 'cudnn' },
];

export const GPU_SETUP_COMMAND = 'mmsweep setup native --gpu';

/** What is on disk for the GPU package. */
export type GpuPackageState =
  | { kind: 'missing' }
  | { kind: 'unbuilt'; dir: string }
  /** `cuda12`: built by `mmsweep setup native --gpu` (CUDA libraries in deps/nvidia, versions in its stamp). */
  | { kind: 'built'; dir: string; cuda12: boolean; stamp: { cuda?: string; cudnn?: string } };

export function gpuPackageState(dir: string | null): GpuPackageState {
  if (!dir || !existsSync(path.join(dir, 'package.json'))) return { kind: 'missing' };
  const libDir = path.join(dir, 'lib');
  const built =
    existsSync(libDir) && readdirSync(libDir).some((d) => d.startsWith('napi-v') && existsSync(path.join(libDir, d, 'tfjs_binding.node')));
  if (!built) return { kind: 'unbuilt', dir };
  let stamp: { cuda?: string; cudnn?: string } = {};
  try {
    stamp = JSON.parse(readFileSync(path.join(dir, 'deps', '.mmsweep-native.json'), 'utf8')) as typeof stamp;
  } catch {
    // no stamp: the stock package (its install script downloaded libtensorflow 2.9.1 for CUDA 11.2)
  }
  return { kind: 'built', dir, cuda12: existsSync(path.join(dir, 'deps', 'nvidia')), stamp };
}

/** For a CUDA 12 build: the CUDA libraries missing from deps/nvidia (a broken or partial unpack). */
export function missingCudaLibraries(dir: string): string[] {
  return CUDA_LIBRARIES.filter(({ soname, folder }) => !existsSync(path.join(dir, 'deps', 'nvidia', folder, 'lib', soname))).map(
    ({ folder, soname }) => `deps/nvidia/${folder}/lib/${soname}`,
  );
}

export interface GpuProbeOutput {
  /** Exit status of the probe process (null: killed, e.g. by the timeout). */
  status: number | null;
  stdout: string;
  /** TensorFlow's log at level 0 with the loader's messages. */
  stderr: string;
  /** Set when the process could not be started or timed out. */
  error?: string;
}

export type GpuVerdict = { used: true; gpu: GpuInfo } | { used: false; reason: string };

/**
 * The child's program, given to `node -e` (a source string, not a file: the trial runner runs as a bundle, where
 * files beside this module are not). It loads the build in argv[1], runs one convolution and prints one JSON line:
 * whether TensorFlow ran it on a GPU. A child keeps a build that cannot use a GPU out of the parent (two native
 * TensorFlow packages in one process would register every kernel twice); its stderr is TensorFlow's log.
 */
const PROBE_SOURCE = `(async () => {
  const tf = require(process.argv[1]);
  await tf.setBackend('tensorflow');
  const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
  const w = tf.tensor4d([1, 0, 0, -1], [2, 2, 1, 1]);
  const conv = Array.from(tf.conv2d(x, w, 1, 'valid').dataSync());
  const backend = tf.backend();
  process.stdout.write(JSON.stringify({ usingGpu: backend.isUsingGpuDevice === true, conv, tfVersion: backend.binding.TF_Version }) + '\\n');
})().catch((error) => { console.error(error); process.exit(1); });`;
/** First use of a GPU can JIT-compile PTX for a GPU newer than the build's kernels: minutes, once per machine. */
const PROBE_TIMEOUT_MS = 10 * 60_000;

/** Runs the probe child on the build in `dir`, with the caller's environment plus TF's loader log. */
export function runGpuProbe(dir: string, env: NodeJS.ProcessEnv = process.env): GpuProbeOutput {
  const result = spawnSync(process.execPath, ['-e', PROBE_SOURCE, dir], {
    env: { ...withGpuDefaults(env), ...TF_LOADER_LOG_ENV },
    encoding: 'utf8',
    timeout: PROBE_TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  // Asked for TensorFlow's loader log (the hint doctor gives): show the probe's.
  if (env.TF_CPP_VMODULE || env.MMSWEEP_DEBUG) process.stderr.write(result.stderr ?? '');
  return {
    status: result.status,
    stdout: result.stdout ?? '',
    stderr: result.stderr ?? '',
    ...(result.error ? { error: result.error.message } : {}),
  };
}

/**
 * The environment a GPU process should run with: TensorFlow otherwise reserves nearly all GPU memory at start-up,
 * which forbids several trials sharing one GPU (`--gpus 0,0`). An explicit setting wins.
 */
export function withGpuDefaults(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { TF_FORCE_GPU_ALLOW_GROWTH: 'true', ...env };
}

interface LoaderFailure {
  library: string;
  dlerror: string;
}

/** "Could not load dynamic library 'libcudnn.so.9'; dlerror: …" lines of TF's dso_loader. */
export function loaderFailures(log: string): LoaderFailure[] {
  const failures: LoaderFailure[] = [];
  for (const match of log.matchAll(/Could not load dynamic library '([^']+)'; dlerror: ([^\n]*)/g)) {
    if (!failures.some((f) => f.library === match[1])) failures.push({ library: match[1]!, dlerror: match[2]!.trim() });
  }
  return failures;
}

/** What TensorFlow's log says about the GPU it used. */
export function gpuInfoFromLog(log: string): { model: string | null; computeCapability: string | null; cudnn: string | null } {
  // "Created device /job:localhost/replica:0/task:0/device:GPU:0 with 79078 MB memory:  -> device: 0, name: NVIDIA
  //  H100 80GB HBM3, pci bus id: 0000:19:00.0, compute capability: 9.0"
  const device = /device:GPU:\d+ with .*?name: (.+?), pci bus id: [^,]+, compute capability: (\d+\.\d+)/.exec(log);
  // "Loaded cuDNN version 90300" (major·10000 + minor·100 + patch since cuDNN 9)
  const cudnn = /Loaded cuDNN version (\d+)/.exec(log);
  let cudnnVersion: string | null = null;
  if (cudnn) {
    const n = Number(cudnn[1]);
    cudnnVersion = n >= 90000 ? `${Math.floor(n / 10000)}.${Math.floor(n / 100) % 100}.${n % 100}` : `${Math.floor(n / 1000)}.${Math.floor(n / 100) % 10}.${n % 100}`;
  }
  return { model: device?.[1] ?? null, computeCapability: device?.[2] ?? null, cudnn: cudnnVersion };
}

/** The NVIDIA kernel driver's version, from /proc (null without a driver). */
export function nvidiaDriverVersion(procFile = '/proc/driver/nvidia/version'): string | null {
  try {
    return /Kernel Module\s+(\d+(?:\.\d+)+)/.exec(readFileSync(procFile, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

export interface GpuContext {
  env: NodeJS.ProcessEnv;
  /** From `nvidiaDriverVersion()`. */
  driver: string | null;
  state: Extract<GpuPackageState, { kind: 'built' }>;
}

function parseProbeLine(stdout: string): { usingGpu?: unknown; conv?: unknown } | null {
  try {
    const value: unknown = JSON.parse(stdout.trim().split('\n').at(-1) ?? '');
    return value && typeof value === 'object' ? (value as { usingGpu?: unknown; conv?: unknown }) : null;
  } catch {
    return null;
  }
}

/** Turns the probe's output into "a GPU is used (this one)" or the reason none is, naming the fix. */
export function interpretGpuProbe(probe: GpuProbeOutput, context: GpuContext): GpuVerdict {
  const { env, driver, state } = context;
  const log = probe.stderr;
  const logHint = `(TensorFlow's loader log: ${TF_LOADER_LOG_HINT} mmsweep doctor)`;
  const parsed = parseProbeLine(probe.stdout);
  if (probe.error || probe.status !== 0 || !parsed) {
    const lastLines = log.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
    return {
      used: false,
      reason: `@tensorflow/tfjs-node-gpu failed to load or run in a probe process (${probe.error ?? `exit ${probe.status}`}${lastLines ? `: ${lastLines}` : ''}); rebuild it: ${GPU_SETUP_COMMAND} --force`,
    };
  }
  if (JSON.stringify(parsed.conv) !== JSON.stringify([-4, -4, -4, -4])) {
    return { used: false, reason: `@tensorflow/tfjs-node-gpu computed ${JSON.stringify(parsed.conv)} instead of [-4,-4,-4,-4] in its smoke test` };
  }
  if (parsed.usingGpu === true) {
    const fromLog = gpuInfoFromLog(log);
    return {
      used: true,
      gpu: {
        model: fromLog.model,
        computeCapability: fromLog.computeCapability,
        driver,
        cuda: state.stamp.cuda ?? null,
        cudnn: fromLog.cudnn ?? state.stamp.cudnn ?? null,
        visibleDevices: env.CUDA_VISIBLE_DEVICES ?? null,
        tf32: env.NVIDIA_TF32_OVERRIDE?.trim() !== '0',
      },
    };
  }

  const failures = loaderFailures(log);
  const driverFailure = failures.find((f) => f.library.startsWith('libcuda.so'));
  const prefix = '@tensorflow/tfjs-node-gpu is built but TensorFlow used no GPU: ';
  if (driverFailure || (!driver && !failures.length && /cuInit/.test(log))) {
    return {
      used: false,
      reason:
        prefix +
        `no NVIDIA driver (libcuda.so.1 ${driverFailure ? `failed to load: ${driverFailure.dlerror}` : 'not loaded'}` +
        `${driver ? '' : '; /proc/driver/nvidia/version is absent'}). Install the NVIDIA driver (≥ 525 for CUDA 12; ` +
        `in containers: the NVIDIA Container Toolkit and --gpus), or train on the CPU with --backend tensorflow.`,
    };
  }
  if (failures.length > 0) {
    const missingOnDisk = state.cuda12 ? missingCudaLibraries(state.dir) : [];
    const fix = state.cuda12
      ? `rebuild: ${GPU_SETUP_COMMAND} --force${missingOnDisk.length ? ` (missing on disk: ${missingOnDisk.join(', ')})` : ''}`
      : `install CUDA 11.2 and cuDNN 8.1 where the dynamic loader finds them (LD_LIBRARY_PATH), or use the CUDA 12 build: ${GPU_SETUP_COMMAND}`;
    return {
      used: false,
      reason: `${prefix}CUDA libraries failed to dlopen: ${failures.map((f) => `${f.library} (${f.dlerror})`).join('; ')}; ${fix}`,
    };
  }
  if (/Cannot dlopen some GPU libraries/.test(log)) {
    return { used: false, reason: `${prefix}TensorFlow could not dlopen some GPU libraries ${logHint}` };
  }
  const cuInit = /failed call to cuInit: ([^\n]*)/.exec(log);
  if (cuInit) {
    const noDevice = /NO_DEVICE|no CUDA-capable device|\(100\)/.test(cuInit[1]!);
    return {
      used: false,
      reason:
        prefix +
        (noDevice
          ? `the NVIDIA driver ${driver ?? ''} reports no CUDA device${env.CUDA_VISIBLE_DEVICES !== undefined ? ` (CUDA_VISIBLE_DEVICES='${env.CUDA_VISIBLE_DEVICES}')` : ''}: check nvidia-smi and the GPU ids given`
          : `cuInit failed: ${cuInit[1]!.trim()} (driver ${driver ?? 'unknown'}; check nvidia-smi)`),
    };
  }
  const ignored = /Ignoring visible gpu device \(([^)]*)\) with [^\n]*/.exec(log);
  if (ignored) return { used: false, reason: `${prefix}${ignored[0].trim()}` };
  if (!/cuda/i.test(log)) {
    // A CUDA build logs its driver probing at level 0; silence means this libtensorflow never tried.
    return { used: false, reason: `${prefix}its libtensorflow shows no sign of CUDA support (a CPU build?); rebuild: ${GPU_SETUP_COMMAND} --force` };
  }
  return { used: false, reason: `${prefix}no GPU device was created ${logHint}` };
}

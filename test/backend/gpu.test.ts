import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  gpuInfoFromLog,
  gpuPackageState,
  interpretGpuProbe,
  loaderFailures,
  nvidiaDriverVersion,
  type GpuContext,
} from '../../src/backend/gpu.ts';

/**
 * The tensorflow-gpu verdict: pure parts on TensorFlow log text, and end to end (doctor, the fallback warning, a
 * forced request) on a GPU build that cannot use a GPU on this machine: the real `mmsweep setup native --gpu`
 * build where it exists, and always a stand-in made of the CPU build (a libtensorflow without CUDA).
 */

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const BIN = path.join(ROOT, 'bin', 'mmsweep.js');
const temp = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-gpu-test-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** A built package directory (binding present), with or without the CUDA 12 layout. */
function fakeBuild(name: string, options: { cuda12: boolean; libraries?: string[] }): GpuContext['state'] {
  const dir = path.join(temp, name);
  mkdirSync(path.join(dir, 'lib', 'napi-v8'), { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), '{}');
  writeFileSync(path.join(dir, 'lib', 'napi-v8', 'tfjs_binding.node'), '');
  for (const lib of options.libraries ?? []) {
    mkdirSync(path.dirname(path.join(dir, 'deps', 'nvidia', lib)), { recursive: true });
    writeFileSync(path.join(dir, 'deps', 'nvidia', lib), '');
  }
  if (options.cuda12) mkdirSync(path.join(dir, 'deps', 'nvidia'), { recursive: true });
  const state = gpuPackageState(dir);
  if (state.kind !== 'built') throw new Error(`fake build ${dir} is ${state.kind}`);
  return state;
}

const OK_STDOUT = '{"usingGpu":false,"conv":[-4,-4,-4,-4],"tfVersion":"2.20.0"}\n';

// Captured on this project's CPU machine from the real `setup native --gpu` build (no driver installed).
const NO_DRIVER_LOG = `2026-12-02 11:14:27.713365: I external/local_xla/xla/tsl/platform/default/dso_loader.cc:76] Successfully opened dynamic library libcudart.so.12
2026-12-02 11:14:28.039554: I external/local_xla/xla/tsl/platform/default/dso_loader.cc:87] Could not load dynamic library 'libcuda.so.1'; dlerror: libcuda.so.1: cannot open shared object file: No such file or directory
2026-12-02 11:14:28.039580: E external/local_xla/xla/stream_executor/cuda/cuda_platform.cc:51] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
`;

describe('interpretGpuProbe', () => {
  it('no driver: names libcuda.so.1 and its dlerror, and the fix', () => {
    const state = fakeBuild('no-driver', { cuda12: true });
    const verdict = interpretGpuProbe({ status: 0, stdout: OK_STDOUT, stderr: NO_DRIVER_LOG }, { env: {}, driver: null, state });
    expect(verdict.used).toBe(false);
    if (verdict.used) return;
    expect(verdict.reason).toContain('no NVIDIA driver');
    expect(verdict.reason).toContain('libcuda.so.1 failed to load: libcuda.so.1: cannot open shared object file: No such file or directory');
    expect(verdict.reason).toContain('/proc/driver/nvidia/version is absent');
  });

  it('driver present, a CUDA library missing: names the library, its dlerror, the file missing on disk and the rebuild', () => {
    const present = ['cuda_runtime/lib/libcudart.so.12', 'cublas/lib/libcublas.so.12', 'cublas/lib/libcublasLt.so.12', 'cufft/lib/libcufft.so.11', 'cusolver/lib/libcusolver.so.11', 'cusparse/lib/libcusparse.so.12'];
    const state = fakeBuild('no-cudnn', { cuda12: true, libraries: present });
    // The lines TF 2.20 prints with TF_CPP_VMODULE=dso_loader=1 (format as in NO_DRIVER_LOG) and gpu_device.cc's warning.
    const log =
      "I dso_loader.cc:87] Could not load dynamic library 'libcudnn.so.9'; dlerror: libcudnn.so.9: cannot open shared object file: No such file or directory\n" +
      'W gpu_device.cc:2342] Cannot dlopen some GPU libraries. Please make sure the missing libraries mentioned above are installed properly if you would like to use GPU.\n';
    const verdict = interpretGpuProbe({ status: 0, stdout: OK_STDOUT, stderr: log }, { env: {}, driver: '550.54.15', state });
    expect(verdict).toEqual({
      used: false,
      reason:
        '@tensorflow/tfjs-node-gpu is built but TensorFlow used no GPU: CUDA libraries failed to dlopen: libcudnn.so.9 ' +
        '(libcudnn.so.9: cannot open shared object file: No such file or directory); rebuild: mmsweep setup native --gpu --force ' +
        '(missing on disk: deps/nvidia/cudnn/lib/libcudnn.so.9)',
    });
  });

  it('the stock CUDA 11.2 build missing a library points at LD_LIBRARY_PATH or the CUDA 12 build', () => {
    const state = fakeBuild('stock', { cuda12: false });
    const log = "Could not load dynamic library 'libcudnn.so.8'; dlerror: libcudnn.so.8: cannot open shared object file\n";
    const verdict = interpretGpuProbe({ status: 0, stdout: OK_STDOUT, stderr: log }, { env: {}, driver: '470.82.01', state });
    expect(verdict.used).toBe(false);
    if (!verdict.used) expect(verdict.reason).toMatch(/libcudnn\.so\.8 .*LD_LIBRARY_PATH.*mmsweep setup native --gpu$/);
  });

  it('driver present but no device visible: says so with CUDA_VISIBLE_DEVICES', () => {
    const state = fakeBuild('no-device', { cuda12: true });
    const log = 'E cuda_platform.cc:51] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected\n';
    const verdict = interpretGpuProbe({ status: 0, stdout: OK_STDOUT, stderr: log }, { env: { CUDA_VISIBLE_DEVICES: '7' }, driver: '550.54.15', state });
    expect(verdict.used).toBe(false);
    if (!verdict.used) expect(verdict.reason).toContain("the NVIDIA driver 550.54.15 reports no CUDA device (CUDA_VISIBLE_DEVICES='7')");
  });

  it('a probe that crashes or computes garbage is not a GPU', () => {
    const state = fakeBuild('crash', { cuda12: true });
    const crashed = interpretGpuProbe({ status: 1, stdout: '', stderr: 'Error: libtensorflow_cc.so.2: cannot open shared object file\n' }, { env: {}, driver: null, state });
    expect(crashed.used).toBe(false);
    if (!crashed.used) expect(crashed.reason).toMatch(/failed to load or run in a probe process \(exit 1: Error: libtensorflow_cc\.so\.2: cannot open.*--gpu --force$/);
    const wrong = interpretGpuProbe({ status: 0, stdout: '{"usingGpu":true,"conv":[0,0,0,0]}', stderr: '' }, { env: {}, driver: null, state });
    expect(wrong.used).toBe(false);
  });

  it('a GPU in use: model, compute capability, driver, CUDA, cuDNN, visible devices and TF32 recorded', () => {
    const state = fakeBuild('used', { cuda12: true });
    state.stamp = { cuda: '12.5.82', cudnn: '9.3.0.75' };
    const log =
      'I gpu_device.cc:2019] Created device /job:localhost/replica:0/task:0/device:GPU:0 with 79078 MB memory:  -> device: 0, ' +
      'name: NVIDIA H100 80GB HBM3, pci bus id: 0000:19:00.0, compute capability: 9.0\n' +
      'I cuda_dnn.cc:529] Loaded cuDNN version 90300\n';
    const verdict = interpretGpuProbe(
      { status: 0, stdout: '{"usingGpu":true,"conv":[-4,-4,-4,-4],"tfVersion":"2.20.0"}', stderr: log },
      { env: { CUDA_VISIBLE_DEVICES: '1', NVIDIA_TF32_OVERRIDE: '0' }, driver: '550.54.15', state },
    );
    expect(verdict).toEqual({
      used: true,
      gpu: { model: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', driver: '550.54.15', cuda: '12.5.82', cudnn: '9.3.0', visibleDevices: '1', tf32: false },
    });
  });
});

describe('log and driver parsing', () => {
  it('decodes cuDNN version numbers of both schemes (9: M·10000+m·100+p; 8: M·1000+m·100+p)', () => {
    expect(gpuInfoFromLog('Loaded cuDNN version 90300').cudnn).toBe('9.3.0');
    expect(gpuInfoFromLog('Loaded cuDNN version 91002').cudnn).toBe('9.10.2');
    expect(gpuInfoFromLog('Loaded cuDNN version 8100').cudnn).toBe('8.1.0');
    expect(gpuInfoFromLog('nothing here')).toEqual({ model: null, computeCapability: null, cudnn: null });
  });

  it('collects each failed library once', () => {
    const log = "Could not load dynamic library 'a.so'; dlerror: x\nCould not load dynamic library 'a.so'; dlerror: x\nCould not load dynamic library 'b.so'; dlerror: y";
    expect(loaderFailures(log)).toEqual([{ library: 'a.so', dlerror: 'x' }, { library: 'b.so', dlerror: 'y' }]);
  });

  it('reads the driver version from /proc/driver/nvidia/version, null without a driver', () => {
    const file = path.join(temp, 'nvidia-version');
    writeFileSync(file, 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.2.0\n');
    expect(nvidiaDriverVersion(file)).toBe('550.54.15');
    expect(nvidiaDriverVersion(path.join(temp, 'absent'))).toBeNull();
  });

  it('tells a missing package from an unbuilt one (npm skipped its install script) from a build', () => {
    expect(gpuPackageState(null)).toEqual({ kind: 'missing' });
    expect(gpuPackageState(path.join(temp, 'nowhere'))).toEqual({ kind: 'missing' });
    const unbuilt = path.join(temp, 'unbuilt');
    mkdirSync(unbuilt);
    writeFileSync(path.join(unbuilt, 'package.json'), '{}');
    expect(gpuPackageState(unbuilt)).toEqual({ kind: 'unbuilt', dir: unbuilt });
    expect(fakeBuild('built', { cuda12: true })).toMatchObject({ kind: 'built', cuda12: true, stamp: {} });
  });
});

// End to end on GPU builds that load but cannot use a GPU here.
const cpuBuild = path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-node');
const realGpuBuild = path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-node-gpu');
const builds: { name: string; dir: () => string; reason: RegExp }[] = [];
if (existsSync(path.join(cpuBuild, 'lib', 'napi-v8', 'tfjs_binding.node'))) {
  builds.push({
    name: 'a stand-in GPU build without CUDA (the CPU build under the GPU package name)',
    dir: () => {
      const dir = path.join(temp, 'stand-in', 'tfjs-node-gpu');
      mkdirSync(dir, { recursive: true });
      for (const entry of ['package.json', 'dist', 'lib', 'deps']) symlinkSync(path.join(cpuBuild, entry), path.join(dir, entry));
      return dir;
    },
    reason: /no sign of CUDA support \(a CPU build\?\); rebuild: mmsweep setup native --gpu --force/,
  });
}
if (gpuPackageState(realGpuBuild).kind === 'built' && !existsSync('/proc/driver/nvidia/version')) {
  builds.push({ name: 'the real CUDA 12 build on a machine without a driver', dir: () => realGpuBuild, reason: /no NVIDIA driver \(libcuda\.so\.1 failed to load: / });
}

describe.skipIf(builds.length === 0)('a GPU build that cannot use a GPU (needs npm run setup:native)', () => {
  for (const build of builds) {
    it(`${build.name}: doctor says why and auto falls back to tensorflow, saying so`, async () => {
      const env = { ...process.env, MMSWEEP_BACKEND: '', MMSWEEP_TFJS_NODE_GPU: build.dir() };
      const doctor = await run(process.execPath, [BIN, 'doctor', '--json'], { env });
      const report = JSON.parse(doctor.stdout);
      const gpu = report.backends.find((b: { name: string }) => b.name === 'tensorflow-gpu');
      expect(gpu.ok).toBe(false);
      expect(gpu.reason).toMatch(/^@tensorflow\/tfjs-node-gpu is built but TensorFlow used no GPU: /);
      expect(gpu.reason).toMatch(build.reason);
      expect(report.chosen).toMatchObject({ name: 'tensorflow', gpu: null });
      expect(report.gpuFallback).toEqual({ reason: gpu.reason, usedInstead: 'tensorflow', loaderLog: 'TF_CPP_MIN_LOG_LEVEL=0 TF_CPP_VMODULE=dso_loader=1' });

      // Outside doctor, every process that falls back says so on stderr.
      const script =
        "const { initBackend } = await import('./src/backend/index.ts'); const info = await initBackend('auto');" +
        'console.log(JSON.stringify({ name: info.name, gpu: info.gpu }));' +
        "try { await initBackend('tensorflow-gpu'); console.log('forced: ok'); } catch (e) { console.log('forced: ' + e.message); }";
      const chosen = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, cwd: ROOT });
      const lines = chosen.stdout.trim().split('\n');
      expect(JSON.parse(lines[0]!)).toEqual({ name: 'tensorflow', gpu: null });
      expect(chosen.stderr).toContain(`mmsweep: not training on a GPU: ${gpu.reason}\nmmsweep: using backend 'tensorflow' instead`);
      // A forced tensorflow-gpu request is refused with the same reason.
      expect(lines[1]).toBe(`forced: backend 'tensorflow-gpu' is unavailable: ${gpu.reason}`);
    });
  }
});

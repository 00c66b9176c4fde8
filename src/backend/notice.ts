import type { BackendInfo } from './index.ts';

/**
 * What `mmsweep run` and `mmsweep train` say about the backend that trains, and, when the native backend is not
 * installed, how much faster it would be and the one command that installs it.
 *
 * The figures are measured, not estimated: CMNIST MMTM training step, batch 128, `npm run bench -- train --backends
 * tensorflow,wasm --runs 5` after issue 14's step work, on a 2-core AMD EPYC shared with other jobs (load 16–21):
 * native 348.2 and wasm 116.8 train samples per CPU-second (wall: 127.9 vs 33.5 samples/s). Per CPU-second because
 * that ratio survives the load, and because a trial's runner gets one core by default (one trial per core). Pure-JS
 * cpu: 2.7–8.3 samples/s (README "Backends and speed").
 */
export const NATIVE_SPEEDUP = {
  wasm: { factor: 348.2 / 116.8, source: 'native 348 vs wasm 117 train samples per CPU-second, CMNIST MMTM batch 128, 2-core AMD EPYC, `npm run bench -- train`' },
  cpu: { factor: 260 / 8.3, source: 'native ≥ 260 vs pure-JS ≤ 8.3 train samples/s, CMNIST MMTM batch 128, 2-core AMD EPYC, `npm run bench -- train`' },
} as const;

export const NATIVE_SETUP_COMMAND = 'npx mmsweep setup native';

/** Whether training fell back to wasm or cpu because the native backend is not installed (not: installed but broken). */
export function nativeMissing(info: Pick<BackendInfo, 'name' | 'attempts'>): boolean {
  const native = info.attempts.find((a) => a.name === 'tensorflow');
  return (info.name === 'wasm' || info.name === 'cpu') && native !== undefined && !native.ok && /is not installed/.test(native.reason ?? '');
}

/** "backend wasm (wasm simd, 1 thread on …)", plus the native hint when auto fell back because native is missing. */
export function backendNotice(info: Pick<BackendInfo, 'name' | 'device' | 'attempts'>): string[] {
  const lines = [`backend ${info.name} (${info.device})`];
  const native = info.attempts.find((a) => a.name === 'tensorflow');
  if ((info.name === 'wasm' || info.name === 'cpu') && native && !native.ok) {
    const speed = NATIVE_SPEEDUP[info.name];
    const missing = nativeMissing(info);
    lines.push(
      `the native backend (tensorflow) ${missing ? 'is not installed' : `does not load: ${native.reason}`}; it trains ` +
        `≈ ${speed.factor.toFixed(1)}× faster than ${info.name} (measured: ${speed.source}). Install it with: ${NATIVE_SETUP_COMMAND}`,
    );
  }
  return lines;
}

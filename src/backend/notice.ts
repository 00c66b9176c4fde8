import type { BackendInfo } from './index.ts';

/**
 * What `mmsweep run` and `mmsweep train` say about the backend that trains, and, when the native backend is not
 * installed, how much faster it would be and the one command that installs it.
 *
 * The figure is measured, not estimated: CMNIST MMTM training step, batch 128, `npm run bench -- train --vs-torch
 * --backends tensorflow,wasm --runs 7` on an idle 2-core Intel Xeon (issue 14): native 221.4 train samples/s, wasm
 * 96.9, pure-JS cpu 2.7–8.3 (README "Backends and speed", 2-core AMD EPYC).
 */
export const NATIVE_SPEEDUP = {
  wasm: { factor: 221.4 / 96.9, source: 'native 221 vs wasm 97 train samples/s, CMNIST MMTM batch 128, 2-core Intel Xeon, `npm run bench -- train`' },
  cpu: { factor: 260 / 8.3, source: 'native ≥ 260 vs pure-JS ≤ 8.3 train samples/s, CMNIST MMTM batch 128, 2-core AMD EPYC, `npm run bench -- train`' },
} as const;

export const NATIVE_SETUP_COMMAND = 'npx mmsweep setup native';

/** "backend wasm (wasm simd, 1 thread on …)", plus the native hint when auto fell back because native is missing. */
export function backendNotice(info: Pick<BackendInfo, 'name' | 'device' | 'attempts'>): string[] {
  const lines = [`backend ${info.name} (${info.device})`];
  const native = info.attempts.find((a) => a.name === 'tensorflow');
  if ((info.name === 'wasm' || info.name === 'cpu') && native && !native.ok) {
    const speed = NATIVE_SPEEDUP[info.name];
    const missing = /is not installed/.test(native.reason ?? '');
    lines.push(
      `the native backend (tensorflow) ${missing ? 'is not installed' : `does not load: ${native.reason}`}; it trains ` +
        `≈ ${speed.factor.toFixed(1)}× faster than ${info.name} (measured: ${speed.source}). Install it with: ${NATIVE_SETUP_COMMAND}`,
    );
  }
  return lines;
}

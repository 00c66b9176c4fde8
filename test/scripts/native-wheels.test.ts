import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The build logic of `mmsweep setup native [--gpu]` (scripts/native-wheels.sh) on a tiny fake wheel set and a fake
 * pip: pins, the pip command line (platform tags, hashes), the cache, and the deps/nvidia layout with the nvrtc link.
 * The real 2 GB download is not run here (see README "GPU hosts": MMSWEEP_TEST_GPU_BUILD).
 */

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const SCRIPT = path.join(ROOT, 'scripts', 'native-wheels.sh');
const temp = mkdtempSync(path.join(os.tmpdir(), 'mmsweep-wheels-test-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** A zip (wheel) holding `entries` (path → content), written by Python's zipfile. */
function makeWheel(file: string, entries: Record<string, string>): void {
  execFileSync('python3', [
    '-c',
    'import json, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n    for name, data in json.loads(sys.argv[2]).items(): z.writestr(name, data)',
    file,
    JSON.stringify(entries),
  ]);
}

/** Wheels like the real ones, in miniature: library folders, headers and Python files that must not be unpacked. */
const WHEELS: Record<string, { file: string; entries: Record<string, string> }> = {
  tensorflow: { file: 'tensorflow-2.20.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl', entries: { 'tensorflow/libtensorflow_cc.so.2': 'tf' } },
  'nvidia-cudnn-cu12': {
    file: 'nvidia_cudnn_cu12-9.3.0.75-py3-none-manylinux2014_x86_64.whl',
    entries: { 'nvidia/__init__.py': '', 'nvidia/cudnn/lib/__init__.py': '', 'nvidia/cudnn/lib/libcudnn.so.9': 'cudnn', 'nvidia/cudnn/include/cudnn.h': 'h' },
  },
  'nvidia-cuda-nvrtc-cu12': {
    file: 'nvidia_cuda_nvrtc_cu12-12.5.82-py3-none-manylinux2014_x86_64.whl',
    entries: { 'nvidia/cuda_nvrtc/lib/libnvrtc.so.12': 'nvrtc', 'nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.5': 'b' },
  },
  'nvidia-cublas-cu12': {
    file: 'nvidia_cublas_cu12-12.5.3.2-py3-none-manylinux2014_x86_64.whl',
    entries: { 'nvidia/cublas/lib/libcublas.so.12': 'cublas', 'nvidia/cublas/lib/libcublasLt.so.12': 'lt' },
  },
};

const index = path.join(temp, 'index');
mkdirSync(index);
const pinLines: string[] = ['# a comment line', ''];
for (const [name, wheel] of Object.entries(WHEELS)) {
  makeWheel(path.join(index, wheel.file), wheel.entries);
  const version = wheel.file.split('-')[1];
  pinLines.push(`${name}==${version} --hash=sha256:${sha256(path.join(index, wheel.file))}  # trailing comment`);
}
const pins = path.join(temp, 'pins.txt');
writeFileSync(pins, `${pinLines.join('\n')}\n`);

// A fake `python3 -m pip download …`: records its arguments, copies the index's wheels into -d (or garbage with
// FAKE_PIP_CORRUPT set).
const fakePython = path.join(temp, 'fake-python');
writeFileSync(
  fakePython,
  `#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$FAKE_PIP_LOG"
dest=""; prev=""
for a in "$@"; do [ "$prev" = "-d" ] && dest="$a"; prev="$a"; done
for f in "$FAKE_INDEX"/*.whl; do
  if [ -n "\${FAKE_PIP_CORRUPT:-}" ]; then echo corrupt >"$dest/$(basename "$f")"; else cp "$f" "$dest/"; fi
done
`,
);
chmodSync(fakePython, 0o755);

function wheels(args: string[], extraEnv: Record<string, string> = {}) {
  const log = path.join(temp, 'pip.log');
  rmSync(log, { force: true });
  const result = spawnSync('bash', [SCRIPT, ...args], {
    encoding: 'utf8',
    env: { ...process.env, MMSWEEP_PYTHON: fakePython, FAKE_PIP_LOG: log, FAKE_INDEX: index, ...extraEnv },
  });
  const pipCalls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, pipCalls };
}

describe('native-wheels.sh fetch', () => {
  it('downloads with both manylinux platform tags, pinned hashes and no dependencies; then works from the cache', () => {
    const cache = path.join(temp, 'cache-a');
    const first = wheels(['fetch', pins, cache]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.pipCalls).toHaveLength(1);
    const args = first.pipCalls[0]!.split(' ');
    expect(args.slice(0, 3)).toEqual(['-m', 'pip', 'download']);
    for (const flag of ['--no-deps', '--only-binary=:all:', '--require-hashes']) expect(args).toContain(flag);
    expect(first.pipCalls[0]).toContain('--python-version 3.11 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64');
    expect(first.pipCalls[0]).toContain(`-d ${cache} -r ${pins}`);
    expect(readdirSync(cache).sort()).toEqual(Object.values(WHEELS).map((w) => w.file).sort());

    const again = wheels(['fetch', pins, cache]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.pipCalls).toEqual([]); // everything cached and matching: no network

    const cudnn = path.join(cache, WHEELS['nvidia-cudnn-cu12']!.file);
    writeFileSync(cudnn, 'tampered');
    const repaired = wheels(['fetch', pins, cache]);
    expect(repaired.status, repaired.stderr).toBe(0);
    expect(repaired.stdout).toContain('downloading from PyPI: nvidia-cudnn-cu12 ');
    expect(repaired.pipCalls).toHaveLength(1);
    expect(sha256(cudnn)).toBe(sha256(path.join(index, WHEELS['nvidia-cudnn-cu12']!.file)));
  });

  it('fails, naming the pins, when the downloaded files do not match their hashes', () => {
    const result = wheels(['fetch', pins, path.join(temp, 'cache-corrupt')], { FAKE_PIP_CORRUPT: '1' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/no file in .*cache-corrupt has the pinned sha256 of: tensorflow nvidia-cudnn-cu12 nvidia-cuda-nvrtc-cu12 nvidia-cublas-cu12/);
  });

  it('rejects a pin file line that is not `name==version --hash=sha256:<64 hex>`', () => {
    for (const line of ['tensorflow==2.20.0', 'tensorflow>=2.20 --hash=sha256:' + 'a'.repeat(64), 'tensorflow==2.20.0 --hash=sha256:' + 'a'.repeat(63)]) {
      const bad = path.join(temp, 'bad-pins.txt');
      writeFileSync(bad, `${line}\n`);
      const result = wheels(['fetch', bad, path.join(temp, 'cache-bad')]);
      expect(result.status, line).toBe(1);
      expect(result.stderr).toContain(`'${line}' is not a pin`);
      expect(result.pipCalls).toEqual([]);
    }
  });
});

describe('native-wheels.sh nvidia-layout', () => {
  it('unpacks only nvidia/<library>/lib into deps/nvidia, links nvrtc → cuda_nvrtc, and the RUNPATHs resolve', () => {
    const cache = path.join(temp, 'cache-layout');
    expect(wheels(['fetch', pins, cache]).status).toBe(0);
    const deps = path.join(temp, 'pkg', 'deps');
    mkdirSync(path.join(deps, 'lib'), { recursive: true });
    for (let i = 0; i < 2; i++) {
      // twice: a rerun replaces the layout
      const result = wheels(['nvidia-layout', pins, cache, deps]);
      expect(result.status, result.stderr).toBe(0);
    }
    const nvidia = path.join(deps, 'nvidia');
    expect(readdirSync(nvidia).sort()).toEqual(['cublas', 'cuda_nvrtc', 'cudnn', 'nvrtc']);
    expect(readlinkSync(path.join(nvidia, 'nvrtc'))).toBe('cuda_nvrtc');
    expect(readdirSync(path.join(nvidia, 'cudnn'))).toEqual(['lib']); // no include/
    expect(readdirSync(path.join(nvidia, 'cudnn', 'lib'))).toEqual(['libcudnn.so.9']); // no __init__.py
    expect(existsSync(path.join(nvidia, '__init__.py'))).toBe(false);
    // libtensorflow_framework.so.2 (in deps/lib) has RUNPATH $ORIGIN/../nvidia/<library>/lib …
    expect(readFileSync(path.join(deps, 'lib', '..', 'nvidia', 'cudnn', 'lib', 'libcudnn.so.9'), 'utf8')).toBe('cudnn');
    expect(readFileSync(path.join(deps, 'lib', '..', 'nvidia', 'cublas', 'lib', 'libcublasLt.so.12'), 'utf8')).toBe('lt');
    // … and cuDNN's libraries have RUNPATH $ORIGIN/../../nvrtc/lib.
    expect(readFileSync(path.join(nvidia, 'cudnn', 'lib', '..', '..', 'nvrtc', 'lib', 'libnvrtc.so.12'), 'utf8')).toBe('nvrtc');
  });

  it('says which pinned wheel is missing from the cache', () => {
    const result = wheels(['nvidia-layout', pins, path.join(temp, 'empty-cache'), path.join(temp, 'pkg2', 'deps')]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/no file in .*empty-cache has the sha256 pinned for nvidia-cudnn-cu12 \(run fetch\)/);
  });
});

describe('the pinned GPU wheel set (scripts/native-pins/gpu.txt)', () => {
  const lines = readFileSync(path.join(ROOT, 'scripts', 'native-pins', 'gpu.txt'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
  const pinned = Object.fromEntries(lines.map((l) => /^(\S+)==(\S+) --hash=sha256:([0-9a-f]{64})$/.exec(l)!).map((m) => [m[1], { version: m[2], hash: m[3] }]));

  it('is TensorFlow 2.20.0 (the wheel whose sha256 issue 16 recorded) and the CUDA 12.5 libraries it dlopens', () => {
    expect(lines).toHaveLength(Object.keys(pinned).length); // every line a well-formed pin
    // Versions from issue 16's facts (TF 2.20 was built with CUDA 12.5.1 and cuDNN 9; TF refuses an older cuDNN minor).
    expect(Object.fromEntries(Object.entries(pinned).map(([name, p]) => [name, p.version]))).toEqual({
      tensorflow: '2.20.0',
      'nvidia-cuda-runtime-cu12': '12.5.82',
      'nvidia-cublas-cu12': '12.5.3.2',
      'nvidia-cudnn-cu12': '9.3.0.75',
      'nvidia-cufft-cu12': '11.2.3.61',
      'nvidia-cusolver-cu12': '11.6.3.83',
      'nvidia-cusparse-cu12': '12.5.1.3',
      'nvidia-nvjitlink-cu12': '12.5.82',
      'nvidia-cuda-nvrtc-cu12': '12.5.82',
    });
    expect(pinned.tensorflow!.hash).toBe('481499fd0f824583de8945be61d5e827898cdaa4f5ea1bc2cc28ca2ccff8229e');
    expect(readFileSync(path.join(ROOT, 'scripts', 'setup-native.sh'), 'utf8')).toContain('TF_VERSION="2.20.0"');
  });
});

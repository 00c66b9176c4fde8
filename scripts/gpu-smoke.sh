#!/usr/bin/env bash
# One command for a GPU host: is mmsweep's GPU path sound here? Steps (each recorded in one JSON summary on stdout;
# progress and tool output on stderr):
#   1. build (or reuse the cached build of) tfjs-node-gpu: scripts/setup-native.sh --gpu, and the CPU build for parity;
#   2. `mmsweep doctor --json`: stops here, exit 3, when no GPU is used (the summary says why);
#   3. GPU-vs-CPU parity: the same 4-step CMNIST training (512 examples, batch 128, one epoch) on tensorflow-gpu and on
#      tensorflow (CPU), TF32 off (NVIDIA_TF32_OVERRIDE=0) and deterministic ops, losses and accuracies compared;
#   4. `bench train` on the GPU (CMNIST MMTM, batch 128) and `bench resnet18` (batch 8, 224×224);
#   5. one small CMNIST trial end to end through `mmsweep run` (embedded Temporal + database), GPU recorded.
# Usage: scripts/gpu-smoke.sh [--skip-bench]. Exit: 0 all passed, 3 no GPU used, 1 a step failed.
# State goes to MMSWEEP_SMOKE_DIR (default: a fresh temporary directory); the download cache is setup-native's.
set -uo pipefail
cd "$(dirname "$0")/.."
skip_bench=0
for arg in "$@"; do
  case "$arg" in
    --skip-bench) skip_bench=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu-smoke: unknown option '$arg' (only --skip-bench)" >&2; exit 2 ;;
  esac
done

work="${MMSWEEP_SMOKE_DIR:-$(mktemp -d -t mmsweep-gpu-smoke.XXXXXX)}"
mkdir -p "$work"
export MMSWEEP_HOME="$work/home"
mmsweep() { node bin/mmsweep.js "$@"; }
say() { echo "[gpu-smoke] $*" >&2; }

# The summary: each step writes <name>.json into $work/steps; `finish` joins them into one JSON object.
mkdir -p "$work/steps"
step() { printf '%s\n' "$2" >"$work/steps/$1.json"; }
finish() {
  local code="$1"
  node --input-type=module -e "
    import fs from 'node:fs';
    const dir = process.argv[1];
    const summary = { ok: $code === 0, exitCode: $code, host: (await import('node:os')).hostname(), workDir: process.argv[2] };
    for (const name of ['build', 'doctor', 'parity', 'benchTrain', 'benchResnet18', 'trial']) {
      const file = dir + '/' + name + '.json';
      if (fs.existsSync(file)) summary[name] = JSON.parse(fs.readFileSync(file, 'utf8'));
    }
    console.log(JSON.stringify(summary));
  " "$work/steps" "$work"
  exit "$code"
}

# 1. Builds.
say "building (or reusing) tfjs-node-gpu and tfjs-node"
if bash scripts/setup-native.sh --gpu >&2 && bash scripts/setup-native.sh >&2; then
  step build '{"ok":true}'
else
  step build '{"ok":false,"error":"scripts/setup-native.sh failed (output above)"}'
  finish 1
fi

# 2. Doctor: is a GPU really used?
say "mmsweep doctor --json"
mmsweep doctor --json >"$work/doctor.json" || { step doctor '{"ok":false,"error":"mmsweep doctor failed"}'; finish 1; }
doctor_step="$(node -e "
  const r = JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'));
  const gpu = r.backends.find((b) => b.name === 'tensorflow-gpu');
  console.log(JSON.stringify({ ok: r.chosen.name === 'tensorflow-gpu', chosen: r.chosen.name, device: r.chosen.device,
    gpu: r.chosen.gpu, reason: gpu.ok ? undefined : gpu.reason }));
" "$work/doctor.json")"
step doctor "$doctor_step"
if ! node -e "process.exit(JSON.parse(process.argv[1]).ok ? 0 : 1)" "$doctor_step"; then
  say "no GPU is used on this machine: $(node -e "console.log(JSON.parse(process.argv[1]).reason)" "$doctor_step")"
  finish 3
fi

# 3. Parity, TF32 off: one epoch of 512 examples at batch 128 = 4 SGD steps, then evaluation.
say "GPU-vs-CPU parity (4 steps, NVIDIA_TF32_OVERRIDE=0)"
parity_args=(train --dataset cmnist --subset 512 --subset-val 256 --subset-test 256 --batch-size 128 --max-epochs 1 --seed 0 --lr 0.05 --events --json)
for backend in tensorflow-gpu tensorflow; do
  NVIDIA_TF32_OVERRIDE=0 TF_DETERMINISTIC_OPS=1 MMSWEEP_BACKEND= mmsweep "${parity_args[@]}" --backend "$backend" \
    >"$work/parity-$backend.out" 2>"$work/parity-$backend.err" ||
    { step parity "{\"ok\":false,\"error\":\"mmsweep train --backend $backend failed: see $work/parity-$backend.err\"}"; finish 1; }
done
parity_step="$(node -e "
  const fs = require('fs');
  const read = (b) => {
    const lines = fs.readFileSync(process.argv[1] + '/parity-' + b + '.out', 'utf8').trim().split('\n');
    const events = lines.filter((l) => l.startsWith('@mmsweep ')).map((l) => JSON.parse(l.slice(9)));
    const epoch = events.find((e) => e.type === 'epoch').metrics;
    const result = JSON.parse(lines.filter((l) => !l.startsWith('@mmsweep ')).at(-1));
    return { loss: epoch.loss, trainAcc: epoch.trainAcc, valAcc: epoch.valAcc, testAcc: result.testAcc, accF0: result.accF0, accF1: result.accF1, device: result.device, gpu: result.gpu };
  };
  const gpu = read('tensorflow-gpu'), cpu = read('tensorflow');
  const lossRel = Math.abs(gpu.loss - cpu.loss) / Math.max(Math.abs(cpu.loss), 1e-12);
  // Accuracies in percent of 256 examples: one example is 0.39 points; allow one flipped prediction per metric.
  const accDiff = Math.max(...['trainAcc', 'valAcc', 'testAcc', 'accF0', 'accF1'].map((k) => Math.abs(gpu[k] - cpu[k])));
  console.log(JSON.stringify({ ok: lossRel < 1e-3 && accDiff <= 100 / 256 + 1e-9 && gpu.gpu !== null, lossRelativeDifference: lossRel, maxAccuracyDifferencePoints: accDiff, gpu, cpu }));
" "$work")"
step parity "$parity_step"
node -e "process.exit(JSON.parse(process.argv[1]).ok ? 0 : 1)" "$parity_step" || { say "parity failed"; finish 1; }

# 4. Throughput on the GPU (TF32 at its default: what training uses).
if [ "$skip_bench" = 0 ]; then
  say "bench train (CMNIST, batch 128) and bench resnet18 (batch 8, 224×224) on tensorflow-gpu"
  out="$(node --import tsx bench/main.ts train --backends tensorflow-gpu --batch 128 --json 2>"$work/bench-train.err")" &&
    step benchTrain "$(printf '%s' "$out" | tail -n1)" ||
    { step benchTrain "{\"ok\":false,\"error\":\"see $work/bench-train.err\"}"; finish 1; }
  out="$(node --import tsx bench/main.ts resnet18 --backends tensorflow-gpu --batch 8 --size 224 --json 2>"$work/bench-resnet18.err")" &&
    step benchResnet18 "$(printf '%s' "$out" | tail -n1)" ||
    { step benchResnet18 "{\"ok\":false,\"error\":\"see $work/bench-resnet18.err\"}"; finish 1; }
fi

# 5. One small CMNIST trial through the orchestration (embedded Temporal dev server and database).
say "one small CMNIST trial end to end (mmsweep run)"
cat >"$work/study.json" <<'EOF'
{ "name": "gpu-smoke", "description": "scripts/gpu-smoke.sh: one small CMNIST trial on the GPU", "concurrency": 1,
  "conditions": [ { "label": "cmnist-gpu", "seeds": [0],
    "base": { "dataset": { "name": "cmnist" }, "backend": "tensorflow-gpu", "lr": 0.05, "batchSize": 128,
              "subset": { "train": 2048, "val": 512, "test": 512 }, "maxEpochs": 2 } } ] }
EOF
if mmsweep run "$work/study.json" --no-progress >"$work/trial.out" 2>"$work/trial.err"; then
  mmsweep sql --format json \
    "select r.raw->>'backend' as backend, r.raw->>'device' as device, t.status, r.raw->'gpu' as gpu, (r.raw->>'testAcc')::float8 as test_acc from trials t join results r on r.trial_key = t.trial_key" \
    >"$work/trial.json" 2>>"$work/trial.err" || true
  step trial "$(node -e "
    const fs = require('fs');
    let rows = [];
    try { rows = JSON.parse(fs.readFileSync(process.argv[1], 'utf8')); } catch {}
    const row = Array.isArray(rows) ? rows[0] : undefined;
    console.log(JSON.stringify({ ok: !!row && row.backend === 'tensorflow-gpu' && row.gpu !== null, row: row ?? null }));
  " "$work/trial.json")"
else
  step trial "{\"ok\":false,\"error\":\"mmsweep run failed: see $work/trial.err\"}"
  finish 1
fi
node -e "process.exit(JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8')).ok ? 0 : 1)" "$work/steps/trial.json" || finish 1
finish 0

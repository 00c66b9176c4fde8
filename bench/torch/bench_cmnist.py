"""Throughput of the PyTorch reference (cmnist_mmtm.py): CMNIST MMTM training step and forward pass.

  python3 bench/torch/bench_cmnist.py [--batch 128] [--runs 5] [--warmup 2] [--threads N]
      prints one JSON object: samples/s of a training step and of a forward pass (median of --runs timed runs
      after --warmup untimed ones), the FLOP count behind GFLOP/s, threads and versions.
  python3 bench/torch/bench_cmnist.py --serve [--batch 128] [--threads N]
      keeps one network alive and answers JSON lines on stdin, one JSON line each on stdout, so that
      `npm run bench -- train --vs-torch` can alternate PyTorch with the tfjs backends in one run:
        {"op": "info"}                          -> versions, threads, FLOPs per sample
        {"op": "train"|"forward", "runs": n}    -> {"ms": [n wall-clock times, one per step]}
        {"op": "sgemm"}                         -> {"gflops": best of 3 square float32 matmuls, n = 2048}
        {"op": "quit"}

Threads default to the number of online CPUs (torch.set_num_threads), the setting a user gets on a dedicated box.
On a machine shared with other busy processes, PyTorch's OpenMP threads spin-wait by default and a 2-thread step
can be 10× slower; OMP_WAIT_POLICY=PASSIVE in the environment avoids that.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from cmnist_mmtm import TrainingBench, forward_flops_per_sample  # noqa: E402


def timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def sgemm_gflops(size: int = 2048) -> float:
    a = torch.rand(size, size)
    b = torch.rand(size, size)
    torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b), 3))
    return 2 * size**3 / (best / 1000) / 1e9


def info(bench_batch: int) -> dict:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "batch": bench_batch,
        "forward_flops_per_sample": forward_flops_per_sample(),
    }


def serve(bench: TrainingBench, batch: int) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.get("op")
        if op == "quit":
            return
        if op == "info":
            reply = info(batch)
        elif op in ("train", "forward"):
            runs = int(request.get("runs", 1))
            reply = {"ms": timed(bench.train_step if op == "train" else bench.forward, runs)}
        elif op == "sgemm":
            reply = {"gflops": sgemm_gflops()}
        else:
            reply = {"error": f"unknown op {op!r} (use info, train, forward, sgemm, quit)"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args()
    if args.batch < 1 or args.runs < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--batch, --runs and --threads must be ≥ 1, --warmup ≥ 0")
    torch.set_num_threads(args.threads)

    bench = TrainingBench(args.batch)
    if args.serve:
        serve(bench, args.batch)
        return
    timed(bench.train_step, args.warmup)
    train_ms = statistics.median(timed(bench.train_step, args.runs))
    timed(bench.forward, args.warmup)
    forward_ms = statistics.median(timed(bench.forward, args.runs))
    flops = forward_flops_per_sample()
    train_per_s = args.batch * 1000 / train_ms
    result = {
        **info(args.batch),
        "runs": args.runs,
        "warmup": args.warmup,
        "train_samples_per_s": round(train_per_s, 1),
        "forward_samples_per_s": round(args.batch * 1000 / forward_ms, 1),
        # A training step counts 3× the forward FLOPs (backward ≈ 2× forward: input and weight gradients).
        "train_gflops": round(3 * flops * train_per_s / 1e9, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

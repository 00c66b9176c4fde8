"""The PyTorch side of `npm run bench -- sweep`: the same small CMNIST study as a plain training loop.

  python3 bench/torch/sweep.py --data DIR --lrs 0.01,0.02 [--epochs 3] [--batch 32] [--eval-batch 250]
                               [--width 0.5] [--gate-scale 2] [--momentum 0.9] [--seed 1] [--threads N]

DIR holds the data mmsweep trains on, exported by bench/sweep.ts: `meta.json` ({split: {n, shape0, shape1}}) and
per split `<split>.x0.f32`, `<split>.x1.f32` (channels-last float32, already normalised) and `<split>.y.i32`.
Trials run one after another, each with `--threads` intra-op threads, and do the work an mmsweep trial does: per
epoch one shuffled training pass (SGD with momentum, L = CE(ŷ0) + CE(ŷ1)) and an evaluation of the validation
and test sets; at the end one forward pass over the training set (mmsweep's squeeze means) and two over the test
set (A(f) and A(f′)). Prints one JSON object: wall seconds of the loop and per trial, and each trial's accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from cmnist_mmtm import CmnistMmtmNet  # noqa: E402


def load_split(data: Path, split: str, meta: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    info = meta[split]
    n = info["n"]
    x0 = np.fromfile(data / f"{split}.x0.f32", dtype="<f4").reshape([n, *info["shape0"]])
    x1 = np.fromfile(data / f"{split}.x1.f32", dtype="<f4").reshape([n, *info["shape1"]])
    y = np.fromfile(data / f"{split}.y.i32", dtype="<i4")
    if y.shape[0] != n:
        raise ValueError(f"{split}: {y.shape[0]} labels for {n} samples")
    # NHWC (tfjs) → NCHW (PyTorch), contiguous as a PyTorch user's tensors would be.
    as_nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731
    return as_nchw(x0), as_nchw(x1), torch.from_numpy(y.astype(np.int64))


def accuracy(net: CmnistMmtmNet, split, batch: int) -> float:
    x0, x1, y = split
    net.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, y.shape[0], batch):
            logits0, logits1 = net(x0[start : start + batch], x1[start : start + batch])
            correct += int(((logits0 + logits1) / 2).argmax(dim=1).eq(y[start : start + batch]).sum())
    return 100.0 * correct / y.shape[0]


def run_trial(lr: float, args, train, val, test) -> dict:
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    net = CmnistMmtmNet((train[0].shape[1], train[1].shape[1]), width=args.width, gate_scale=args.gate_scale)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=args.momentum)
    generator = torch.Generator().manual_seed(args.seed)
    n = train[2].shape[0]
    val_acc = test_acc = 0.0
    for _epoch in range(args.epochs):
        net.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, args.batch):
            idx = order[start : start + args.batch]
            optimizer.zero_grad(set_to_none=True)
            logits0, logits1 = net(train[0][idx], train[1][idx])
            loss = F.cross_entropy(logits0, train[2][idx]) + F.cross_entropy(logits1, train[2][idx])
            loss.backward()
            optimizer.step()
        val_acc = accuracy(net, val, args.eval_batch)
        test_acc = accuracy(net, test, args.eval_batch)
    # The end-of-trial utilization passes of mmsweep: training-set squeeze means, then A(f) and A(f′) on test.
    accuracy(net, train, args.eval_batch)
    accuracy(net, test, args.eval_batch)
    accuracy(net, test, args.eval_batch)
    return {"lr": lr, "seconds": time.perf_counter() - started, "valAcc": val_acc, "testAcc": test_acc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--lrs", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--eval-batch", type=int, default=250)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--gate-scale", type=float, default=2.0)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    lrs = [float(v) for v in args.lrs.split(",")]
    torch.set_num_threads(args.threads)
    meta = json.loads((args.data / "meta.json").read_text())
    train, val, test = (load_split(args.data, s, meta) for s in ("train", "val", "test"))
    parameters = sum(p.numel() for p in CmnistMmtmNet((train[0].shape[1], train[1].shape[1]), width=args.width).parameters())
    started = time.perf_counter()
    trials = [run_trial(lr, args, train, val, test) for lr in lrs]
    wall = time.perf_counter() - started
    print(json.dumps({
        "wallSeconds": wall,
        "trials": trials,
        "threads": torch.get_num_threads(),
        "parameters": parameters,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()

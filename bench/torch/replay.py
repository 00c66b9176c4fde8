"""Replays mmsweep's CMNIST MMTM training on the PyTorch reference, from mmsweep's own weights and data.

Reads one JSON object on stdin:
  {"params": {name: {"shape": [...], "values": [...]}},   # mmsweep's namedParameters (tfjs layouts)
   "x0": [...], "x1": [...],                               # channels-last B×28×28×C inputs, flattened
   "labels": [...], "steps": n, "lr": float, "momentum": float}
and prints {"logits0": [...], "logits1": [...], "losses": [...]}: the first forward's logits (training mode) and
the loss of each of `steps` SGD steps. test/native/torch-reference.test.ts compares them with mmsweep's, which
shows that the speed reference computes the same function as the network it is compared with.

Layouts: tfjs conv kernels are kh×kw×Cin×Cout (PyTorch Cout×Cin×kh×kw), tfjs linear weights in×out (PyTorch
out×in); mmsweep names branchK.{bn0,conv1..4,head} and mmtmP.{squeeze,excite0,excite1}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from cmnist_mmtm import CmnistMmtmNet  # noqa: E402


def load_mmsweep_parameters(net: CmnistMmtmNet, params: dict) -> None:
    def tensor(name: str) -> torch.Tensor:
        if name not in params:
            raise KeyError(f"mmsweep parameter {name!r} missing from the input (got {sorted(params)[:6]}…)")
        p = params[name]
        return torch.tensor(p["values"], dtype=torch.float32).reshape(p["shape"])

    targets: list[tuple[torch.Tensor, torch.Tensor]] = []
    for k in (0, 1):
        branch = getattr(net, f"branch{k}")
        targets += [
            (branch.input_norm.weight, tensor(f"branch{k}.bn0.weight")),
            (branch.input_norm.bias, tensor(f"branch{k}.bn0.bias")),
            (branch.head.weight, tensor(f"branch{k}.head.weight").T),
            (branch.head.bias, tensor(f"branch{k}.head.bias")),
        ]
        for c in range(1, 5):
            conv = getattr(branch, f"conv{c}")
            targets += [
                (conv.weight, tensor(f"branch{k}.conv{c}.weight").permute(3, 2, 0, 1)),
                (conv.bias, tensor(f"branch{k}.conv{c}.bias")),
            ]
    for position in (2, 3, 4):
        mmtm = getattr(net, f"mmtm{position}")
        for ours, theirs in (("fc_squeeze", "squeeze"), ("fc_visual", "excite0"), ("fc_skeleton", "excite1")):
            layer = getattr(mmtm, ours)
            targets += [
                (layer.weight, tensor(f"mmtm{position}.{theirs}.weight").T),
                (layer.bias, tensor(f"mmtm{position}.{theirs}.bias")),
            ]
    if len(targets) != len(list(net.parameters())):
        raise AssertionError(f"mapped {len(targets)} of {len(list(net.parameters()))} reference parameters")
    with torch.no_grad():
        for parameter, value in targets:
            if parameter.shape != value.shape:
                raise ValueError(f"shape {tuple(value.shape)} from mmsweep does not fit {tuple(parameter.shape)}")
            parameter.copy_(value)


def main() -> None:
    request = json.load(sys.stdin)
    labels = torch.tensor(request["labels"], dtype=torch.long)
    batch = labels.shape[0]
    # Channels-last from mmsweep → PyTorch's NCHW.
    x0 = torch.tensor(request["x0"], dtype=torch.float32).reshape(batch, 28, 28, -1).permute(0, 3, 1, 2).contiguous()
    x1 = torch.tensor(request["x1"], dtype=torch.float32).reshape(batch, 28, 28, -1).permute(0, 3, 1, 2).contiguous()
    net = CmnistMmtmNet((x0.shape[1], x1.shape[1]))
    load_mmsweep_parameters(net, request["params"])
    optimizer = torch.optim.SGD(net.parameters(), lr=request["lr"], momentum=request["momentum"])
    net.train()
    losses: list[float] = []
    first: tuple[torch.Tensor, torch.Tensor] | None = None
    for _ in range(request["steps"]):
        optimizer.zero_grad(set_to_none=True)
        logits0, logits1 = net(x0, x1)
        if first is None:
            first = (logits0.detach().clone(), logits1.detach().clone())
        loss = F.cross_entropy(logits0, labels) + F.cross_entropy(logits1, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert first is not None, "steps must be ≥ 1"
    print(json.dumps({"logits0": first[0].flatten().tolist(), "logits1": first[1].flatten().tolist(), "losses": losses}))


if __name__ == "__main__":
    main()

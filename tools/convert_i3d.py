#!/usr/bin/env python3
"""Convert a PyTorch I3D checkpoint to the safetensors file mmsweep loads (src/nn/weights.ts).

Input: a state_dict saved with torch.save in the naming of the public PyTorch I3D port (e.g. its
`rgb_imagenet.pt`, Kinetics-400 fine-tuned from ImageNet-inflated weights): keys like
`Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b0.bn.running_mean`, `logits.conv3d.bias`. A dict holding the state_dict
under `state_dict` and keys prefixed `module.` (DataParallel) are accepted too.

Output: float32 safetensors with mmsweep's names and layouts:
  <unit>.conv3d.weight  [out, in, t, h, w] -> [t, h, w, in, out]  (tfjs conv3d filter layout)
  <unit>.conv3d.bias, <unit>.bn.weight, <unit>.bn.bias           unchanged
  <unit>.bn.running_mean / running_var -> <unit>.bn.runningMean / runningVar
  <unit>.bn.num_batches_tracked                                  dropped
Any other key is an error (the checkpoint is not an I3D in that naming).

Usage: python3 tools/convert_i3d.py rgb_imagenet.pt i3d_rgb_imagenet.safetensors
Needs torch (to read the .pt file); the safetensors file is written here with struct + json.
"""

import argparse
import json
import os
import re
import struct
import sys

UNIT = r"(Conv3d_1a_7x7|Conv3d_2b_1x1|Conv3d_2c_3x3|Mixed_[345][a-f]\.b(?:0|1a|1b|2a|2b|3b)|logits)"
KEY = re.compile(r"^" + UNIT + r"\.(conv3d\.weight|conv3d\.bias|bn\.weight|bn\.bias|bn\.running_mean|bn\.running_var|bn\.num_batches_tracked)$")
RENAMED = {"bn.running_mean": "bn.runningMean", "bn.running_var": "bn.runningVar"}


def convert_state_dict(state_dict):
    """Returns an ordered list of (name, shape, float32 little-endian bytes) in mmsweep naming and layout."""
    import torch

    out = []
    unknown = []
    for key, tensor in state_dict.items():
        if key.startswith("module."):
            key = key[len("module."):]
        match = KEY.match(key)
        if not match:
            unknown.append(key)
            continue
        unit, field = match.group(1), match.group(2)
        if field == "bn.num_batches_tracked":
            continue
        value = tensor.detach().to(torch.float32).cpu()
        if field == "conv3d.weight":
            if value.dim() != 5:
                raise SystemExit(f"convert_i3d: {key} has shape {list(value.shape)}, expected [out, in, t, h, w]")
            value = value.permute(2, 3, 4, 1, 0)
        value = value.contiguous()
        name = f"{unit}.{RENAMED.get(field, field)}"
        out.append((name, list(value.shape), value.numpy().astype("<f4").tobytes()))
    if unknown:
        shown = ", ".join(unknown[:8]) + (", ..." if len(unknown) > 8 else "")
        raise SystemExit(f"convert_i3d: {len(unknown)} key(s) are not I3D tensors in the expected naming: {shown}")
    if not out:
        raise SystemExit("convert_i3d: the checkpoint holds no I3D tensors")
    return out


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    for name, shape, data in tensors:
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * ((8 - (8 + len(encoded)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for _, _, data in tensors:
            f.write(data)
    os.replace(tmp, path)


def load_checkpoint(path):
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - report any reader failure with the file name
        raise SystemExit(f"convert_i3d: cannot read {path} as a PyTorch checkpoint: {error}")
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise SystemExit(f"convert_i3d: {path} holds a {type(loaded).__name__}, not a state_dict")
    return loaded


def main(argv=None):
    parser = argparse.ArgumentParser(description="Convert a PyTorch I3D state_dict to mmsweep safetensors.")
    parser.add_argument("input", help="PyTorch checkpoint (.pt), e.g. rgb_imagenet.pt")
    parser.add_argument("output", help="safetensors file to write")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit("convert_i3d: PyTorch is needed to read .pt files: pip install torch")
    tensors = convert_state_dict(load_checkpoint(args.input))
    metadata = {
        "format": "mmsweep-i3d",
        "version": "1",
        "layout": "conv3d weights [t,h,w,in,out]",
        "source": os.path.basename(args.input),
    }
    write_safetensors(args.output, tensors, metadata)
    total = sum(len(d) for _, _, d in tensors) // 4
    print(f"convert_i3d: wrote {len(tensors)} tensors ({total:,} values) to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

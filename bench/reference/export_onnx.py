#!/usr/bin/python3
"""ONNX from an exported SSAN (ssan-export's MODEL.pth + MODEL.json), through
the Python reference model. ONNX opset 13 (onnx.checker-verified; Debian 12's
python3-torch 1.13 exports opsets 7-17).

The graph is traced at one input size: the attention layers choose their
group split and padding from H and W (min_cost_split), so another size needs
another export (batch 1 too: the group reshapes are traced with constant
sizes). Input "outer" [1, 2, H, W] float32 (slices 0 and 2 in [0, 1]),
output "middle" [1, 1, H, W].

usage: export_onnx.py MODEL.pth OUT.onnx [--height 256] [--width 256] [--opset 13]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ssan_ref  # noqa: E402

OPSET = 13


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--opset", type=int, default=OPSET)
    a = ap.parse_args()
    if os.path.exists(a.out):
        sys.exit(f"export_onnx: error: {a.out} exists")
    model = ssan_ref.load_pth(a.model)
    x = torch.rand(1, 2, a.height, a.width)
    tmp = a.out + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=a.opset, input_names=["outer"], output_names=["middle"])
    try:
        import onnx
    except ImportError:
        print("export_onnx: python3-onnx absent: the graph was written but not checked", file=sys.stderr)
    else:
        onnx.checker.check_model(onnx.load(tmp), full_check=True)
    os.replace(tmp, a.out)
    print(a.out)


if __name__ == "__main__":
    main()

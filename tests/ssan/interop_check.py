#!/usr/bin/python3
"""Python side of tests/ssan/test_interop.cpp (run with /usr/bin/python3).

usage: interop_check.py DIR
  DIR/input.pth        {"x": [B, 2, H, W]} written by the test
  DIR/cpp_N.pth/.json  weights written by C++ -> DIR/cpp_N.out.pth {"y": Python's prediction}
  DIR/py_N.json        a config -> random weights made here, saved with save_pth as
                       DIR/py_N.pth (+ .json), and DIR/py_N.out.pth {"y": their prediction}
"""
import glob
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "reference"))
import ssan_ref  # noqa: E402


def save_prediction(model, x, path):
    with torch.no_grad():
        y = model(x).contiguous().clone()
    # Two entries: Python pickles a one-entry dict with SETITEM, which LibTorch 1.13's unpickler lacks.
    torch.save({"x": x, "y": y}, path)


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    x = torch.load(os.path.join(d, "input.pth"))["x"]
    for pth in sorted(glob.glob(os.path.join(d, "cpp_*.pth"))):
        if pth.endswith(".out.pth"):
            continue
        model = ssan_ref.load_pth(pth)
        save_prediction(model, x, pth[:-4] + ".out.pth")
    for cfg in sorted(glob.glob(os.path.join(d, "py_*.json"))):
        with open(cfg) as f:
            config = json.load(f)["model"]
        torch.manual_seed(7)
        model = ssan_ref.SSAN(config)
        with torch.no_grad():
            for p in model.parameters():  # gammas and zero-initialised heads too, so every path counts
                p.add_(torch.empty_like(p).uniform_(-0.05, 0.05))
        model.eval()
        pth = cfg[:-5] + ".pth"
        ssan_ref.save_pth(model, pth)
        save_prediction(model, x, pth[:-4] + ".out.pth")
    print("ok")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Straightforward PyTorch reference of the attention variants, for
bench/attention.sh: the same maths as libs/ssan/src/attention.cpp written the
obvious way (separate projections, permute + reshape into groups, softmax,
bmm, back). Prints one JSON line for one case.

usage: attention_ref.py VARIANT C H W K [PH PW PH2 PW2] [--threads N]
"""
import json, math, resource, sys, time

import torch
import torch.nn as nn


class Step(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        ck = c // k
        self.wf, self.wg, self.wh = nn.Conv2d(c, ck, 1), nn.Conv2d(c, ck, 1), nn.Conv2d(c, ck, 1)
        self.wv = nn.Conv2d(ck, c, 1)
        self.gamma = nn.Parameter(torch.full((1,), 0.5))
        self.scale = 1 / math.sqrt(c / 2)

    def forward(self, x, long_range, ph, pw):
        b, c, h, w = x.shape
        def group(t):
            ck = t.shape[1]
            if ph == 0:
                return t.reshape(b, ck, h * w)
            v = t.view(b, ck, h // ph, ph, w // pw, pw)
            if long_range:
                return v.permute(0, 3, 5, 1, 2, 4).reshape(b * ph * pw, ck, -1)
            return v.permute(0, 2, 4, 1, 3, 5).reshape(-1, ck, ph * pw)
        def ungroup(t):
            ck = t.shape[1]
            if ph == 0:
                return t.reshape(b, ck, h, w)
            qh, qw = h // ph, w // pw
            if long_range:
                return t.view(b, ph, pw, ck, qh, qw).permute(0, 3, 4, 1, 5, 2).reshape(b, ck, h, w)
            return t.view(b, qh, qw, ck, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, ck, h, w)
        f, g, v = group(self.wf(x)), group(self.wg(x)), group(self.wh(x))
        a = torch.softmax(torch.bmm(f.transpose(1, 2), g) * self.scale, dim=1)
        return x + self.gamma * self.wv(ungroup(torch.bmm(v, a)))


class Layer(nn.Module):
    def __init__(self, kind, c, k, split):
        super().__init__()
        self.kind, self.split = kind, split
        self.steps = nn.ModuleList([Step(c, k) for _ in range({"sa": 1, "isa": 2, "aal": 3}[kind])])

    def forward(self, x):
        ph, pw, ph2, pw2 = self.split
        if self.kind == "sa":
            return self.steps[0](x, True, 0, 0)
        if self.kind == "isa":
            return self.steps[1](self.steps[0](x, True, ph, pw), False, ph, pw)
        b, c, h, w = x.shape
        qh, qw = h // ph, w // pw
        g = x.view(b, c, qh, ph, qw, pw).permute(0, 3, 5, 1, 2, 4).reshape(b * ph * pw, c, qh, qw)
        g = self.steps[1](self.steps[0](g, True, ph2, pw2), False, ph2, pw2)
        y = g.view(b, ph, pw, c, qh, qw).permute(0, 3, 4, 1, 5, 2).reshape(b, c, h, w)
        return self.steps[2](y, False, ph, pw)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
    args = [a for a in args if a != str(threads) or sys.argv.count(a) > 1] if "--threads" in sys.argv else args
    kind, c, h, w, k = args[0], *map(int, args[1:5])
    split = tuple(map(int, args[5:9])) if len(args) >= 9 else (1, 1, 1, 1)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layer = Layer(kind, c, k, split)
    x = torch.randn(1, c, h, w)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        layer(x)
        times = []
        for _ in range(3):
            t = time.perf_counter(); layer(x); times.append(time.perf_counter() - t)
    fwd = sorted(times)[1] * 1000
    times = []
    for _ in range(2):
        layer.zero_grad()
        t = time.perf_counter(); layer(x).square().mean().backward(); times.append(time.perf_counter() - t)
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
    print(json.dumps({"impl": "python", "variant": kind, "c": c, "h": h, "w": w, "k": k, "split": split,
                      "forward_ms": fwd, "forward_backward_ms": min(times) * 1000, "peak_bytes": peak,
                      "params": sum(p.numel() for p in layer.parameters()), "threads": threads}))


if __name__ == "__main__":
    main()

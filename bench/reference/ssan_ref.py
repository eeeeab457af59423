#!/usr/bin/python3
"""Python PyTorch reference of one SSAN training step (same architecture and
losses as libs/ssan), for bench/train_step.sh. Prints one JSON line.

usage: ssan_ref.py FEATURES BLOCKS LAYERS GROWTH BATCH CROP STEPS THREADS
"""
import json, math, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RDN(nn.Module):
    def __init__(self, cin, g0, d, c, g):
        super().__init__()
        self.sfe1, self.sfe2 = nn.Conv2d(cin, g0, 3, padding=1), nn.Conv2d(g0, g0, 3, padding=1)
        self.dense = nn.ModuleList([nn.ModuleList([nn.Conv2d(g0 + i * g, g, 3, padding=1) for i in range(c)]) for _ in range(d)])
        self.lff = nn.ModuleList([nn.Conv2d(g0 + c * g, g0, 1) for _ in range(d)])
        self.gff1, self.gff2 = nn.Conv2d(d * g0, g0, 1), nn.Conv2d(g0, g0, 3, padding=1)

    def forward(self, x):
        f1 = self.sfe1(x)
        f = self.sfe2(f1)
        outs = []
        for layers, lff in zip(self.dense, self.lff):
            feats = [f]
            for conv in layers:
                feats.append(F.relu(conv(torch.cat(feats, 1))))
            f = f + lff(torch.cat(feats, 1))
            outs.append(f)
        return f1 + self.gff2(self.gff1(torch.cat(outs, 1)))


class Step(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        ck = c // k
        self.wf, self.wg, self.wh, self.wv = nn.Conv2d(c, ck, 1), nn.Conv2d(c, ck, 1), nn.Conv2d(c, ck, 1), nn.Conv2d(ck, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.scale = 1 / math.sqrt(c / 2)

    def forward(self, x, view, perm, cpos):
        b, c, h, w = x.shape
        inv = [perm.index(i) for i in range(len(perm))]
        def group(t):
            v = list(view); v[1] = t.shape[1]
            p = t.reshape(v).permute(perm)
            return p.reshape(math.prod(p.shape[:cpos]), t.shape[1], -1), p.shape
        def ungroup(g, shp):
            s = list(shp); s[cpos] = g.shape[1]
            return g.reshape(s).permute(inv).reshape(b, g.shape[1], h, w)
        f, shp = group(self.wf(x)); g, _ = group(self.wg(x)); v, _ = group(self.wh(x))
        a = torch.softmax(torch.bmm(f.transpose(1, 2), g) * self.scale, dim=1)
        return x + self.gamma * self.wv(ungroup(torch.bmm(v, a), shp))


class AAL(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.steps = nn.ModuleList([Step(c, k) for _ in range(3)])

    def forward(self, x, split):
        ph, pw, ph2, pw2 = split
        b, c, h, w = x.shape
        v2 = [b, 0, h // (ph * ph2), ph2, ph, w // (pw * pw2), pw2, pw]
        x = self.steps[0](x, v2, [0, 4, 7, 3, 6, 1, 2, 5], 5)
        x = self.steps[1](x, v2, [0, 4, 7, 2, 5, 1, 3, 6], 5)
        return self.steps[2](x, [b, 0, h // ph, ph, w // pw, pw], [0, 2, 4, 1, 3, 5], 3)


class SSAN(nn.Module):
    def __init__(self, g0, d, c, g):
        super().__init__()
        self.rdn, self.aal = RDN(2, g0, d, c, g), AAL(g0, 2)
        self.head, self.mask = nn.Conv2d(g0, 1, 3, padding=1), nn.Conv2d(2 * g0, 1, 3, padding=1)

    def forward(self, outer, split):
        i0, i2 = outer[:, :1], outer[:, 1:]
        a0, a1 = self.aal(self.rdn(outer), split), self.aal(self.rdn(torch.cat([i2, i0], 1)), split)
        w0, w1 = i0 + self.head(a0), i2 + self.head(a1)
        m = torch.sigmoid(self.mask(torch.cat([a0, a1], 1)))
        return m * w0 + (1 - m) * w1


def vgg16_features():
    cfg = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256), "M", (256, 512), (512, 512), (512, 512)]
    layers = []
    for c in cfg:
        layers += [nn.MaxPool2d(2)] if c == "M" else [nn.Conv2d(*c, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


def feats(vgg, grey):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    y, out = (grey.expand(-1, 3, -1, -1) - mean) / std, []
    for i, m in enumerate(vgg):
        y = m(y)
        if i in (3, 8, 15, 22):
            out.append(y)
    return out


def gram(f):
    b, c, h, w = f.shape
    v = f.reshape(b, c, h * w)
    return torch.bmm(v, v.transpose(1, 2)) / (c * h * w)


def style(a, b):
    return sum((gram(x) - gram(y)).pow(2).mean() for x, y in zip(a, b))  # as libs/ssan: mean over Gram entries


def main():
    g0, d, c, g, batch, crop, steps, threads = map(int, sys.argv[1:9])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, vgg = SSAN(g0, d, c, g), vgg16_features()
    for p in vgg.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    # The split the C++ layer picks for this crop (passed by the driver as env-free argv[9:13]).
    split = tuple(map(int, sys.argv[9:13]))
    outer, gt = torch.rand(batch, 2, crop, crop), torch.rand(batch, 1, crop, crop)
    times = []
    for s in range(steps + 1):
        t = time.perf_counter()
        opt.zero_grad()
        pred = model(outer, split)
        l1 = torch.sqrt((pred - gt) ** 2 + 1e-12).mean()
        fp = feats(vgg, pred)
        with torch.no_grad():
            fg, f0, f2 = feats(vgg, gt), feats(vgg, outer[:, :1]), feats(vgg, outer[:, 1:])
        lf = sum((a - b).pow(2).mean() for a, b in zip(fp, fg))
        lbs = 0
        for beta, fs in zip((0.1, 1.0, 0.1), (f0, fg, f2)):
            sp = style(fp, fs)
            with torch.no_grad():
                sg = style(fg, fs)
            lbs = lbs + beta * (1.0 if (sp - sg) >= 0 else -1.0) * sp
        loss = 1e6 * lbs + lf + l1
        loss.backward()
        opt.step()
        if s > 0:
            times.append(time.perf_counter() - t)
    ms = sorted(times)[len(times) // 2] * 1000
    print(json.dumps({"impl": "python", "features": g0, "blocks": d, "layers": c, "growth": g, "batch": batch, "crop": crop,
                      "threads": threads, "ms_per_step": ms, "samples_per_s": batch / ms * 1000,
                      "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()

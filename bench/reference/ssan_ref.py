#!/usr/bin/python3
"""SSAN in Python PyTorch: the same architecture as libs/ssan (model.cpp,
attention.cpp) with the same parameter names, so a state dict written by
`ssan-export` loads with `load_state_dict` unchanged, and one saved from here
(`save_pth`) starts `ssan-train --init-from`. See README.md beside this file.

Covers every model the C++ builds: extractors rdn / siamese_rdn / unet /
siamese_unet, attention none / kel / sa / isa / aal at full resolution or at a
U-Net's bottleneck (attention_at), fusion mask / mean / residual /
mask_residual, one or two branches. Configs are dicts with the keys of the
INI's [model] section (`config_from_ini`, `load_pth`).

Run as a script it is the Python side of bench/train_step.sh (one training
step timed, one JSON line):
usage: ssan_ref.py FEATURES BLOCKS LAYERS GROWTH BATCH CROP STEPS THREADS [PH PW PH2 PW2]
"""
import configparser
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Defaults of libs/ssan/include/emt/ssan/config.hpp (ModelConfig).
MODEL_DEFAULTS = {
    "extractor": "siamese_rdn", "features": 16, "blocks": 2, "layers": 3, "growth": 8, "unet_levels": 2,
    "attention": "aal", "reduction": 2, "ph": 0, "pw": 0, "ph2": 0, "pw2": 0, "kel_kernel": 5,
    "attention_at": "full", "fusion": "mask", "branches": 2,
}
_INTS = {k for k, v in MODEL_DEFAULTS.items() if isinstance(v, int)}


def model_config(**overrides):
    """A full model config: the C++ defaults, then `overrides`."""
    unknown = set(overrides) - set(MODEL_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown model config keys: {sorted(unknown)}")
    c = dict(MODEL_DEFAULTS)
    c.update(overrides)
    return c


def config_from_ini(text):
    """The [model] section of an emtriplet SSAN INI (data_specs/ssan_*.ini) as a config dict."""
    p = configparser.ConfigParser(inline_comment_prefixes=None)
    p.read_string(text)
    m = dict(p["model"]) if p.has_section("model") else {}
    return model_config(**{k: int(v) if k in _INTS else v.strip() for k, v in m.items() if k in MODEL_DEFAULTS})


def conv(cin, cout, k):
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class RDN(nn.Module):
    """Residual dense network; names as RdnImpl (sfe1, rdbB_convI, rdbB_lff, gff1, ...)."""

    def __init__(self, cin, g0, d, c, g):
        super().__init__()
        self.d, self.c = d, c
        self.sfe1, self.sfe2 = conv(cin, g0, 3), conv(g0, g0, 3)
        for b in range(d):
            for i in range(c):
                setattr(self, f"rdb{b}_conv{i}", conv(g0 + i * g, g, 3))
            setattr(self, f"rdb{b}_lff", conv(g0 + c * g, g0, 1))
        self.gff1, self.gff2 = conv(d * g0, g0, 1), conv(g0, g0, 3)

    def forward(self, x):
        f1 = self.sfe1(x)
        f = self.sfe2(f1)
        outs = []
        for b in range(self.d):
            feats = [f]
            for i in range(self.c):
                feats.append(F.relu(getattr(self, f"rdb{b}_conv{i}")(torch.cat(feats, 1))))
            f = f + getattr(self, f"rdb{b}_lff")(torch.cat(feats, 1))
            outs.append(f)
        return f1 + self.gff2(self.gff1(torch.cat(outs, 1)))


# --- attention (attention.cpp) ---------------------------------------------

def pad_size(n):
    return (n + 3) // 4 * 4


def attention_cost(kind, c, h, w, k, s):
    """Total multiply-accumulates, in the same floating-point order as attention_cost() in C++
    (the split search compares them, so ties must break the same way)."""
    hw, ck, cd = float(h * w), float(c) / float(k), float(c)
    per_step = 4 * hw * cd * ck
    ph, pw, ph2, pw2 = s
    if kind == "kel":
        kk = 5.0
        return 2 * hw * cd * kk + hw * cd * kk * kk
    if kind == "sa":
        return per_step + 2 * hw * hw * ck
    if kind == "isa":
        p = float(ph * pw)
        q = hw / p
        return 2 * per_step + (2 * hw * q * ck + 2 * hw * p * ck)
    if kind == "aal":
        p = float(ph * pw)
        q = hw / p
        p2 = float(ph2 * pw2)
        q2 = q / p2
        return 3 * per_step + (2 * hw * q2 * ck + 2 * hw * p2 * ck + 2 * hw * p * ck)
    return 0.0


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def min_cost_split(kind, c, h, w, k):
    best = (1, 1, 1, 1)
    if kind not in ("isa", "aal"):
        return best
    best_cost = math.inf
    for ph in _divisors(h):
        for pw in _divisors(w):
            if kind == "isa":
                s = (ph, pw, 1, 1)
                cost = attention_cost(kind, c, h, w, k, s) * (1 + 1e-9 * abs(float(ph - pw)))
                if cost < best_cost:
                    best_cost, best = cost, s
                continue
            for ph2 in _divisors(h // ph):
                for pw2 in _divisors(w // pw):
                    s = (ph, pw, ph2, pw2)
                    cost = attention_cost(kind, c, h, w, k, s) * (1 + 1e-9 * (abs(float(ph - pw)) + abs(float(ph2 - pw2))))
                    if cost < best_cost:
                        best_cost, best = cost, s
    return best


def _dense(b, h, w):
    return [b, 0, h * w], [0, 1, 2], 1


def _level1(long_range, b, h, w, ph, pw):
    perm = [0, 3, 5, 1, 2, 4] if long_range else [0, 2, 4, 1, 3, 5]
    return [b, 0, h // ph, ph, w // pw, pw], perm, 3


def _level2(long_range, b, h, w, ph, pw, ph2, pw2):
    perm = [0, 4, 7, 3, 6, 1, 2, 5] if long_range else [0, 4, 7, 2, 5, 1, 3, 6]
    return [b, 0, h // (ph * ph2), ph2, ph, w // (pw * pw2), pw2, pw], perm, 5


class AttentionStep(nn.Module):
    """Y = X + gamma Wv[(Wh X) softmax_i((Wf X)_i . (Wg X)_j / sqrt(C/2))] within each group."""

    def __init__(self, c, k):
        super().__init__()
        ck = c // k
        self.wf, self.wg, self.wh, self.wv = nn.Conv2d(c, ck, 1), nn.Conv2d(c, ck, 1), nn.Conv2d(c, ck, 1), nn.Conv2d(ck, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.scale = 1 / math.sqrt(c / 2)

    def forward(self, x, layout):
        view, perm, cpos = layout
        b, _, h, w = x.shape
        inv = [perm.index(i) for i in range(len(perm))]

        def group(t):
            v = list(view)
            v[1] = t.shape[1]
            p = t.reshape(v).permute(perm)
            return p.reshape(math.prod(p.shape[:cpos]), t.shape[1], -1), p.shape

        def ungroup(g, shape):
            s = list(shape)
            s[cpos] = g.shape[1]
            return g.reshape(s).permute(inv).reshape(b, g.shape[1], h, w)

        f, shape = group(self.wf(x))
        g, _ = group(self.wg(x))
        v, _ = group(self.wh(x))
        p = torch.softmax(torch.bmm(g.transpose(1, 2), f) * self.scale, dim=2)  # [G, Qj, Qi]
        return x + self.gamma * self.wv(ungroup(torch.bmm(v, p.transpose(1, 2)), shape))


class AttentionLayer(nn.Module):
    """Any attention kind; names as AttentionLayerImpl (stepN, kel_vertical, kel_horizontal, kel_gamma)."""

    def __init__(self, kind, c, k=2, split=(0, 0, 0, 0), kel_kernel=5):
        super().__init__()
        self.kind, self.c, self.k, self.split, self.kel_kernel = kind, c, k, tuple(split), kel_kernel
        if kind == "kel":
            self.kel_vertical = nn.Conv2d(c, kel_kernel, 3, padding=1)
            self.kel_horizontal = nn.Conv2d(c, kel_kernel, 3, padding=1)
            self.kel_gamma = nn.Parameter(torch.zeros(1))
        for i in range({"none": 0, "kel": 0, "sa": 1, "isa": 2, "aal": 3}[kind]):
            setattr(self, f"step{i}", AttentionStep(c, k))

    def split_for(self, h, w):
        ph, pw, ph2, pw2 = self.split
        if ph > 0 and pw > 0:
            return ph, pw, ph2 or 1, pw2 or 1
        return min_cost_split(self.kind, self.c, h, w, self.k)

    def forward(self, x):
        if self.kind == "none":
            return x
        b, c, h, w = x.shape
        if self.kind == "kel":
            k, r = self.kel_kernel, self.kel_kernel // 2
            kv = torch.softmax(self.kel_vertical(x), 1)
            kh = torch.softmax(self.kel_horizontal(x), 1)
            patches = F.unfold(x, (k, k), padding=r).view(b, c, k, k, h, w)
            kernel = kv.view(b, 1, k, 1, h, w) * kh.view(b, 1, 1, k, h, w)
            return x + self.kel_gamma * (patches * kernel).sum((2, 3))
        if self.kind == "sa":
            return self.step0(x, _dense(b, h, w))
        ph, pw, ph2, pw2 = self.split
        if ph > 0 and pw > 0:
            mh, mw = ph * max(1, ph2), pw * max(1, pw2)
            hp, wp = (h + mh - 1) // mh * mh, (w + mw - 1) // mw * mw
        else:
            hp, wp = pad_size(h), pad_size(w)
        ph, pw, ph2, pw2 = self.split_for(hp, wp)
        y = F.pad(x, (0, wp - w, 0, hp - h)) if (hp, wp) != (h, w) else x
        if self.kind == "isa":
            y = self.step0(y, _level1(True, b, hp, wp, ph, pw))
            y = self.step1(y, _level1(False, b, hp, wp, ph, pw))
        else:
            y = self.step0(y, _level2(True, b, hp, wp, ph, pw, ph2, pw2))
            y = self.step1(y, _level2(False, b, hp, wp, ph, pw, ph2, pw2))
            y = self.step2(y, _level1(False, b, hp, wp, ph, pw))
        return y[:, :, :h, :w]


def _attention(cfg, channels):
    return AttentionLayer(cfg["attention"], channels, cfg["reduction"], (cfg["ph"], cfg["pw"], cfg["ph2"], cfg["pw2"]), cfg["kel_kernel"])


def _conv_block(cin, cout):
    return nn.Sequential(conv(cin, cout, 3), nn.ReLU(), conv(cout, cout, 3), nn.ReLU())


class UNet(nn.Module):
    """U-Net; names as UNetImpl (downL.0, bottom.2, attention, upL.0, ...)."""

    def __init__(self, cin, features, levels, attention=None):
        super().__init__()
        self.levels = levels
        ch = cin
        for l in range(levels):
            setattr(self, f"down{l}", _conv_block(ch, features << l))
            ch = features << l
        self.bottom = _conv_block(ch, features << levels)
        self.attention = attention
        for l in range(levels - 1, -1, -1):
            setattr(self, f"up{l}", _conv_block((features << (l + 1)) + (features << l), features << l))

    def forward(self, x):
        m = 1 << self.levels
        h, w = x.shape[2], x.shape[3]
        hp, wp = (h + m - 1) // m * m, (w + m - 1) // m * m
        y = F.pad(x, (0, wp - w, 0, hp - h), mode="replicate") if (hp, wp) != (h, w) else x
        skips = []
        for l in range(self.levels):
            y = getattr(self, f"down{l}")(y)
            skips.append(y)
            y = F.max_pool2d(y, 2)
        y = self.bottom(y)
        if self.attention is not None:
            y = self.attention(y)
        for l in range(self.levels - 1, -1, -1):
            skip = skips[l]
            y = F.interpolate(y, size=(skip.shape[2], skip.shape[3]), mode="bilinear", align_corners=False)
            y = getattr(self, f"up{l}")(torch.cat([y, skip], 1))
        return y[:, :, :h, :w]


class SSAN(nn.Module):
    """The whole model; `SSAN(config)` with a dict from model_config / config_from_ini / load_pth.
    forward(outer [B, 2, H, W] in [0, 1]) -> interpolated middle slice [B, 1, H, W]."""

    def __init__(self, config):
        super().__init__()
        c = model_config(**config)
        self.config = c
        unet = c["extractor"] in ("unet", "siamese_unet")
        siamese = c["extractor"] in ("siamese_rdn", "siamese_unet")
        bottleneck = c["attention_at"] == "bottleneck"
        if c["branches"] not in (1, 2) or (c["branches"] == 1 and c["fusion"] != "residual"):
            raise ValueError("branches must be 1 or 2; one branch needs residual fusion")
        if bottleneck and not unet:
            raise ValueError("bottleneck attention needs a U-Net extractor")
        if c["fusion"] not in ("mask", "mean", "residual", "mask_residual"):
            raise ValueError(f"unknown fusion {c['fusion']}")
        g0 = c["features"]

        def make():
            if unet:
                att = _attention(c, g0 << c["unet_levels"]) if bottleneck else None
                return UNet(2, g0, c["unet_levels"], att)
            return RDN(2, g0, c["blocks"], c["layers"], c["growth"])

        self.extractor0 = make()
        self.extractor1 = make() if (not siamese and c["branches"] == 2) else None
        self.attention = None if bottleneck else _attention(c, g0)
        self.head = self.mask = self.residual = None
        if c["fusion"] in ("mask", "mean", "mask_residual"):
            self.head = conv(g0, 1, 3)
        if c["fusion"] in ("mask", "mask_residual"):
            self.mask = conv(2 * g0, 1, 3)
        if c["fusion"] == "residual":
            self.residual = conv(g0, 1, 3)
        if c["fusion"] == "mask_residual":
            self.residual = conv(2 * g0, 1, 3)
        with torch.no_grad():  # the C++ zero-initialises these heads (step 0 is close to linear)
            for layer in ([self.residual] if c["fusion"] == "residual" else [self.head, self.residual] if c["fusion"] == "mask_residual" else []):
                layer.weight.zero_()
                layer.bias.zero_()

    def features(self, branch, x):
        ext = self.extractor1 if (branch == 1 and self.extractor1 is not None) else self.extractor0
        f = ext(x)
        return self.attention(f) if self.attention is not None else f

    def forward(self, outer):
        i0, i2 = outer[:, :1], outer[:, 1:2]
        fusion = self.config["fusion"]
        a0 = self.features(0, outer)
        if self.config["branches"] == 1:
            return 0.5 * (i0 + i2) + self.residual(a0)
        a1 = self.features(1, torch.cat([i2, i0], 1))
        if fusion == "residual":
            return 0.5 * (i0 + i2) + 0.5 * (self.residual(a0) + self.residual(a1))
        w0, w1 = i0 + self.head(a0), i2 + self.head(a1)
        if fusion == "mean":
            return 0.5 * (w0 + w1)
        both = torch.cat([a0, a1], 1)
        m = torch.sigmoid(self.mask(both))
        out = m * w0 + (1 - m) * w1
        return out + self.residual(both) if fusion == "mask_residual" else out


# --- files shared with the C++ tools -----------------------------------------

def config_path_for(pth):
    """The JSON config beside a state dict: model.pth -> model.json."""
    root, _ = os.path.splitext(pth)
    return root + ".json"


def load_pth(pth, config=None):
    """A model from `ssan-export` output (or save_pth): state dict + JSON config beside it."""
    if config is None:
        with open(config_path_for(pth)) as f:
            config = json.load(f)["model"]
    model = SSAN(config)
    model.load_state_dict(torch.load(pth, map_location="cpu"))
    return model.eval()


def save_pth(model, pth):
    """Writes what `ssan-train --init-from` reads: a plain dict of tensors (LibTorch's
    unpickler cannot read the OrderedDict that state_dict() returns) and the JSON config."""
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, pth)
    with open(config_path_for(pth), "w") as f:
        json.dump({"format": "emtriplet-ssan", "version": 1, "model": model.config}, f, indent=2)


# --- bench/train_step.sh -------------------------------------------------------

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
    split = tuple(map(int, sys.argv[9:13])) if len(sys.argv) >= 13 else (0, 0, 0, 0)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = SSAN(model_config(features=g0, blocks=d, layers=c, growth=g, ph=split[0], pw=split[1], ph2=split[2], pw2=split[3]))
    vgg = vgg16_features()
    for p in vgg.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    outer, gt = torch.rand(batch, 2, crop, crop), torch.rand(batch, 1, crop, crop)
    times = []
    for s in range(steps + 1):
        t = time.perf_counter()
        opt.zero_grad()
        pred = model(outer)
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

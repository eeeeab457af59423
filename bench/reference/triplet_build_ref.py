#!/usr/bin/python3
"""Plain Python reference of triplet-build's steps, for bench/triplet_build.sh.

The same algorithm as libs/triplets (coarse-to-fine template matching,
integer shifts, centred tile grid, flat/defect/continuity/blur/duplicate
filters, per-volume reference histogram matching) written the way a Python
user would: h5py + OpenCV + NumPy + scikit-image, one process, slice by slice.
Not used by the product; only to measure it against.

usage: triplet_build_ref.py VOLUME.h5 OUT_DIR [--tile 512] [--stride 512]
       [--radius 16] [--min-ncc 0.5] [--shard-size 64]
"""
import argparse, json, os, sys, time

import cv2
import h5py
import numpy as np


def shift_search(ref, mov, radius, cy, cx, window):
    margin = radius + max(abs(cy), abs(cx))
    h = min(ref.shape[0] - 2 * margin, window)
    w = min(ref.shape[1] - 2 * margin, window)
    ty, tx = (ref.shape[0] - h) // 2, (ref.shape[1] - w) // 2
    templ = mov[ty:ty + h, tx:tx + w]
    region = ref[ty + cy - radius:ty + cy + radius + h, tx + cx - radius:tx + cx + radius + w]
    res = cv2.matchTemplate(region, templ, cv2.TM_CCOEFF_NORMED)
    _, mx, _, (lx, ly) = cv2.minMaxLoc(res)

    def refine(l, c, r):
        d = l - 2 * c + r
        return 0.0 if abs(d) < 1e-12 else float(np.clip(0.5 * (l - r) / d, -0.5, 0.5))

    sx = refine(res[ly, lx - 1], res[ly, lx], res[ly, lx + 1]) if 0 < lx < res.shape[1] - 1 else 0.0
    sy = refine(res[ly - 1, lx], res[ly, lx], res[ly + 1, lx]) if 0 < ly < res.shape[0] - 1 else 0.0
    border = lx in (0, res.shape[1] - 1) or ly in (0, res.shape[0] - 1)
    return ly + sy + cy - radius, lx + sx + cx - radius, mx, border


def estimate_shift(a, b, radius, factor=4, window=512, sigma=1.0):
    coarse = factor > 1 and radius >= 2 * factor
    cy = cx = 0
    fine_r, coarse_border = radius, False
    if coarse:
        size = (a.shape[1] // factor, a.shape[0] // factor)
        sa = cv2.resize(a, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        sb = cv2.resize(b, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        y, x, _, coarse_border = shift_search(sa, sb, (radius + factor - 1) // factor, 0, 0, max(sa.shape))
        cy, cx, fine_r = int(round(y * factor)), int(round(x * factor)), factor
    # Smoothed central crop, with room for the kernel (as libs/triplets does).
    kernel = int(np.ceil(4 * sigma)) + 1
    reach = (radius + factor if coarse else radius) + kernel
    h, w = min(a.shape[0], window + 2 * reach), min(a.shape[1], window + 2 * reach)
    oy, ox = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
    fa = cv2.GaussianBlur(a[oy:oy + h, ox:ox + w].astype(np.float32), (0, 0), sigma)
    fb = cv2.GaussianBlur(b[oy:oy + h, ox:ox + w].astype(np.float32), (0, 0), sigma)
    fa, fb = fa[kernel:-kernel, kernel:-kernel], fb[kernel:-kernel, kernel:-kernel]
    y, x, v, fine_border = shift_search(fa, fb, fine_r, cy, cx, window)
    return y, x, v, coarse_border or (not coarse and fine_border) or abs(y) > radius or abs(x) > radius


def structure(t, down=4):
    f = cv2.resize(t, (t.shape[1] // down, t.shape[0] // down), interpolation=cv2.INTER_AREA).astype(np.float32)
    f = cv2.GaussianBlur(f, (0, 0), 1.0)
    return (f - f.mean()) / max(f.std(), 1e-6)


def ncc(a, b):
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    d = np.sqrt((a * a).mean() * (b * b).mean())
    return 0.0 if d < 1e-18 else float((a * b).mean() / d)


def sharpness(t):
    f = cv2.GaussianBlur(t, (7, 7), 1.0)
    return float(cv2.Laplacian(f, cv2.CV_16S).std() ** 2)


def evaluate(tiles, o):
    flat = 0.0
    level = 0.0
    for t in tiles:
        b = o["flat_block"]
        h, w = t.shape[0] // b * b, t.shape[1] // b * b
        blocks = t[:h, :w].reshape(h // b, b, w // b, b).astype(np.float64)
        sd = blocks.std(axis=(1, 3))
        frac = float((sd < o["flat_std"]).mean())
        if frac > flat:
            flat = frac
            level = float(blocks.mean(axis=(1, 3))[sd < o["flat_std"]].mean())
    if flat > o["max_flat_fraction"]:
        return "padding" if level < 8 else "blank"
    s = [structure(t) for t in tiles]
    med = np.median(np.stack(s), axis=0)
    anomalous = np.zeros(med.shape, bool)
    for si in s:
        anomalous |= np.abs(si - med) > o["defect_residual"]
    if anomalous.mean() > o["max_defect_fraction"]:
        return "defect"
    if min(ncc(s[0], s[1]), ncc(s[2], s[1])) < o["min_ncc"]:
        return "continuity"
    sh = [sharpness(t) for t in tiles]
    if (max(sh) / min(sh) if min(sh) > 0 else 1e9) > o["max_blur_ratio"]:
        return "blur"
    if max(ncc(tiles[0], tiles[1]), ncc(tiles[2], tiles[1])) > o["duplicate_ncc"]:
        return "duplicate"
    return None


def match_lut(src_hist, ref_hist):
    """skimage.exposure.match_histograms' rule, as a 256-entry table."""
    tmpl_values = np.nonzero(ref_hist)[0]
    tmpl_q = np.cumsum(ref_hist[tmpl_values]) / ref_hist.sum()
    src_q = np.cumsum(src_hist) / max(src_hist.sum(), 1)
    lut = np.clip(np.rint(np.interp(src_q, tmpl_q, tmpl_values)), 0, 255).astype(np.uint8)
    lut[0] = 0
    return lut


def origins(lo, hi, tile, stride):
    span = hi - lo
    if span < tile:
        return []
    n = (span - tile) // stride + 1
    off = lo + (span - tile - (n - 1) * stride) // 2
    return [off + i * stride for i in range(n)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("volume")
    p.add_argument("out")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--stride", type=int, default=512)
    p.add_argument("--radius", type=int, default=16)
    p.add_argument("--min-ncc", type=float, default=0.5)
    p.add_argument("--shard-size", type=int, default=64)
    a = p.parse_args()
    o = dict(flat_block=16, flat_std=1.0, max_flat_fraction=0.01, defect_residual=2.0, max_defect_fraction=0.004,
             min_ncc=a.min_ncc, max_blur_ratio=2.0, duplicate_ncc=0.985)
    t0 = time.time()
    os.makedirs(a.out, exist_ok=True)
    vol = h5py.File(a.volume, "r")["volumes/raw"]
    depth, height, width = vol.shape
    T = a.tile
    # Phase 1: histograms and forward shifts.
    hists, fwd = {}, {}
    prev = vol[0]
    for z in range(depth):
        cur = prev
        h = np.bincount(cur.ravel(), minlength=256).astype(np.float64)
        h[0] = 0
        hists[z] = h
        if z + 1 < depth:
            nxt = vol[z + 1]
            fwd[z] = estimate_shift(cur, nxt, a.radius)
            prev = nxt
    # Reference histogram: 16 evenly spaced slices, outliers dropped.
    n = min(16, depth)
    idx = [i * (depth - 1) // (n - 1) for i in range(n)] if n > 1 else [depth // 2]
    stats = []
    for z in idx:
        h = hists[z]
        tot = h.sum()
        mean = (h * np.arange(256)).sum() / tot if tot else 0
        sd = np.sqrt(max(0, (h * np.arange(256) ** 2).sum() / tot - mean ** 2)) if tot else 0
        stats.append((tot, mean, sd))
    good = [s for s in stats if s[0] > 0 and s[2] > 1]
    mm, sm = np.median([s[1] for s in good]), np.median([s[2] for s in good])
    ref = np.zeros(256)
    for z, (tot, mean, sd) in zip(idx, stats):
        if tot > 0 and sd > 1 and abs(mean - mm) <= 0.25 * mm and abs(sd - sm) <= 0.25 * sm:
            ref += hists[z] / tot
    luts = {z: match_lut(h, ref) for z, h in hists.items()}
    # Phase 2: triplets.
    accepted, rejected, shard, nshards = [], {}, [], 0

    def flush():
        nonlocal shard, nshards
        with h5py.File(os.path.join(a.out, "shard-%05d.h5" % nshards), "w") as f:
            f.create_dataset("triplets", data=np.stack([s[0] for s in shard]), chunks=(1, 3, T, T))
            f.create_dataset("meta/z", data=np.array([s[1] for s in shard], np.int64))
            f.create_dataset("meta/yx", data=np.array([s[2] for s in shard], np.int64))
        nshards += 1
        shard = []

    for z in range(1, depth - 1):
        s0, s1, s2 = vol[z - 1], vol[z], vol[z + 1]
        b, f = fwd[z - 1], fwd[z]
        dy = [-int(round(b[0])), 0, int(round(f[0]))]
        dx = [-int(round(b[1])), 0, int(round(f[1]))]
        bad = b[3] or f[3]
        dy = [int(np.clip(v, -a.radius, a.radius)) for v in dy]
        dx = [int(np.clip(v, -a.radius, a.radius)) for v in dx]
        ys = origins(max(0, dy[0], dy[2]), min(height, height + dy[0], height + dy[2]), T, a.stride)
        xs = origins(max(0, dx[0], dx[2]), min(width, width + dx[0], width + dx[2]), T, a.stride)
        for y in ys:
            for x in xs:
                tiles = [s[y - dy[i]:y - dy[i] + T, x - dx[i]:x - dx[i] + T] for i, s in enumerate((s0, s1, s2))]
                reason = evaluate(tiles, o) or ("alignment" if bad else None)
                if reason:
                    rejected[reason] = rejected.get(reason, 0) + 1
                    continue
                matched = np.stack([luts[z - 1 + i][t] for i, t in enumerate(tiles)])
                shard.append((matched, z, (y, x)))
                accepted.append(1)
                if len(shard) == a.shard_size:
                    flush()
    if shard:
        flush()
    secs = time.time() - t0
    mb = depth * height * width / 1e6
    print(json.dumps({"triplets": len(accepted), "rejected": rejected, "shards": nshards, "seconds": secs, "mb_per_s": mb / secs}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Time-to-quality figure from bench/quality/run.sh results (a benchmark
plot, not product code): held-out whole-slice PSNR against training budget
minutes, one line per configuration, the baselines as horizontal lines.

usage: plot.py RESULTS.jsonl OUT.png [DATASET]
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    results, out = sys.argv[1], sys.argv[2]
    dataset = sys.argv[3] if len(sys.argv) > 3 else "flyem"
    rows = [json.loads(line) for line in open(results) if line.strip()]
    rows = [r for r in rows if r["dataset"] == dataset]
    if not rows:
        sys.exit(f"plot.py: no results for {dataset} in {results}")
    fig, (ax_psnr, ax_sharp) = plt.subplots(1, 2, figsize=(12, 4.5))
    configs = sorted({(r["config"], r["budget_minutes"]) for r in rows}, key=lambda c: (c[1], c[0]))
    for name, budget in configs:
        pts = sorted((r["at_minutes"], r["psnr"], r["sharpness_ratio"]) for r in rows if r["config"] == name and r["budget_minutes"] == budget)
        label = f"{name} ({budget:g} min budget)"
        ax_psnr.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax_sharp.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=label)
    base = rows[-1]["baselines"]
    styles = {"linear": ("tab:red", "--"), "flow": ("tab:green", "--"), "blur": ("tab:purple", ":")}
    for method, (colour, style) in styles.items():
        if method in base:
            ax_psnr.axhline(base[method]["psnr"], color=colour, linestyle=style, label=method)
            ax_sharp.axhline(base[method]["sharpness_ratio"], color=colour, linestyle=style, label=method)
    clock = rows[-1]["clock"]
    for ax, what in ((ax_psnr, "held-out PSNR (dB)"), (ax_sharp, "sharpness ratio (1 = the truth's)")):
        ax.set_xlabel(f"training minutes ({clock} clock, {rows[-1]['threads']} thread(s))")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    ax_psnr.set_title(f"{dataset}: whole held-out slices via ssan-interpolate")
    ax_sharp.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()

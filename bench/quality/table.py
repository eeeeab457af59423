#!/usr/bin/python3
"""Markdown results table from bench/quality/run.sh results (docs/training.md):
one row per configuration (its end-of-budget checkpoint), the baselines below.

usage: table.py RESULTS.jsonl [DATASET]
"""
import json
import sys


def main():
    dataset = sys.argv[2] if len(sys.argv) > 2 else "flyem"
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    rows = [r for r in rows if r["dataset"] == dataset]
    if not rows:
        sys.exit(f"table.py: no results for {dataset}")
    last = {}
    for r in rows:
        if r["checkpoint"] == "last":
            last[(r["config"], r["budget_minutes"])] = r  # a rerun replaces an earlier row
    base = rows[-1]["baselines"]
    print(f"| method ({dataset}, {rows[-1]['slices']} held-out slices) | budget | steps | samples / budget s | PSNR dB | SSIM | IE | sharpness |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, budget), r in sorted(last.items(), key=lambda kv: -kv[1]["psnr"]):
        rate = r.get("samples_per_budget_s", r["steps"] * 3 / (r["at_minutes"] * 60))
        print(f"| {name} | {budget:g} {r['clock']}-min x {r['threads']} thread | {r['steps']} | {rate:.1f} | "
              f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['ie']:.2f} | {r['sharpness_ratio']:.2f} |")
    for method in ("linear", "flow", "blur"):
        if method in base:
            b = base[method]
            label = f"best blur (sigma {b['sigma']:g})" if method == "blur" else method
            print(f"| {label} | | | | {b['psnr']:.2f} | {b['ssim']:.3f} | {b['ie']:.2f} | {b['sharpness_ratio']:.2f} |")


if __name__ == "__main__":
    main()

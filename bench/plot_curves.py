"""Draw the fine-tuning curves written by ``bench/finetune_curves.py``.

Two panels (validation mean per-dimension Spearman and RSA against training step), one
line per recipe, the frozen-probe reference as a dashed line where given.

Usage: python bench/plot_curves.py results/curves/*.jsonl --out docs/figures/finetune_curves.png [--probe-rsa 0.30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--out", default="docs/figures/finetune_curves.png")
    parser.add_argument("--probe-rsa", type=float, default=None, help="the probe's validation RSA, drawn for reference")
    parser.add_argument("--probe-spearman", type=float, default=None)
    args = parser.parse_args()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for path in args.files:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        val = sorted((r for r in rows if r["split"] == "validation"), key=lambda r: r["step"])
        if not val:
            continue
        label = val[0].get("label", val[0]["tag"])
        for ax, key in zip(axes, ("mean_spearman", "rsa")):
            ax.plot([r["step"] for r in val], [r[key] for r in val], marker="o", label=label)
    for ax, key, ref in zip(
        axes,
        ("mean Spearman (validation concepts)", "RSA, study recipe (validation concepts)"),
        (args.probe_spearman, args.probe_rsa),
    ):
        if ref is not None:
            ax.axhline(ref, color="black", linestyle="--", linewidth=1, label="frozen probe (best layer)")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

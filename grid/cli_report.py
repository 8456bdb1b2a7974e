"""``egrid report``: figures, an HTML page and a terminal summary of a run or evaluation folder."""

from __future__ import annotations

import argparse

from embodiment.errors import InputError


def cmd_report(args: argparse.Namespace) -> int:
    """HTML page, PNG/SVG figures and a terminal summary for a run or evaluation folder."""
    from grid.report import FigureOptions, build_report, summary_text

    concepts: int | list[str]
    if not str(args.concepts).isdigit():
        concepts = [w.strip() for w in str(args.concepts).split(",") if w.strip()]
    elif int(args.concepts) < 3:
        raise InputError(f"expected at least 3 concepts for the RDM heatmaps, got {args.concepts}", key="--concepts")
    else:
        concepts = int(args.concepts)
    report = build_report(args.folder, args.out, FigureOptions(concepts=concepts, seed=args.seed))
    print(summary_text(report))
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="figures and an HTML page from a run or evaluate-ratings folder",
        description="Write FOLDER/report/index.html with PNG and SVG figures (per-dimension Spearman, "
        "RSA by subset and layer, the transfer matrix, RDM heatmaps, word-wise similarity, "
        "the search) and print a summary. Works on partial runs and marks what is missing.",
    )
    p.add_argument("folder", help="a run folder (egrid run prints it) or an evaluate-ratings --out folder")
    p.add_argument("--out", default=None, help="report folder [FOLDER/report]")
    p.add_argument(
        "--concepts",
        default="30",
        help="concepts in the RDM heatmaps: a count drawn at random, or comma-separated words [%(default)s]",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the concept draw [%(default)s]")
    p.set_defaults(func=cmd_report)

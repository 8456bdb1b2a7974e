"""``egrid status``: a run's trials, their states, steps and losses, and the best so far
(a run folder or a storage URI; Tune's state is read as JSON, never unpickled)."""

from __future__ import annotations

import argparse
import sys
import time

from embodiment.errors import InputError
from grid.location import RunLocation


def _status_text(run: str) -> tuple[str, str]:
    """The status page of a run and its status word (running, finished, failed ...)."""
    import pandas as pd

    from grid.objectives import best_trials
    from grid.results import ResultsStore

    manifest = read_manifest(run)
    trials = ResultsStore(run).read("trials")
    lines = [f"run {manifest['run_name']}: {manifest.get('status')} (updated {manifest.get('updated')})"]
    live = []
    tune_dir = RunLocation.of(run).child("tune")
    if RunLocation(tune_dir).exists():
        from grid.internals import read_trial_states

        try:
            for t in read_trial_states(tune_dir):
                last, config, training = t["last_result"], t["config"], t["training"]
                params = {k: v for k, v in config.items() if k not in ("condition", "model")}
                live.append(
                    {
                        "trial_id": t["trial_id"],
                        "state": t["status"],
                        "condition": config.get("condition"),
                        **params,
                        "step": training.get("step"),
                        "loss": training.get("loss"),
                        "eval_score": last.get("eval_score"),
                        "failures": t["num_failures"],
                    }
                )
        except (OSError, ValueError) as exc:  # caught mid-write by Tune: the next refresh reads it
            lines.append(f"  (tune state not readable right now: {type(exc).__name__})")
    if live:
        frame = pd.DataFrame(live)
        counts = frame["state"].str.lower().value_counts().sort_index()
        lines.append("  trials: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        lines.append(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"))
    elif len(trials):
        lines.append(f"  trials: {len(trials)} recorded")
    if len(trials) and "eval_score" in trials:
        best = best_trials(trials)
        if len(best):
            lines.append("best per objective:")
            lines.append(
                best[["format", "trial_id", "eval_score"]].to_string(index=False, float_format=lambda v: f"{v:.3f}")
            )
    return "\n".join(lines), str(manifest.get("status"))


def cmd_status(args: argparse.Namespace) -> int:
    """Trials, their states, steps and losses and the best so far; ``--watch`` refreshes until the run ends."""
    while True:
        text, status = _status_text(args.run)
        if args.watch and sys.stdout.isatty():
            print("\033[H\033[J", end="")  # redraw in place
        print(
            text
            + (f"\n(refreshing every {args.watch:g} s; Ctrl-C to stop)" if args.watch and status == "running" else ""),
            flush=True,
        )
        if not args.watch or status != "running":
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def read_manifest(run_dir: str) -> dict:
    """A run's manifest (a folder or a storage URI).

    Raises:
        InputError: the folder holds none.
    """
    from grid.results import ResultsStore

    manifest = ResultsStore(run_dir).read_json("manifest.json")
    if manifest is None:
        raise InputError("not a run folder: no manifest.json (give the folder `egrid run` printed)", source=run_dir)
    return manifest

"""Claim 4: wall time of a small grid's Tune stage vs the ideal (sum of trial times /
parallel slots), on the local Ray, tiny model, measured in one run.

Each trial's own time (train under Ray Train + DeepSpeed, then Ray Data evaluation) is
taken from the trials table; the ideal packs them perfectly into the slots.
Usage: python bench/bench_grid_overhead.py [--trials 4] [--slots 2] [--steps 30]
Target: Tune stage <= 1.2x the ideal.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    from embodiment.models.tiny import save_tiny_model
    from grid.runner import run_job
    from grid.job_file import load_job

    work = Path(tempfile.mkdtemp(prefix="egrid-bench-grid-"))
    model = save_tiny_model(work / "tiny", hidden=64, layers=2)
    lrs = [1e-3 * (i + 1) for i in range(args.trials)]
    job = {
        "name": "bench-grid",
        "models": [model],
        "norms": {"en": {"source": "embedded", "max_train": 200, "max_test": 40}},
        "training": {"steps": args.steps, "batch_size": 8, "lora": True, "engine": "deepspeed"},
        "search": {"learning_rate": {"grid": lrs}},
        "evaluation": {"layers": [2], "n_boot": 10},
        "resources": {"workers": 1, "cpus_per_worker": 1, "max_concurrent_trials": args.slots},
        "storage": str(work / "runs"),
    }
    (work / "job.yaml").write_text(yaml.safe_dump(job))
    summary = run_job(load_job(work / "job.yaml"), num_cpus=args.slots, say=lambda m: None)
    manifest = json.loads((Path(summary["run_dir"]) / "manifest.json").read_text())
    trials = summary["trials"]
    ideal = trials["seconds"].sum() / args.slots
    wall = manifest["tune_seconds"]
    print(
        f"{len(trials)} trials, {args.slots} slots ({os.cpu_count()} cores); trial seconds: "
        + ", ".join(f"{s:.1f}" for s in trials["seconds"])
    )
    print(f"{'':<30} {'seconds':>8}")
    print(f"{'ideal (sum / slots)':<30} {ideal:8.1f}")
    print(f"{'Tune stage wall time':<30} {wall:8.1f}")
    print(f"ratio: Tune stage / ideal = {wall / ideal:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()

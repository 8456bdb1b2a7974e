"""The chaos run's job (built in, or a finished run's) and its comparison with the
uninterrupted run: rows lost and duplicated per table, and the largest metric difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

KEYS = {
    "ratings": ["trial_id", "concept", "dimension"],
    "embeddings": ["trial_id", "concept", "layer", "pooling"],
    "trials": ["trial_id"],
}
#: metrics of a resumed run equal the uninterrupted run's to this: a batch scored in another
#: process can differ in float32's last bits, which reorders near-tied distances of the tiny
#: model's nearly flat ratings in an RSA (the fault tests measured up to 6e-4)
METRIC_TOLERANCE = 5e-3


def chaos_job(work: Path, trials: int) -> Path:
    """The job every chaos run uses: a tiny saved model, ``trials`` learning rates, 9 steps, checkpoints every 3."""
    from embodiment.models.tiny import save_tiny_model

    job = {
        "name": "chaos",
        "models": [save_tiny_model(work / "tiny", hidden=32, layers=2, heads=4)],
        "norms": {"en": {"source": "embedded", "max_train": 40, "max_test": 20, "validation": 10}},
        "conditions": [{"name": "rating_en", "format": "rating", "languages": ["en"]}],
        "training": {
            "lora": True,
            "lora_rank": 4,
            "steps": 9,
            "batch_size": 4,
            "checkpoint_every": 3,
            "engine": "deepspeed",
        },
        "search": {"learning_rate": {"grid": [1e-3 * (i + 1) for i in range(trials)]}},
        "tune": {"max_failures": 100},
        "evaluation": {"subsets": ["all"], "layers": [2], "n_boot": 10},
        "resources": {"workers": 1, "cpus_per_worker": 1, "max_concurrent_trials": 2},
        "seed": 0,
        "storage": str(work / "runs"),
    }
    path = work / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def job_of_reference(work: Path, reference: str) -> tuple[Path, str]:
    """The job of a finished run, written to ``work`` with its storage there: the chaos run's
    job, compared with that run. Returns the job file and the reference's run folder.

    Raises:
        InputError: the folder holds no finished egrid run.
    """
    from embodiment.errors import InputError
    from grid.results import ResultsStore

    manifest = ResultsStore(reference).read_json("manifest.json")
    if not manifest or "job" not in manifest:
        raise InputError("no egrid run here (manifest.json with its job)", source=reference)
    if manifest.get("status") != "finished":
        raise InputError(f"the reference run is {manifest.get('status')!r}, not finished", source=reference)
    job = {**manifest["job"], "storage": str(work / "runs")}
    work.mkdir(parents=True, exist_ok=True)
    path = work / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path, reference


def tables_of(run_dir: str) -> dict[str, pd.DataFrame]:
    from grid.results import ResultsStore

    store = ResultsStore(run_dir)
    return {t: store.read(t) for t in (*KEYS, "metrics")}


def _trial_labels(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Trial id -> what the trial was (its learning rate): ids differ between two runs of a job."""
    import json

    labels = {row.trial_id: f"lr={json.loads(row.config)['learning_rate']}" for row in tables["trials"].itertuples()}
    return {"base": "base", **labels}


def _comparable_metrics(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    m = tables["metrics"].assign(trial=lambda f: f["trial_id"].map(_trial_labels(tables)))
    cols = ["trial", "metric", "subset", "dimension", "layer"]
    return m.sort_values(cols, na_position="first")[cols + ["value"]].reset_index(drop=True)


def count_rows(tables: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]) -> tuple[int, int]:
    """(rows lost, rows duplicated) over the keyed tables: a row of the uninterrupted run
    whose key (trial by what it was) is missing counts as lost; a key twice, duplicated."""
    lost = duplicated = 0
    for table, keys in KEYS.items():
        mine, theirs = tables[table], reference[table]
        if mine.empty:
            mine = pd.DataFrame(columns=keys)
        label = ["trial", *keys[1:]]
        mine_keys = mine.assign(trial=mine["trial_id"].map(_trial_labels(tables)))[label]
        their_keys = theirs.assign(trial=theirs["trial_id"].map(_trial_labels(reference)))[label].drop_duplicates()
        unique = mine_keys.drop_duplicates()
        missing = len(their_keys.merge(unique, how="left", indicator=True).query("_merge == 'left_only'"))
        lost += missing
        duplicated += len(mine_keys) - len(unique)
        print(f"{table:<11} rows {len(mine):6d}  uninterrupted run {len(their_keys):6d}  missing {missing}")
    return lost, duplicated


def metrics_gap(tables: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]) -> float:
    """The largest absolute difference between the two runs' metrics (trials matched by what
    they were); NaN when either has none or they hold different metrics."""
    if tables["metrics"].empty or reference["metrics"].empty:
        return float("nan")
    mine, theirs = _comparable_metrics(tables), _comparable_metrics(reference)
    if not mine[["trial", "metric", "subset"]].equals(theirs[["trial", "metric", "subset"]]):
        return float("nan")
    return float(np.nanmax(np.abs(mine["value"].to_numpy(float) - theirs["value"].to_numpy(float))))

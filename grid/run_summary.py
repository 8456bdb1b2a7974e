"""The aggregate stage of a run and ``egrid aggregate``: metrics and transfer tables from
a run's stored tables (no Ray, no model), and the summary a run prints."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd

from embodiment.errors import InputError
from grid.hidden_states import EmbeddingLayers
from grid.ray_session import versions
from grid.results import ResultsStore
from grid.schema import TABLES
from grid.spec import JobSpec


def aggregate_stage(spec: JobSpec, store: ResultsStore, data: dict, say, write) -> dict[str, pd.DataFrame]:
    """The metrics and transfer tables from the run's stored tables (no Ray, no model):
    the last stage of a run, and all of ``egrid aggregate``. ``write(table, frame)``
    stores each non-empty table under the key ``aggregate``."""
    from grid.aggregate import aggregate, trained_on

    tables = {t: store.read(t) for t in ("ratings", "head_ratings", "choices", "trials")}
    tables["embeddings"] = EmbeddingLayers(store=store)  # read a layer at a time by the aggregate
    agg = aggregate(
        tables,
        rsa_recipe=spec.evaluation.rsa_recipe,
        subsets=tuple(spec.evaluation.subsets),
        n_boot=spec.evaluation.n_boot,
        seed=spec.seed,
        train_norms={lang: d.train for lang, d in data.items()},
        progress=say,
        paired=spec.evaluation.paired,
        trained=trained_on(spec.conditions, {lang: list(d.train.dimensions) for lang, d in data.items()}),
    )
    for table, frame in agg.items():
        if len(frame):
            write(table, frame)
    return agg


def reaggregate(run_dir: str, say=print) -> dict:
    """Recompute a run's ``metrics`` and ``transfer`` tables with this version of egrid,
    from its stored ratings, embeddings and choices (after an upgrade that adds a metric or
    a CI, or on a partial run). Nothing is trained or scored again; the manifest keeps the
    run's own times and records the recomputation under ``aggregated``.

    Raises:
        InputError: the folder is not a run folder, or holds no ratings yet.
    """
    from grid.data import prepare_norms
    from grid.spec import parse_job

    store = ResultsStore(run_dir)
    manifest = store.read_json("manifest.json")
    if manifest is None or "job" not in manifest:
        raise InputError(
            "not a run folder: no manifest.json with its job (give the folder `egrid run` printed)", source=run_dir
        )
    if not store.keys("ratings"):
        raise InputError("no ratings written yet: nothing to aggregate (the baseline writes the first)", source=run_dir)
    spec = parse_job(manifest["job"], manifest.get("job_file", "<job>"))
    started = time.time()
    say(f"aggregate: {run_dir} (metrics, RSA, transfer tables from its stored tables)")
    aggregate_stage(
        spec,
        store,
        prepare_norms(spec.norms, spec.seed),
        say,
        write=lambda table, frame: store.write(table, "aggregate", frame),
    )
    manifest.setdefault("aggregated", []).append(
        {
            "at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "seconds": round(time.time() - started, 1),
            "versions": versions(),
        }
    )
    store.write_json("manifest.json", manifest)
    return finished_summary(run_dir, store)


def summary_of(run_dir: str, metrics: pd.DataFrame, transfer: pd.DataFrame, trials: pd.DataFrame) -> dict:
    """What ``egrid run`` and ``aggregate`` print and report: the tables, the best trials
    and (with several objectives) their paired differences."""
    from grid.objectives import best_trials, job_differences, several_objectives

    differences = pd.DataFrame()
    if several_objectives(trials):  # the paired bootstraps, once: the summary prints them, the report shows them
        store = ResultsStore(run_dir)
        differences = job_differences(
            {"ratings": store.read("ratings"), "choices": store.read("choices"), "trials": trials},
            (store.read_json("manifest.json") or {}).get("job"),
        )
    return {
        "run_dir": run_dir,
        "metrics": metrics,
        "transfer": transfer,
        "trials": trials,
        "best": best_trials(trials),
        "differences": differences,
        "tables": {t: f"{run_dir}/tables/{t}" for t in TABLES},
    }


def finished_summary(run_dir: str, store: ResultsStore) -> dict:
    """:func:`summary_of` a run from its stored tables."""
    return summary_of(run_dir, store.read("metrics"), store.read("transfer"), store.read("trials"))

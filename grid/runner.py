"""Running a job: start (or join) Ray, then the baseline, tune and aggregate stages.

Every stage skips work whose rows are already in the tables, so ``egrid resume`` (or
simply running the same job again) finishes an interrupted run without redoing or
duplicating anything. The run folder is ``<storage>/<job name>-<spec hash>``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from embodiment.errors import InputError, StorageError
from grid import progress as progress_mode
from grid.console import ci_text
from grid.internals import is_tune_experiment_state
from grid.location import RunLocation
from grid.node_cache import exists
from grid.schema import TABLES
from grid.results import ResultsActor, ResultsStore, _filesystem
from grid.spec import JobSpec
from grid.storage_guard import probe, repair_state, state_files
from grid.tune_state import check_tune_state, tune_state_digest

# One namespace for every egrid driver, so a resumed driver finds the run's detached
# results actor by name instead of starting a second one.
NAMESPACE = "egrid"
#: the Hugging Face switches that keep a process off the network
HUB_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
WORKER_ENV = {"TOKENIZERS_PARALLELISM": "false", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "1"),
              # In a grid a trial's workers often wait for CPUs/GPUs that other trials'
              # training or evaluation hold: waiting is normal, not a failure.
              "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": os.environ.get("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "3600")}
#: passed on to the workers of a Ray this driver starts or joins, where set: where named
#: datasets (wu2026:train) are cached and the offline folder they are read from
DRIVER_ENV_PASSED = ("EGRID_DATA_DIR", "EGRID_CACHE")


def versions() -> dict:
    """Package versions, git hash and machine: the provenance every run records."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "machine": platform.platform(), "host": platform.node()}
    for pkg in ("embodiment-grid", "torch", "transformers", "peft", "deepspeed", "ray", "numpy", "scipy", "pyarrow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    try:
        out["git"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                    cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    return out


def hub_env(allow_download: bool) -> dict[str, str]:
    """The workers' Hugging Face network switches: offline unless the job allows downloads
    and the driver's own environment does not say offline (then each node downloads a hub
    model once into its own cache)."""
    offline = not allow_download or any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in HUB_OFFLINE)
    return {k: "1" if offline else "0" for k in HUB_OFFLINE}


def init_ray(address: str | None = None, *, num_cpus: int | None = None, dashboard_host: str = "127.0.0.1",
             extra_env: dict[str, str] | None = None):
    """Join a cluster at ``address`` or start a local Ray (dashboard on localhost only).

    ``extra_env`` joins the workers' environment (e.g. how they show progress).
    """
    import ray

    if ray.is_initialized():
        return
    passed = {k: os.environ[k] for k in DRIVER_ENV_PASSED if os.environ.get(k)}
    env = {"env_vars": {**WORKER_ENV, **passed, **(extra_env or {})}}
    if address:
        if os.environ.get("EGRID_SUBMITTED"):  # a Jobs-API driver: the job's runtime env applies
            ray.init(address=address, log_to_driver=True, namespace=NAMESPACE)
        else:
            ray.init(address=address, runtime_env=env, log_to_driver=True, namespace=NAMESPACE)
        return
    if dashboard_host not in ("127.0.0.1", "localhost"):
        print(f"egrid: warning: Ray dashboard bound to {dashboard_host}: anyone who reaches it can run code on this "
              "machine; Ray's dashboard has no authentication unless you configure it", file=sys.stderr)
    # The dashboard (State API, job API; started where ray[default] is installed) listens
    # on localhost only unless asked otherwise.
    # address="local": always a new local Ray, even where `ray start` left one running.
    ray.init(address="local", num_cpus=num_cpus or max(2, os.cpu_count() or 2), include_dashboard=None, dashboard_host=dashboard_host,
             runtime_env=env, log_to_driver=True, namespace=NAMESPACE)


def results_actor(run_dir: str, run_name: str):
    """The run's named results actor, created or found; restarts rebuild from disk.

    Named by the run and its folder: the same job run into two storages on one cluster
    (a reference run beside a rerun) gets two actors, each writing its own folder.
    """
    import hashlib

    import ray

    name = f"egrid-results-{run_name}-{hashlib.sha256(run_dir.encode()).hexdigest()[:10]}"
    cls = ray.remote(ResultsActor).options(name=name, get_if_exists=True, max_restarts=-1, max_task_retries=-1,
                                           num_cpus=0, lifetime="detached")
    actor = cls.remote(run_dir)
    ray.get(actor.ping.remote())
    return actor, name


def run_job(spec: JobSpec, *, address: str | None = None, storage: str | None = None, resume: bool = False,
            num_cpus: int | None = None, dashboard_host: str = "127.0.0.1", say=progress_mode.say,
            progress: str | None = None, run_dir: str | None = None, trust_tune_state: bool = False) -> dict:
    """Run (or finish) a job end to end.

    ``progress`` (``auto``, ``plain``, ``live``; see :mod:`grid.progress`) says how Ray Data,
    Tune and Train show progress; ``auto`` prints plain lines unless stdout is a terminal.

    Whatever fails, if the run folder cannot be written at that point (disk full,
    read-only, no permission) the error raised is :class:`StorageError`, which says so
    and how to resume; a :class:`StorageGuard` stops the Tune stage as soon as it happens.

    ``run_dir`` names the run folder itself (``egrid resume FOLDER``); by default it is
    ``<storage>/<name>-<hash of the spec>``. ``trust_tune_state`` lets a resume read a
    ``tuner.pkl`` whose digest egrid never recorded (see :func:`check_tune_state`).

    Returns:
        A summary dict: run_dir, tables (name -> folder), metrics frame, trials frame.
    """
    run_dir = str(RunLocation.of(run_dir or spec.run_dir(storage)))
    progress_env = progress_mode.apply(progress_mode.resolve(progress))
    try:
        return _run_job(spec, run_dir, address=address, resume=resume, num_cpus=num_cpus, dashboard_host=dashboard_host,
                        say=say, progress_env=progress_env, trust_tune_state=trust_tune_state)
    except StorageError:
        raise
    except Exception as exc:
        failure = probe(run_dir)
        if failure is not None:
            raise StorageError(run_dir, failure) from exc
        raise


def _say_baseline(spec: JobSpec, data: dict, evaluated: dict, say) -> None:
    """The base model's held-out figures (and the probe's) as soon as they exist, long
    before the trials finish: the first numbers of a run."""
    from grid.aggregate import aggregate, probe_layer

    agg = aggregate(evaluated, rsa_recipe=spec.evaluation.rsa_recipe, subsets=("all",), n_boot=spec.evaluation.n_boot,
                    seed=spec.seed, train_norms={lang: d.train for lang, d in data.items()})
    m = agg["metrics"]
    if m.empty:
        return
    for lang, part in m.groupby("language", sort=False):
        rsa_all = part[(part["metric"] == "rsa") & (part["subset"] == "all")]
        sp = part[part["metric"] == "spearman"]
        if len(rsa_all):
            say(f"baseline ({lang}, {int(rsa_all['n'].iloc[0])} held-out concepts): RSA {ci_text(rsa_all.iloc[0])}, "
                f"mean Spearman {sp['value'].mean():.3f}")
        layer = probe_layer(part, lang)
        probe = part[(part["metric"] == "probe_rsa") & (part["subset"] == "all") & (part["layer"] == layer)]
        if len(probe):
            say(f"frozen probe ({lang}, ridge on layer {layer} of the base model, the layer of least cross-validated "
                f"error on the {len(data[lang].train)} training concepts): RSA {ci_text(probe.iloc[0])}")


def _check_same_job(manifest: dict | None, spec: JobSpec, run_dir: str, resume: bool) -> None:
    """Refuse to mix two jobs' results in one folder. A folder resumed as itself (its
    manifest's job, as written) may carry the hash of an earlier egrid version."""
    if not manifest or manifest.get("fingerprint") == spec.fingerprint():
        return
    if resume and manifest.get("job") == spec.raw:
        return
    raise InputError(f"{run_dir} holds another job (spec hash {manifest.get('fingerprint')}); refusing to mix results",
                     source=spec.source)


def _evaluate_base_models(spec: JobSpec, data: dict, actor, say) -> None:
    """Stage 1: each untrained model on the evaluation suite (best-only formats included:
    the base is what every trial is read against); a resumed run skips what is written."""
    import ray

    from grid.pipeline import evaluate_model

    for model in spec.models:
        key = f"base:{model}"
        if ray.get(actor.has.remote("ratings", key)) or ray.get(actor.has.remote("choices", key)):
            say(f"stage 1/3 baseline: {model} already evaluated, skipped")
            continue
        say(f"stage 1/3 baseline: evaluating {model} on {sum(len(d.test) for d in data.values())} held-out concepts (Ray Data)")
        evaluated = evaluate_model(spec, model, None, data, probe=spec.evaluation.probe != "none",
                                   formats=[*spec.evaluation.formats, *spec.evaluation.best_only])
        for table, frame in evaluated.items():
            ray.get(actor.write.remote(table, key, frame.assign(trial_id="base", condition="base", model=model)))
        _say_baseline(spec, data, {t: f.assign(trial_id="base", model=model) for t, f in evaluated.items()}, say)


def _evaluate_best_trials(spec: JobSpec, data: dict, store: ResultsStore, actor, say) -> None:
    """``evaluation.best_only``: those formats for each objective's best trial (by its
    validation score), once the search is over; a resumed run skips what is written."""
    import ray

    from grid.objectives import best_trials
    from grid.pipeline import evaluate_model

    if not spec.evaluation.best_only:
        return
    trials = store.read("trials")
    best = best_trials(trials[trials["status"] == "TERMINATED"]) if len(trials) else trials
    for row in best.itertuples():
        key = f"best:{row.trial_id}"
        if ray.get(actor.has.remote("choices", key)) or ray.get(actor.has.remote("ratings", key)):
            continue
        weights = str(row.adapter)  # a LoRA adapter folder, or a fully fine-tuned model's (a path or a URI)
        model, adapter = (row.model, weights) if exists(f"{weights}/adapter_config.json") else (weights, None)
        say(f"best {row.format} trial {row.trial_id}: {', '.join(spec.evaluation.best_only)}")
        evaluated = evaluate_model(spec, model, adapter, data, embeddings=False, formats=spec.evaluation.best_only)
        for table, frame in evaluated.items():
            ray.get(actor.write.remote(table, key, frame.assign(trial_id=row.trial_id, condition=row.condition,
                                                              model=row.model, seed=getattr(row, "seed", None))))


def _repair_for_resume(run_dir: str, store: ResultsStore, say) -> None:
    """Put back whole copies of state files a full disk damaged (see grid.storage_guard)."""
    moved = repair_state(run_dir)
    if not moved:
        return
    say(f"state files damaged by the storage failure set aside in {run_dir}/.egrid-damaged: {', '.join(moved)}")
    fs, base = _filesystem(run_dir)
    tune_left = any(is_tune_experiment_state(f) for f in state_files(fs, base))
    if not tune_left and any(k.startswith("trial:") for k in store.keys("trials")):
        raise InputError("Tune's trial list was damaged before any whole copy was kept, and some trials already "
                         "wrote their rows: resuming would run them again under new ids. Keep the tables, or start "
                         "the run over in a new folder", source=run_dir)


def _run_job(spec: JobSpec, run_dir: str, *, address: str | None, resume: bool, num_cpus: int | None,
             dashboard_host: str, say, progress_env: dict[str, str], trust_tune_state: bool = False) -> dict:
    import ray

    from grid.configure import configure
    from grid.data import prepare_norms
    from grid.tuning import build_tuner

    store = ResultsStore(run_dir)
    manifest = store.read_json("manifest.json")
    _check_same_job(manifest, spec, run_dir, resume)
    if manifest and not resume:
        status = manifest.get("status")
        if status == "finished":  # the same job again: show its results, don't train twice
            say(f"run {spec.run_name} already finished in {run_dir}; its tables are shown (delete the folder to rerun)")
            return _finished_summary(run_dir, store)
        if RunLocation(run_dir).exists("tune"):
            raise InputError(f"{run_dir} holds an unfinished run of this job (status {status!r}); finish it with "
                             f"`egrid resume {run_dir}` or `egrid run --resume`, or delete the folder to start over",
                             source=spec.source)
    if resume:
        _repair_for_resume(run_dir, store, say)
        # Tune unpickles tuner.pkl on restore: only the one this run wrote, checked before
        # anything starts
        check_tune_state(run_dir, manifest or {}, trust=trust_tune_state)
    configure(spec)  # data-dependent problems (empty splits, no examples) before Ray starts
    manifest = manifest or {"run_name": spec.run_name, "fingerprint": spec.fingerprint(), "job": spec.raw,
                            "job_file": spec.source, "created": dt.datetime.now(dt.timezone.utc).isoformat()}
    manifest.update(versions=versions(), status="running", updated=dt.datetime.now(dt.timezone.utc).isoformat())
    store.write_json("manifest.json", manifest)
    started = time.time()
    init_ray(address, num_cpus=num_cpus, dashboard_host=dashboard_host,
             extra_env={**hub_env(spec.allow_download), **progress_env})
    actor, actor_name = results_actor(run_dir, spec.run_name)
    say(f"run {spec.run_name} -> {run_dir}")

    data = prepare_norms(spec.norms, spec.seed)
    manifest["splits"] = {lang: d.split.digest for lang, d in data.items()}
    manifest["n_concepts"] = {lang: {"train": len(d.train), "validation": len(d.split.validation), "test": len(d.test)}
                              for lang, d in data.items()}
    for lang, d in data.items():  # exactly the words each side used, after every cap
        store.write_json(f"split-{lang}.json", d.split.record())
    store.write_json("manifest.json", manifest)
    _evaluate_base_models(spec, data, actor, say)

    say("stage 2/3 tune: fine-tuning trials (Ray Tune -> Ray Train + DeepSpeed)")
    tune_started = time.time()
    tuner = build_tuner(spec, run_dir, actor_name, resume=resume)
    manifest["tune_state_sha256"] = tune_state_digest(run_dir)  # Tune (re)wrote tuner.pkl building the Tuner
    store.write_json("manifest.json", manifest)
    grid_result = tuner.fit()
    manifest["tune_seconds"] = round(time.time() - tune_started, 2)
    failed = [r for r in grid_result if r.error is not None]
    if not failed:  # a resumed run that now succeeded drops the old failure record
        ray.get(actor.delete.remote("trials", "failed"))
    if failed:
        rows = [{"trial_id": Path(r.path).name if r.path else "?", "status": "ERROR", "error": str(r.error)[:500]} for r in failed]
        ray.get(actor.write.remote("trials", "failed", pd.DataFrame(rows)))
        say(f"{len(failed)} trial(s) failed: {', '.join(r['trial_id'] for r in rows)}")

    unfinished = [r for r in grid_result if r.error is None and not (r.metrics or {}).get("evaluated")]
    if unfinished:  # Tune caught a Ctrl-C (or SIGTERM) and returned: the run is not finished
        manifest.update(status="interrupted", updated=dt.datetime.now(dt.timezone.utc).isoformat())
        store.write_json("manifest.json", manifest)
        say(f"interrupted with {len(unfinished)} trial(s) unfinished; finish with: egrid resume {run_dir}")
        raise KeyboardInterrupt
    _evaluate_best_trials(spec, data, store, actor, say)

    say("stage 3/3 aggregate: metrics, RSA, transfer tables")
    agg = aggregate_stage(spec, store, data, say,
                          write=lambda table, frame: ray.get(actor.write.remote(table, "aggregate", frame)))
    manifest.update(status="finished" if not failed else "finished with failed trials",
                    finished=dt.datetime.now(dt.timezone.utc).isoformat(), seconds=round(time.time() - started, 1))
    store.write_json("manifest.json", manifest)
    return _summary(run_dir, agg["metrics"], agg["transfer"], store.read("trials"))


def aggregate_stage(spec: JobSpec, store: ResultsStore, data: dict, say, write) -> dict[str, pd.DataFrame]:
    """The metrics and transfer tables from the run's stored tables (no Ray, no model):
    the last stage of a run, and all of ``egrid aggregate``. ``write(table, frame)``
    stores each non-empty table under the key ``aggregate``."""
    from grid.aggregate import aggregate, trained_on

    tables = {t: store.read(t) for t in ("ratings", "head_ratings", "embeddings", "choices", "trials")}
    agg = aggregate(tables, rsa_recipe=spec.evaluation.rsa_recipe, subsets=tuple(spec.evaluation.subsets),
                    n_boot=spec.evaluation.n_boot, seed=spec.seed,
                    train_norms={lang: d.train for lang, d in data.items()}, progress=say,
                    paired=spec.evaluation.paired,
                    trained=trained_on(spec.conditions, {lang: list(d.train.dimensions) for lang, d in data.items()}))
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
        raise InputError("not a run folder: no manifest.json with its job (give the folder `egrid run` printed)",
                         source=run_dir)
    if not store.keys("ratings"):
        raise InputError("no ratings written yet: nothing to aggregate (the baseline writes the first)", source=run_dir)
    spec = parse_job(manifest["job"], manifest.get("job_file", "<job>"))
    started = time.time()
    say(f"aggregate: {run_dir} (metrics, RSA, transfer tables from its stored tables)")
    aggregate_stage(spec, store, prepare_norms(spec.norms, spec.seed), say,
                    write=lambda table, frame: store.write(table, "aggregate", frame))
    manifest.setdefault("aggregated", []).append({"at": dt.datetime.now(dt.timezone.utc).isoformat(),
                                                  "seconds": round(time.time() - started, 1), "versions": versions()})
    store.write_json("manifest.json", manifest)
    return _finished_summary(run_dir, store)


def _summary(run_dir: str, metrics: pd.DataFrame, transfer: pd.DataFrame, trials: pd.DataFrame) -> dict:
    from grid.objectives import best_trials, job_differences, several_objectives

    differences = pd.DataFrame()
    if several_objectives(trials):  # the paired bootstraps, once: the summary prints them, the report shows them
        store = ResultsStore(run_dir)
        differences = job_differences({"ratings": store.read("ratings"), "choices": store.read("choices"), "trials": trials},
                                      (store.read_json("manifest.json") or {}).get("job"))
    return {"run_dir": run_dir, "metrics": metrics, "transfer": transfer, "trials": trials, "best": best_trials(trials),
            "differences": differences, "tables": {t: f"{run_dir}/tables/{t}" for t in TABLES}}


def _finished_summary(run_dir: str, store: ResultsStore) -> dict:
    return _summary(run_dir, store.read("metrics"), store.read("transfer"), store.read("trials"))

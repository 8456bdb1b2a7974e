"""Running a job: start (or join) Ray, then the baseline, tune and aggregate stages.

Every stage skips work whose rows are already in the tables, so ``egrid resume`` (or
simply running the same job again) finishes an interrupted run without redoing or
duplicating anything. The run folder is ``<storage>/<job name>-<spec hash>``.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pandas as pd

from embodiment.errors import InputError, StorageError
from grid import progress as progress_mode
from grid.console import ci_text
from grid.internals import is_tune_experiment_state
from grid.location import RunLocation
from grid.run_summary import aggregate_stage, finished_summary, summary_of
from grid.ray_session import hub_env, init_ray, results_actor, versions
from grid.results import ResultsStore, _filesystem
from grid.spec import JobSpec
from grid.storage_guard import probe, repair_state, state_files
from grid.tune_state import check_tune_state, tune_state_digest


def run_job(
    spec: JobSpec,
    *,
    address: str | None = None,
    storage: str | None = None,
    resume: bool = False,
    num_cpus: int | None = None,
    dashboard_host: str = "127.0.0.1",
    say=progress_mode.say,
    progress: str | None = None,
    run_dir: str | None = None,
    trust_tune_state: bool = False,
) -> dict:
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
        return _run_job(
            spec,
            run_dir,
            address=address,
            resume=resume,
            num_cpus=num_cpus,
            dashboard_host=dashboard_host,
            say=say,
            progress_env=progress_env,
            trust_tune_state=trust_tune_state,
        )
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
    from grid.aggregate import aggregate
    from grid.hidden_states import EmbeddingLayers, probe_layer

    common = {
        "rsa_recipe": spec.evaluation.rsa_recipe,
        "subsets": ("all",),
        "seed": spec.seed,
        "train_norms": {lang: d.train for lang, d in data.items()},
    }
    emb = evaluated.get("embeddings")
    if emb is not None and len(emb):
        # the probe's layer is its least cross-validated error, which needs no bootstrap:
        # find it first, then draw CIs only for what is printed here (the aggregate stage
        # at the end has every layer's)
        quick = aggregate(evaluated, n_boot=0, **common)["metrics"]
        chosen = {probe_layer(quick, lang) for lang in data} - {None}
        evaluated = {**evaluated, "embeddings": EmbeddingLayers.of(emb).only(chosen)}
    m = aggregate(evaluated, n_boot=spec.evaluation.n_boot, **common)["metrics"]
    if m.empty:
        return
    for lang, part in m.groupby("language", sort=False):
        rsa_all = part[(part["metric"] == "rsa") & (part["subset"] == "all")]
        sp = part[part["metric"] == "spearman"]
        if len(rsa_all):
            say(
                f"baseline ({lang}, {int(rsa_all['n'].iloc[0])} held-out concepts): RSA {ci_text(rsa_all.iloc[0])}, "
                f"mean Spearman {sp['value'].mean():.3f}"
            )
        layer = probe_layer(part, lang)
        probe = part[(part["metric"] == "probe_rsa") & (part["subset"] == "all") & (part["layer"] == layer)]
        if len(probe):
            say(
                f"frozen probe ({lang}, ridge on layer {layer} of the base model, the layer of least cross-validated "
                f"error on the {len(data[lang].train)} training concepts): RSA {ci_text(probe.iloc[0])}"
            )


def _check_same_job(manifest: dict | None, spec: JobSpec, run_dir: str, resume: bool) -> None:
    """Refuse to mix two jobs' results in one folder. A folder resumed as itself (its
    manifest's job, as written) may carry the hash of an earlier egrid version."""
    if not manifest or manifest.get("fingerprint") == spec.fingerprint():
        return
    if resume and manifest.get("job") == spec.raw:
        return
    raise InputError(
        f"{run_dir} holds another job (spec hash {manifest.get('fingerprint')}); refusing to mix results",
        source=spec.source,
    )


def _evaluate_base_models(spec: JobSpec, data: dict, store: ResultsStore, actor, say) -> None:
    """Stage 1: each untrained model on the evaluation suite (best-only formats included:
    the base is what every trial is read against); a resumed run skips what is written.
    Hidden states go to the store block by block, and are read back a layer at a time."""
    import ray

    from grid.hidden_states import EmbeddingLayers
    from grid.pipeline import STREAMED, evaluate_model
    from grid.results import PartWriter

    for model in spec.models:
        key = f"base:{model}"
        if ray.get(actor.has.remote("ratings", key)) or ray.get(actor.has.remote("choices", key)):
            say(f"stage 1/3 baseline: {model} already evaluated, skipped")
            continue
        say(
            f"stage 1/3 baseline: evaluating {model} on {sum(len(d.test) for d in data.values())} held-out concepts (Ray Data)"
        )
        columns = {"trial_id": "base", "condition": "base", "model": model}
        parts = PartWriter(actor, key, columns)
        parts.clear(STREAMED)
        evaluated = evaluate_model(
            spec,
            model,
            None,
            data,
            probe=spec.evaluation.probe != "none",
            formats=[*spec.evaluation.formats, *spec.evaluation.best_only],
            sink=parts,
        )
        for table, frame in evaluated.items():
            ray.get(actor.write.remote(table, key, frame.assign(**columns)))
        tagged = {t: f.assign(trial_id="base", model=model) for t, f in evaluated.items()}
        if parts.parts:
            tagged["embeddings"] = EmbeddingLayers(store=store, where={"trial_id": "base", "model": model})
        _say_baseline(spec, data, tagged, say)


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
        model, adapter = (row.model, weights) if RunLocation(weights).exists("adapter_config.json") else (weights, None)
        say(f"best {row.format} trial {row.trial_id}: {', '.join(spec.evaluation.best_only)}")
        evaluated = evaluate_model(spec, model, adapter, data, embeddings=False, formats=spec.evaluation.best_only)
        for table, frame in evaluated.items():
            ray.get(
                actor.write.remote(
                    table,
                    key,
                    frame.assign(
                        trial_id=row.trial_id, condition=row.condition, model=row.model, seed=getattr(row, "seed", None)
                    ),
                )
            )


def _repair_for_resume(run_dir: str, store: ResultsStore, say) -> None:
    """Put back whole copies of state files a full disk damaged (see grid.storage_guard)."""
    moved = repair_state(run_dir)
    if not moved:
        return
    say(f"state files damaged by the storage failure set aside in {run_dir}/.egrid-damaged: {', '.join(moved)}")
    fs, base = _filesystem(run_dir)
    tune_left = any(is_tune_experiment_state(f) for f in state_files(fs, base))
    if not tune_left and any(k.startswith("trial:") for k in store.keys("trials")):
        raise InputError(
            "Tune's trial list was damaged before any whole copy was kept, and some trials already "
            "wrote their rows: resuming would run them again under new ids. Keep the tables, or start "
            "the run over in a new folder",
            source=run_dir,
        )


def _run_job(
    spec: JobSpec,
    run_dir: str,
    *,
    address: str | None,
    resume: bool,
    num_cpus: int | None,
    dashboard_host: str,
    say,
    progress_env: dict[str, str],
    trust_tune_state: bool = False,
) -> dict:
    import ray

    from grid.configure import configure
    from grid.data import prepare_norms

    store = ResultsStore(run_dir)
    manifest = store.read_json("manifest.json")
    if manifest and not resume and manifest.get("status") == "finished":
        # the same job again: show its results, don't train twice
        say(f"run {spec.run_name} already finished in {run_dir}; its tables are shown (delete the folder to rerun)")
        return finished_summary(run_dir, store)
    _check_before_start(spec, run_dir, store, manifest, resume=resume, say=say, trust_tune_state=trust_tune_state)
    configure(spec)  # data-dependent problems (empty splits, no examples) before Ray starts
    manifest = manifest or {
        "run_name": spec.run_name,
        "fingerprint": spec.fingerprint(),
        "job": spec.raw,
        "job_file": spec.source,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(),
    }
    manifest.update(versions=versions(), status="running", updated=dt.datetime.now(dt.timezone.utc).isoformat())
    store.write_json("manifest.json", manifest)
    started = time.time()
    init_ray(
        address,
        num_cpus=num_cpus,
        dashboard_host=dashboard_host,
        extra_env={**hub_env(spec.allow_download), **progress_env},
    )
    actor, actor_name = results_actor(run_dir, spec.run_name)
    say(f"run {spec.run_name} -> {run_dir}")

    data = prepare_norms(spec.norms, spec.seed)
    _record_splits(store, manifest, data)
    _evaluate_base_models(spec, data, store, actor, say)
    failed = _tune_stage(spec, run_dir, store, manifest, actor, actor_name, resume=resume, say=say)
    _evaluate_best_trials(spec, data, store, actor, say)

    say("stage 3/3 aggregate: metrics, RSA, transfer tables")
    agg = aggregate_stage(
        spec, store, data, say, write=lambda table, frame: ray.get(actor.write.remote(table, "aggregate", frame))
    )
    manifest.update(
        status="finished" if not failed else "finished with failed trials",
        finished=dt.datetime.now(dt.timezone.utc).isoformat(),
        seconds=round(time.time() - started, 1),
    )
    store.write_json("manifest.json", manifest)
    return summary_of(run_dir, agg["metrics"], agg["transfer"], store.read("trials"))


def _check_before_start(
    spec: JobSpec,
    run_dir: str,
    store: ResultsStore,
    manifest: dict | None,
    *,
    resume: bool,
    say,
    trust_tune_state: bool,
) -> None:
    """Refuse to mix jobs or restart an unfinished run; before a resume, repair state a full
    disk damaged and check Tune's pickled state (Tune unpickles only the file this run wrote)."""
    _check_same_job(manifest, spec, run_dir, resume)
    if manifest and not resume and RunLocation(run_dir).exists("tune"):
        raise InputError(
            f"{run_dir} holds an unfinished run of this job (status {manifest.get('status')!r}); finish it with "
            f"`egrid resume {run_dir}` or `egrid run --resume`, or delete the folder to start over",
            source=spec.source,
        )
    if resume:
        _repair_for_resume(run_dir, store, say)
        check_tune_state(run_dir, manifest or {}, trust=trust_tune_state)


def _record_splits(store: ResultsStore, manifest: dict, data: dict) -> None:
    """Each side's digest and size in the manifest, and exactly the words each side used (after every cap)."""
    manifest["splits"] = {lang: d.split.digest for lang, d in data.items()}
    manifest["n_concepts"] = {
        lang: {"train": len(d.train), "validation": len(d.split.validation), "test": len(d.test)}
        for lang, d in data.items()
    }
    for lang, d in data.items():
        store.write_json(f"split-{lang}.json", d.split.record())
    store.write_json("manifest.json", manifest)


def _tune_stage(
    spec: JobSpec, run_dir: str, store: ResultsStore, manifest: dict, actor, actor_name: str, *, resume: bool, say
) -> list:
    """The trials through Ray Tune; their failures recorded. Returns the failed results.

    Raises:
        KeyboardInterrupt: Tune caught a Ctrl-C (or SIGTERM) and returned with trials
            unfinished; the manifest then says ``interrupted``.
    """
    import ray

    from grid.tuning import build_tuner

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
    else:
        rows = [
            {"trial_id": Path(r.path).name if r.path else "?", "status": "ERROR", "error": str(r.error)[:500]}
            for r in failed
        ]
        ray.get(actor.write.remote("trials", "failed", pd.DataFrame(rows)))
        say(f"{len(failed)} trial(s) failed: {', '.join(r['trial_id'] for r in rows)}")
    unfinished = [r for r in grid_result if r.error is None and not (r.metrics or {}).get("evaluated")]
    if unfinished:
        manifest.update(status="interrupted", updated=dt.datetime.now(dt.timezone.utc).isoformat())
        store.write_json("manifest.json", manifest)
        say(f"interrupted with {len(unfinished)} trial(s) unfinished; finish with: egrid resume {run_dir}")
        raise KeyboardInterrupt
    return failed

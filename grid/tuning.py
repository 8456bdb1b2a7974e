"""The Tune stage: one trial = one TorchTrainer (Ray Train V2) running DeepSpeed workers,
then an evaluation of its adapter through Ray Data, rows to the results actor.

Config is read from the trial's config dict (never from module globals); the static job
is bound with ``tune.with_parameters``. Run names derive from the job hash and trial id.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from embodiment.training import TrainConfig
from grid.location import RunLocation
from grid.node_cache import publish_folder
from grid.progress import is_plain, say as _say  # module level: the callback is pickled with the Tuner
from grid.spec import JobSpec

_SAMPLERS = {"choice": "choice", "uniform": "uniform", "loguniform": "loguniform", "randint": "randint"}


def param_space(spec: JobSpec) -> dict:
    """The Tune search space: conditions x models x the job's ``search`` section."""
    from ray import tune

    def build(value):
        if not isinstance(value, dict):
            return value
        kind, arg = next(iter(value.items()))
        if kind == "grid":
            return tune.grid_search(list(arg))
        if kind == "choice":
            return tune.choice(list(arg))
        return getattr(tune, _SAMPLERS[kind])(arg["low"], arg["high"])

    space = {key: build(value) for key, value in spec.search.items()}
    space.setdefault(
        "condition",
        tune.grid_search([c.name for c in spec.conditions]) if len(spec.conditions) > 1 else spec.conditions[0].name,
    )
    space["model"] = tune.grid_search(list(spec.models)) if len(spec.models) > 1 else spec.models[0]
    if spec.seeds:
        seeds = spec.training_seeds()
        space["seed"] = tune.grid_search(seeds) if len(seeds) > 1 else seeds[0]
    return space


def worker_config(spec: JobSpec, config: dict) -> dict:
    """What a Train worker gets: the trial's :class:`TrainConfig` (the job's validated
    training section with its condition's own options, this trial's searched values,
    format and seed), its condition
    and the data sources."""
    condition = next(c for c in spec.conditions if c.name == config["condition"])
    # Tune's samplers may hand numpy scalars; the values' ranges were checked with the spec
    searched = {
        k: (v.item() if hasattr(v, "item") else v) for k, v in config.items() if k not in ("condition", "model", "seed")
    }
    # the job's training section, then the condition's own options (validated over it, as
    # the spec checked them), then the searched values (never the same keys: the spec says so)
    train = spec.training
    if condition.training:
        train = TrainConfig.model_validate({**train.model_dump(), **condition.training})
    train = train.model_copy(
        update={**searched, "format": condition.format, "seed": int(config.get("seed", spec.seed))}
    )
    return {
        "train": train,
        "condition": condition.model_dump(),
        "norms": {k: v.model_dump() for k, v in spec.norms.items()},
        "seed": spec.seed,
        "mcq": spec.mcq,
        "model": config["model"],
        "use_gpu": spec.resources.gpus_per_worker > 0,
        "load_options": spec.load_options(),
    }


def trial(config: dict, spec: JobSpec, run_dir: str, results_actor_name: str) -> None:
    """Tune function trainable: train with Ray Train + DeepSpeed, then evaluate and record."""
    import ray
    from ray import tune

    from grid.aggregate import summary_score
    from grid.data import prepare_norms
    from grid.pipeline import STREAMED, evaluate_model
    from grid.results import PartWriter

    started = time.time()
    trial_id = tune.get_context().get_trial_id()
    result = _trainer(spec, config, run_dir, trial_id).fit()
    # The final checkpoint goes to the run's storage (a folder or a URI): scorer actors on
    # any node read it from there (grid.node_cache), never from this node's disk.
    adapter_dir = RunLocation.of(run_dir).child("adapters", trial_id)
    with tempfile.TemporaryDirectory(prefix="egrid-trial-") as scratch:
        local = Path(result.checkpoint.to_directory(scratch))
        state = json.loads((local / "train_state.json").read_text())
        publish_folder(local, adapter_dir)
        adapter = f"{adapter_dir}/adapter" if (local / "adapter").exists() else None
        model = f"{adapter_dir}/model" if adapter is None and (local / "model").exists() else config["model"]
        head = _trial_head(spec, config, adapter_dir)
    data = prepare_norms(spec.norms, spec.seed)
    actor = ray.get_actor(results_actor_name)
    tag = {
        "trial_id": trial_id,
        "condition": config["condition"],
        "model": config["model"],
        "seed": int(config.get("seed", spec.seed)),
    }
    # hidden states go to the store block by block as they come; an earlier attempt's go first
    parts = PartWriter(actor, f"trial:{trial_id}", tag)
    parts.clear(STREAMED)
    evaluated = evaluate_model(
        spec, model, adapter, data, probe=spec.evaluation.probe == "all", validation=True, head=head, sink=parts
    )
    validation = evaluated.pop("validation_ratings", None)
    for table, frame in evaluated.items():
        ray.get(actor.write.remote(table, f"trial:{trial_id}", frame.assign(**tag)))
    if validation is not None:  # kept: the score below can be recomputed from the run's tables
        ray.get(actor.write.remote("validation_ratings", f"trial:{trial_id}", validation.assign(**tag)))
    # the searcher's score: on validation concepts where the job sets some aside (a job
    # with one trial may have none: nothing is chosen, the score is only reported)
    score = summary_score({"ratings": validation} if validation is not None else evaluated)
    row = {
        **tag,
        **_trial_row(spec, config, state, result.metrics),
        "eval_score": score,
        "eval_on": "validation" if validation is not None else "held-out",
        "adapter": adapter or model,
        "seconds": time.time() - started,
        "trial_node": ray.get_runtime_context().get_node_id(),
    }
    ray.get(actor.write.remote("trials", f"trial:{trial_id}", pd.DataFrame([row])))
    tune.report(
        {
            "eval_score": score,
            "loss_ratio": row["loss_last"] / row["loss_first"] if row["loss_first"] else 1.0,
            "evaluated": 1,
        }
    )


def _trainer(spec: JobSpec, config: dict, run_dir: str, trial_id: str):
    """The trial's TorchTrainer: its DeepSpeed ranks, their resources, storage and retries."""
    import ray.train
    from ray.train import ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from grid.workers import train_worker

    res = spec.resources
    use_gpu = res.gpus_per_worker > 0
    per_worker = {"CPU": res.cpus_per_worker, **({"GPU": res.gpus_per_worker} if use_gpu else {})}
    return TorchTrainer(
        train_worker,
        train_loop_config=worker_config(spec, config),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=res.workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}",
            storage_path=f"{run_dir}/train",
            callbacks=[TuneReportCallback()],
            # plain progress: Ray Train's ray.train INFO lines off (its per-report
            # line has its own logger: grid.progress.quiet_train_worker)
            logging_config=ray.train.LoggingConfig(log_level="WARNING" if is_plain() else "INFO"),
            failure_config=ray.train.FailureConfig(max_failures=spec.tune.max_failures),
        ),
    )


def _trial_row(spec: JobSpec, config: dict, state: dict, metrics: dict) -> dict:
    """The trials table's training columns: format, config, steps, smoothed first/last loss, workers."""
    losses = state["losses"]
    return {
        "format": next(c.format for c in spec.conditions if c.name == config["condition"]),
        "config": json.dumps({k: v for k, v in config.items()}, sort_keys=True, default=str),
        "status": "TERMINATED",
        "steps": state["steps"],
        "loss_first": float(np.mean(losses[:5])) if losses else np.nan,
        "loss_last": float(np.mean(losses[-5:])) if losses else np.nan,
        "workers": spec.resources.workers,
        "train_seconds": float(metrics.get("train_seconds", np.nan)),
        "worker_nodes": str(metrics.get("worker_nodes", "")),
    }


#: a trained head's file in a trial's checkpoint (formats with ``head_outputs``)
HEAD_FILE = "head.safetensors"


def _trial_head(spec: JobSpec, config: dict, adapter_dir: str):
    """The trial's trained head, where its checkpoint (a folder or URI) holds one: evaluated
    through it as well. None for formats without a head."""
    from grid.data import training_data
    from grid.pipeline import TrialHead

    path = f"{adapter_dir}/{HEAD_FILE}"
    if not RunLocation(path).exists():
        return None
    plain = worker_config(spec, config)
    task = training_data(plain["condition"], plain["norms"], spec.seed, spec.mcq)
    return TrialHead(str(path), plain["train"].format, {lang: list(n.dimensions) for lang, n in task.norms.items()})


def expected_trials(spec: JobSpec) -> int:
    """How many trials the job's search space makes (grid axes x conditions x models x samples)."""
    n = max(1, len(spec.models)) * (len(spec.conditions) if "condition" not in spec.search else 1)
    for value in spec.search.values():
        if isinstance(value, dict) and "grid" in value:
            n *= len(value["grid"])
    return n * spec.tune.num_samples * len(spec.training_seeds())


#: trial progress lines per trial while it trains (started and finished come on top)
TRAINING_LINES = 4


def _searched(config: dict) -> str:
    """The trial's searched values in a few words (what tells trials apart in a log)."""
    parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(config.items()) if k != "model"]
    return ", ".join(parts)


def condition_steps(spec: JobSpec) -> dict[str, int | None]:
    """Each condition's training steps: its own, else the job's."""
    return {c.name: c.training.get("steps", spec.training.steps) for c in spec.conditions}


def progress_callback(total: int, steps: dict[str, int | None]):
    """A Tune callback that says, in one timestamped line each, when a trial starts, how it
    trains (every ``steps / TRAINING_LINES`` steps: step and loss), when it finishes (its
    validation score), fails or is restored from its checkpoint; and after each trial ends,
    how many are done / running / failed and roughly how long the rest will take (mean
    trial time x remaining / slots). ``steps``: each condition's training steps
    (:func:`condition_steps`); a searched ``steps`` value overrides it."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self):
            self.started: dict[str, float] = {}
            self.durations: list[float] = []
            self.failed = 0
            self.t0 = time.time()
            self.last_step: dict[str, int] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.started[trial.trial_id] = time.time()
            _say(f"trial {trial.trial_id} started: {_searched(trial.config)}")

        def on_trial_restore(self, iteration, trials, trial, **info):
            _say(f"trial {trial.trial_id} restored from its checkpoint")

        def on_trial_recover(self, iteration, trials, trial, **info):
            _say(f"trial {trial.trial_id} failed; retrying from its last checkpoint")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            step, total_steps = result.get("step"), trial.config.get("steps", steps.get(trial.config.get("condition")))
            if "eval_score" in result or step is None or not total_steps:
                return
            every = max(1, -(-int(total_steps) // TRAINING_LINES))
            # one line per `every` steps, whatever the report interval
            if step // every > self.last_step.get(trial.trial_id, 0) // every:
                _say(f"trial {trial.trial_id} step {step}/{total_steps}: loss {result.get('loss', float('nan')):.4f}")
            self.last_step[trial.trial_id] = step

        def _report(self, trials, ended):
            done = len(self.durations)
            left = max(0, total - done - self.failed)
            # the trial that just ended still reads RUNNING while its callbacks run
            running = min(left, sum(t.status == "RUNNING" and t.trial_id != ended.trial_id for t in trials))
            eta = ""
            if self.durations and left:
                slots = max(1, running)
                eta = f"; ~{np.mean(self.durations) * left / slots / 60:.1f} min left"
            _say(
                f"trials: {done} done, {running} running, {self.failed} failed of {total}; "
                f"{(time.time() - self.t0) / 60:.1f} min elapsed{eta}"
            )

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.durations.append(time.time() - self.started.get(trial.trial_id, self.t0))
            score = (trial.last_result or {}).get("eval_score")
            _say(
                f"trial {trial.trial_id} finished in {self.durations[-1] / 60:.1f} min"
                + (f": validation score {score:.3f}" if isinstance(score, float) else "")
            )
            self._report(trials, trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.failed += 1
            _say(f"trial {trial.trial_id} failed (its error is in the run's trials table and Tune's trial folder)")
            self._report(trials, trial)

    return Progress()


def _tracking_callbacks(spec: JobSpec, run_dir: str) -> list:
    """MLflow logging when the job asks for it. (TensorBoard needs nothing: Tune writes
    event files into each trial folder whenever tensorboardX is installed, as ray[tune] does.)"""
    if not spec.tune.mlflow:
        return []
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    uri = spec.tune.mlflow
    if uri == "run":
        uri = (Path(run_dir).resolve() / "mlruns").as_uri()
        # MLflow 3 keeps its file store only behind this switch; a tracking server or
        # sqlite URI (tune.mlflow: sqlite:///...) needs no switch.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=spec.run_name, save_artifact=False)]


def build_tuner(spec: JobSpec, run_dir: str, results_actor_name: str, *, resume: bool = False):
    """A Tuner for the job's search, or the restored one when resuming an existing run."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from grid.storage_guard import storage_guard

    trainable = tune.with_parameters(trial, spec=spec, run_dir=run_dir, results_actor_name=results_actor_name)
    # The trial function only drives its TorchTrainer; the workers hold the CPUs/GPUs.
    # Tune refuses an empty request, so ask for one byte of memory: a token CPU share
    # (0.01) would leave 1.98 of 2 CPUs and starve the second trial's 1-CPU worker.
    trainable = tune.with_resources(trainable, {"cpu": 0, "memory": 1})
    location = RunLocation.of(run_dir)
    path = location.child("tune")
    if resume and tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable=trainable, resume_errored=True, restart_errored=False)
    ts = spec.tune
    scheduler = (
        ASHAScheduler(
            time_attr="training_iteration", metric="loss_ratio", mode="min", grace_period=ts.grace_period, max_t=10**6
        )
        if ts.scheduler == "asha"
        else FIFOScheduler()
    )
    search_alg = None
    if ts.searcher == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(metric="eval_score", mode="max", seed=spec.seed)
    concurrent = spec.resources.max_concurrent_trials
    # reuse_actors: a trial builds its own TorchTrainer, so a reused trial actor carries no
    # state over; it saves each later trial a new process and its imports.
    return tune.Tuner(
        trainable,
        param_space=param_space(spec),
        tune_config=tune.TuneConfig(
            num_samples=ts.num_samples,
            scheduler=scheduler,
            search_alg=search_alg,
            max_concurrent_trials=concurrent,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=str(location),
            failure_config=tune.FailureConfig(max_failures=ts.max_failures),
            verbose=0 if is_plain() else 1,  # plain: our lines, no status tables
            callbacks=[
                progress_callback(expected_trials(spec), condition_steps(spec)),
                storage_guard(run_dir),
                *_tracking_callbacks(spec, run_dir),
            ],
        ),
    )

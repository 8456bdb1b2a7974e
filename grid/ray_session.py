"""Ray for a run: start a local one or join a cluster, with the environment egrid's
processes need; the run's named results actor; the versions a run records."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from grid.results import ResultsActor


# One namespace for every egrid driver, so a resumed driver finds the run's detached
# results actor by name instead of starting a second one.
NAMESPACE = "egrid"
#: the Hugging Face switches that keep a process off the network
HUB_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
WORKER_ENV = {
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "1"),
    # In a grid a trial's workers often wait for CPUs/GPUs that other trials'
    # training or evaluation hold: waiting is normal, not a failure.
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": os.environ.get("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "3600"),
}
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
        out["git"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).resolve().parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        out["git"] = None
    return out


def hub_env(allow_download: bool) -> dict[str, str]:
    """The workers' Hugging Face network switches: offline unless the job allows downloads
    and the driver's own environment does not say offline (then each node downloads a hub
    model once into its own cache)."""
    offline = not allow_download or any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in HUB_OFFLINE)
    return {k: "1" if offline else "0" for k in HUB_OFFLINE}


def init_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    dashboard_host: str = "127.0.0.1",
    extra_env: dict[str, str] | None = None,
):
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
        print(
            f"egrid: warning: Ray dashboard bound to {dashboard_host}: anyone who reaches it can run code on this "
            "machine; Ray's dashboard has no authentication unless you configure it",
            file=sys.stderr,
        )
    # The dashboard (State API, job API; started where ray[default] is installed) listens
    # on localhost only unless asked otherwise.
    # address="local": always a new local Ray, even where `ray start` left one running.
    gcs_address = _own_gcs_address()
    env["env_vars"]["RAY_ADDRESS"] = gcs_address
    with _environment(RAY_GCS_SERVER_PORT=gcs_address.rsplit(":", 1)[1]):
        ray.init(
            address="local",
            num_cpus=num_cpus or max(2, os.cpu_count() or 2),
            include_dashboard=None,
            dashboard_host=dashboard_host,
            runtime_env=env,
            log_to_driver=True,
            namespace=NAMESPACE,
        )


def _own_gcs_address() -> str:
    """The address a local Ray's GCS will listen on, chosen before it starts.

    Its workers are told it (``RAY_ADDRESS``): Ray Train's placement-group cleaner finds "its"
    cluster through the State API, which without an address reads /tmp/ray/ray_current_cluster,
    the last cluster `ray start` made. Where that one still runs, the cleaner asks it about this
    run's controller, finds none, and removes the trial's placement group mid-training; where
    it is gone, each trial's shutdown waits out the cleaner's timeout.
    """
    import ray

    from embodiment.training.distributed import free_port

    return f"{ray.util.get_node_ip_address()}:{free_port()}"


@contextmanager
def _environment(**values: str):
    """``values`` set in this process's environment for the block (the raylet it starts reads them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def results_actor(run_dir: str, run_name: str):
    """The run's named results actor, created or found; restarts rebuild from disk.

    Named by the run and its folder: the same job run into two storages on one cluster
    (a reference run beside a rerun) gets two actors, each writing its own folder.
    """
    import hashlib

    import ray

    name = f"egrid-results-{run_name}-{hashlib.sha256(run_dir.encode()).hexdigest()[:10]}"
    cls = ray.remote(ResultsActor).options(
        name=name, get_if_exists=True, max_restarts=-1, max_task_retries=-1, num_cpus=0, lifetime="detached"
    )
    actor = cls.remote(run_dir)
    ray.get(actor.ping.remote())
    return actor, name

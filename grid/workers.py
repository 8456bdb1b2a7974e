"""Code that runs inside Ray Train workers: the training loop of a trial. The scoring
actors that Ray Data pools live in :mod:`grid.scorers`. Everything scientific is
delegated to :mod:`embodiment`."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from embodiment.models import load_model
from embodiment.training import TrainConfig, train, weight_dtype
from embodiment.training.distributed import partitioned_loading
from grid.data import training_data
from grid.node_cache import local_copy
from grid.progress import quiet_train_worker

REPORT_EVERY = 5


def train_worker(config: dict) -> None:
    """Ray Train loop of one trial: fine-tune under DeepSpeed, report, checkpoint.

    ``config`` carries ``train`` (the trial's validated TrainConfig), ``condition``,
    ``norms``, ``seed``, ``mcq``, ``model``, ``load_options`` (the job's model options).
    """
    import ray.train

    quiet_train_worker()
    cfg: TrainConfig = config["train"]  # validated with the job spec; searched values within its ranges
    context = ray.train.get_context()
    rank = context.get_world_rank()
    # ZeRO-3: each rank loads only its partition of the weights, and training stays in the block
    zero3 = ExitStack()
    zero3.enter_context(partitioned_loading(cfg))
    lm = load_model(
        local_copy(config["model"]),
        device="cuda" if config.get("use_gpu") else "cpu",
        dtype=weight_dtype(cfg.precision),
        **config.get("load_options", {}),
    )
    data = training_data(
        config["condition"], config["norms"], config["seed"], config.get("mcq", {}), config.get("max_mcq")
    )
    resume = None
    checkpoint = ray.train.get_checkpoint()
    scratch = Path(tempfile.mkdtemp(prefix="egrid-train-"))
    if checkpoint is not None:
        resume = Path(checkpoint.to_directory(str(scratch / "resume")))
    losses: list[float] = []

    def loss_ratio() -> float:
        # Smoothed last/first loss: what ASHA compares across trials of different objectives.
        head = float(np.mean(losses[:5])) if losses else 0.0
        return float(np.mean(losses[-5:])) / head if head else 1.0

    def report(step: int, loss: float, ckpt_dir: str | None) -> None:
        losses.append(loss)
        metrics = {"step": step, "loss": loss, "loss_ratio": loss_ratio()}
        # Every rank must make the same report calls (a collective in Train V2), so
        # decide by the step, never by whether this rank holds a checkpoint (rank 0 only).
        checkpoint_step = bool(cfg.checkpoint_every) and step % cfg.checkpoint_every == 0
        if checkpoint_step or step % REPORT_EVERY == 0 or step == cfg.steps:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir) if ckpt_dir else None)

    out = scratch / "out"
    try:
        result = train(cfg, lm.model, lm.tokenizer, data, out, resume_from=resume, report=report)
    finally:
        zero3.close()
    final = ray.train.Checkpoint.from_directory(str(out)) if rank == 0 else None
    ray.train.report(
        {
            "step": result.steps,
            "loss": result.losses[-1] if result.losses else float("nan"),
            "loss_ratio": loss_ratio(),
            "trained": 1,
            "train_seconds": result.seconds,
            "world_size": context.get_world_size(),
            "worker_nodes": _worker_nodes(),
        },
        checkpoint=final,
    )
    # Never report Tune's reserved key "done": it would end the trial before its evaluation.
    shutil.rmtree(scratch, ignore_errors=True)


def _worker_nodes() -> str:
    """Comma-joined Ray node ids of all ranks, in rank order (provenance: where a trial ran)."""
    import ray
    import torch.distributed as dist

    node = ray.get_runtime_context().get_node_id()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return node
    nodes: list = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node)
    return ",".join(nodes)

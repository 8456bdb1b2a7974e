"""Code that runs inside Ray workers: the Train loop of a trial and the scoring actors
that Ray Data pools. Everything scientific is delegated to :mod:`embodiment`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from embodiment.embeddings import extract_embeddings
from embodiment.models import load_model
from embodiment.scoring import score_mcq, score_ratings
from embodiment.training import TrainConfig, train
from grid.data import training_data

REPORT_EVERY = 5


def train_worker(config: dict) -> None:
    """Ray Train loop of one trial: fine-tune under DeepSpeed, report, checkpoint.

    ``config`` carries plain values only: ``train`` (TrainConfig fields), ``condition``,
    ``norms``, ``seed``, ``mcq``, ``model``, ``trust_remote_code``, ``allow_download``.
    """
    import ray.train

    cfg = TrainConfig.from_dict(config["train"])
    context = ray.train.get_context()
    rank = context.get_world_rank()
    lm = load_model(config["model"], device="cuda" if config.get("use_gpu") else "cpu", dtype=cfg.precision if cfg.precision != "fp32" else None,
                    allow_download=config.get("allow_download", False), trust_remote_code=config.get("trust_remote_code", False))
    data = training_data(config["condition"], config["norms"], config["seed"], config.get("mcq", {}), config.get("max_mcq"))
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
    result = train(cfg, lm.model, lm.tokenizer, data, out, resume_from=resume, report=report)
    final = ray.train.Checkpoint.from_directory(str(out)) if rank == 0 else None
    ray.train.report({"step": result.steps, "loss": result.losses[-1] if result.losses else float("nan"),
                      "loss_ratio": loss_ratio(), "trained": 1, "train_seconds": result.seconds,
                      "world_size": context.get_world_size(), "worker_nodes": _worker_nodes()}, checkpoint=final)
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


class RatingScorer:
    """Ray Data actor: loads a model (+ adapter) once, scores concept batches on all dimensions."""

    def __init__(self, model: str, adapter: str | None, dimensions: dict[str, list[str]], batch_size: int = 32,
                 trust_remote_code: bool = False):
        self.lm = load_model(model, adapter=adapter, trust_remote_code=trust_remote_code)
        self.dimensions = dimensions
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        frames = []
        for lang, part in batch.groupby("language", sort=False):
            scored = score_ratings(self.lm.model, self.lm.tokenizer, part["concept"].tolist(), self.dimensions[lang], lang,
                                   batch_size=self.batch_size)
            human = part.set_index("concept")
            scored["human"] = [float(human.loc[c, f"h_{d}"]) for c, d in zip(scored["concept"], scored["dimension"])]
            frames.append(scored)
        return pd.concat(frames, ignore_index=True)


class EmbeddingExtractor:
    """Ray Data actor: pooled hidden states of every (chosen) layer for concept batches."""

    def __init__(self, model: str, adapter: str | None, layers: list[int] | None, batch_size: int = 32,
                 trust_remote_code: bool = False):
        self.lm = load_model(model, adapter=adapter, trust_remote_code=trust_remote_code)
        self.layers = layers
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        emb = extract_embeddings(self.lm.model, self.lm.tokenizer, batch["concept"].tolist(), kind=self.lm.kind,
                                 layers=self.layers, batch_size=self.batch_size)
        frame = emb.to_frame()
        frame = frame[frame["pooling"] == "mean"].reset_index(drop=True)
        lang = dict(zip(batch["concept"], batch["language"]))
        frame["language"] = frame["concept"].map(lang)
        frame["vector"] = frame["vector"].map(lambda v: v.astype(np.float32).tolist())
        return frame


class ChoiceScorer:
    """Ray Data actor: per-option log-likelihoods of multiple-choice items."""

    def __init__(self, model: str, adapter: str | None, batch_size: int = 16, trust_remote_code: bool = False):
        self.lm = load_model(model, adapter=adapter, trust_remote_code=trust_remote_code)
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        items = [{"index": int(r["index"]), "question": r["question"], "correct_option": r["correct_option"],
                  "options": {k: r[k] for k in "ABCD"}} for _, r in batch.iterrows()]
        return score_mcq(self.lm.model, self.lm.tokenizer, items, batch_size=self.batch_size)


def limit_threads() -> None:
    """One actor per core: keep torch from oversubscribing the node's cores."""
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        import torch

        torch.set_num_threads(threads)

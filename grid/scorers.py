"""Ray Data actors: each loads a model (+ adapter) once and scores concept blocks.

Kept apart from the Train loop (:mod:`grid.workers`) so an actor imports only what
scoring needs: its start-up is part of every evaluation's wall time.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from embodiment.embeddings import extract_embeddings
from embodiment.models import load_model
from embodiment.choices import score_mcq
from embodiment.scoring import PrefixStore, score_ratings
from grid.node_cache import local_copy


class TorchThread:
    """Runs every torch call of one actor on one thread.

    Ray Data builds an actor on its main thread and calls it from a worker thread. Each
    thread that runs torch ops gets its own OpenMP team, and once a process holds more
    OpenMP threads than cores, libgomp stops spin-waiting at its barriers, and scoring
    slows down (docs/performance.md, "Figures behind code decisions"). Loading and scoring
    here keeps one team.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="egrid-torch")

    def run(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` on the torch thread; its result, or its exception raised here."""
        return self._pool.submit(fn, *args, **kwargs).result()


class _ModelActor:
    """A Ray Data actor holding one model (+ adapter), loaded on its own torch thread."""

    def __init__(self, model: str, adapter: str | None, load_options: dict | None):
        self.torch = TorchThread()
        # the job's model options (allow_download, trust_remote_code, allow_bin_weights), as trainers get them
        # a model or adapter in object storage is read from this node's checked copy
        self.lm = self.torch.run(
            load_model, local_copy(model), adapter=local_copy(adapter) if adapter else None, **(load_options or {})
        )


class RatingScorer(_ModelActor):
    """Ray Data actor: loads a model (+ adapter) once, scores concept batches on all dimensions."""

    def __init__(
        self,
        model: str,
        adapter: str | None,
        dimensions: dict[str, list[str]],
        batch_size: int = 32,
        load_options: dict | None = None,
    ):
        super().__init__(model, adapter, load_options)
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.prefixes = PrefixStore()  # each (dimension, language) prefix runs once per actor, not once per block

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return self.torch.run(self._score, batch)

    def _score(self, batch: pd.DataFrame) -> pd.DataFrame:
        frames = []
        for (lang, split), part in batch.groupby(["language", "split"], sort=False):
            scored = score_ratings(
                self.lm.model,
                self.lm.tokenizer,
                part["concept"].tolist(),
                self.dimensions[lang],
                lang,
                batch_size=self.batch_size,
                prefix_store=self.prefixes,
            )
            human = part.set_index("concept")
            scored["human"] = [float(human.loc[c, f"h_{d}"]) for c, d in zip(scored["concept"], scored["dimension"])]
            scored["split"] = split  # held-out or validation: the caller parts them
            frames.append(scored)
        return pd.concat(frames, ignore_index=True)


class EmbeddingExtractor(_ModelActor):
    """Ray Data actor: pooled hidden states of every (chosen) layer for concept batches."""

    def __init__(
        self,
        model: str,
        adapter: str | None,
        layers: list[int] | None,
        batch_size: int = 32,
        load_options: dict | None = None,
    ):
        super().__init__(model, adapter, load_options)
        self.layers = layers
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        emb = self.torch.run(
            extract_embeddings,
            self.lm.model,
            self.lm.tokenizer,
            batch["concept"].tolist(),
            kind=self.lm.kind,
            layers=self.layers,
            batch_size=self.batch_size,
        )
        frame = emb.to_frame()
        frame = frame[frame["pooling"] == "mean"].reset_index(drop=True)
        for column in ("language", "split"):
            frame[column] = frame["concept"].map(dict(zip(batch["concept"], batch[column])))
        # float32 arrays: Ray Data carries them as Arrow tensors, never as Python floats
        frame["vector"] = [np.asarray(v, dtype=np.float32) for v in frame["vector"]]
        return frame


class ChoiceScorer(_ModelActor):
    """Ray Data actor: per-option log-likelihoods of multiple-choice items."""

    def __init__(self, model: str, adapter: str | None, batch_size: int = 16, load_options: dict | None = None):
        super().__init__(model, adapter, load_options)
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        items = [
            {
                "index": int(r["index"]),
                "question": r["question"],
                "correct_option": r["correct_option"],
                "options": {k: r[k] for k in "ABCD"},
            }
            for _, r in batch.iterrows()
        ]
        return self.torch.run(score_mcq, self.lm.model, self.lm.tokenizer, items, batch_size=self.batch_size)


class HeadScorer(_ModelActor):
    """Ray Data actor: a trial's ratings read through its own trained head (a format with
    ``head_outputs``, such as regression), for concept batches: the head's outputs are the
    training dimensions, in order, per language."""

    def __init__(
        self,
        model: str,
        adapter: str | None,
        head: str,
        format: str,
        dimensions: dict[str, list[str]],
        batch_size: int = 32,
        load_options: dict | None = None,
    ):
        from embodiment.formats import get_format
        from embodiment.training import load_head

        super().__init__(model, adapter, load_options)
        outputs = len(next(iter(dimensions.values())))
        self.head = self.torch.run(load_head, local_copy(head), self.lm.model.config.hidden_size, outputs)
        self.format = get_format(format)
        self.dimensions = dimensions
        self.batch_size = batch_size

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return self.torch.run(self._score, batch)

    def _score(self, batch: pd.DataFrame) -> pd.DataFrame:
        frames = []
        for lang, part in batch.groupby("language", sort=False):
            concepts = part["concept"].tolist()
            predicted = self.format.predict(self.lm.model, self.head, self.lm.tokenizer, concepts, self.batch_size)
            for j, dim in enumerate(self.dimensions[lang]):
                frames.append(
                    pd.DataFrame(
                        {
                            "concept": concepts,
                            "language": lang,
                            "dimension": dim,
                            "expected": predicted[:, j],
                            "human": part[f"h_{dim}"].to_numpy(float),
                        }
                    )
                )
        return pd.concat(frames, ignore_index=True)

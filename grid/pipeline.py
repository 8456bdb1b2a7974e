"""Ray Data evaluation: concept batches streamed through pools of scorer actors.

One call evaluates one model (the base, or a trial's adapter) on the evaluation suite:
ratings for every (concept, dimension) of each evaluation language, hidden-state
embeddings, and multiple-choice items; results come back as pandas tables, or, for the
hidden states, block by block to a writer the caller gives.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import pandas as pd

from grid.data import LanguageData, load_mcq
from grid.progress import Milestones, is_plain
from grid.spec import JobSpec
from grid.scorers import ChoiceScorer, EmbeddingExtractor, HeadScorer, RatingScorer


#: tables a caller may take block by block (``evaluate_model(sink=...)``): the hidden states,
#: layers x poolings x hidden size floats a concept, the one that grows with the model
STREAMED = ("embeddings",)


@dataclass
class TrialHead:
    """A trained head to evaluate through: its safetensors file, the format that trained
    it and, per training language, the dimensions its outputs are (in order)."""

    path: str
    format: str
    dimensions: dict[str, list[str]]


def _concept_rows(data: dict[str, LanguageData], languages: list[str], split: str = "test") -> pd.DataFrame:
    rows = []
    for lang in languages:
        norms = getattr(data[lang], split)
        for i, word in enumerate(norms.words):
            rows.append(
                {
                    "concept": word,
                    "language": lang,
                    "split": split,
                    **{f"h_{d}": float(norms.means[i, j]) for j, d in enumerate(norms.dimensions)},
                }
            )
    return pd.DataFrame(rows)


def blocks(frame: pd.DataFrame, rows_per_block: int):
    """A Ray Dataset of ``frame`` cut into blocks of ``rows_per_block`` rows, in order.

    ``from_pandas`` makes one block of a whole frame, and Ray Data hands a block to one
    actor: every actor past the first would sit idle, and a lost actor would cost the whole
    table. (Its ``override_num_blocks`` splits with numpy, which drops pandas columns.)

    Args:
        frame: the rows to stream (concepts, or multiple-choice items).
        rows_per_block: rows per block; the map batch size, so one block is one call.

    Returns:
        A ``ray.data.Dataset`` whose blocks are consecutive slices of ``frame``.
    """
    import ray.data

    rows = max(1, rows_per_block)
    return ray.data.from_pandas([frame.iloc[i : i + rows] for i in range(0, len(frame), rows)] or [frame])


def _pool(spec: JobSpec, items: int):
    from ray.data import ActorPoolStrategy

    size = max(1, min(spec.resources.scorer_actors, items))
    # One block at a time per actor: a block is seconds of scoring, so queueing a second
    # one saves nothing, while the first actor up (Ray Data's default queues 4 at once)
    # would take the blocks meant for actors still loading their model (docs/performance.md).
    return ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1)


def _scored_in_blocks(spec: JobSpec, frame: pd.DataFrame, scorer: type, kwargs: dict, rows_per_block: int):
    """``frame`` through a pool of ``scorer`` actors, one block per call (lazy Dataset)."""
    res = {
        "num_cpus": spec.resources.cpus_per_worker if not spec.resources.gpus_per_scorer else 1,
        "num_gpus": spec.resources.gpus_per_scorer,
    }
    return blocks(frame, rows_per_block).map_batches(
        scorer,
        fn_constructor_kwargs={**kwargs, "load_options": spec.load_options()},
        batch_size=rows_per_block,
        batch_format="pandas",
        compute=_pool(spec, len(frame)),
        **res,
    )


def _collected(ds, keys: pd.DataFrame, label: str, sink=None) -> pd.DataFrame | None:
    """A lazy Dataset run to a pandas frame, or with ``sink`` each block handed to it as it
    comes (never all of them in memory; returns None). In plain progress mode, a line at
    0 / 50 / 100 % of the input rows (``keys``: their identifying columns, as the scorer's
    output carries them)."""
    marks = Milestones(label, len(keys.drop_duplicates())) if is_plain() else None
    columns, seen, frames = list(keys.columns), set(), []
    if marks is not None:
        marks.advance(0)  # "started", before the first block comes back
    for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
        if marks is not None:
            before = len(seen)
            seen.update(map(tuple, batch[columns].drop_duplicates().itertuples(index=False)))
            marks.advance(len(seen) - before)
        if sink is not None:
            sink(batch)
        else:
            frames.append(batch)
    if sink is not None:
        return None
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def evaluate_model(
    spec: JobSpec,
    model: str,
    adapter: str | None,
    data: dict[str, LanguageData],
    *,
    embeddings: bool = True,
    probe: bool = False,
    validation: bool = False,
    head: TrialHead | None = None,
    formats: list[str] | None = None,
    sink=None,
) -> dict[str, pd.DataFrame]:
    """Ratings (and embeddings, choices) of one model on the job's evaluation suite, via Ray Data.

    Args:
        spec: the job.
        model: the model reference.
        adapter: a trial's LoRA adapter folder, or None.
        data: train and held-out norms per language.
        embeddings: extract hidden-state embeddings (where the job asks for them).
        probe: also embed the training concepts (``split`` = ``train``), which the
            frozen-feature probe is fitted on; in the same pass as the held-out ones.
        validation: also rate the validation concepts (set aside from the training
            split), returned apart as ``validation_ratings``: a trial's score for the
            searcher, never written with the held-out ratings.
        head: a trial's trained head (formats with ``head_outputs``): its held-out
            ratings read through the head, returned as ``head_ratings``.
        formats: the evaluation formats of this pass (default: the job's
            ``evaluation.formats``).
        sink: called as ``sink(table, frame)`` with each block of the tables in
            :data:`STREAMED` as it comes (hidden states: the largest table, written by the
            caller block by block and never held whole); those tables are then not returned.

    Returns:
        ``ratings`` (concept, dimension, language, expected, p0..p5, digit_mass, human),
        ``embeddings`` (concept, layer, pooling, vector, language) and ``choices`` where asked for.
    """
    ev = spec.evaluation
    formats = list(ev.formats if formats is None else formats)
    who = f"{model} + adapter {adapter.rstrip('/').split('/')[-2]}" if adapter else model
    concepts = _concept_rows(data, list(ev.languages))
    # Blocks of a few scorer batches: each block is sorted by length on its own, so a
    # larger block pads less; a lost actor costs one block at most.
    batch = max(8, min(ev.batch_size * 8, -(-len(concepts) // max(1, spec.resources.scorer_actors))))
    weights = {"model": model, "adapter": adapter}
    pending = {}  # table -> (a lazy Ray Dataset, the identifying columns of its input rows)
    if "rating" in formats and len(concepts):
        pending.update(_rating_passes(spec, data, concepts, weights, batch, validation))
    if embeddings and ev.embeddings and len(concepts):
        pending["embeddings"] = _embedding_pass(spec, data, concepts, weights, batch, probe)
    head_langs = [lang for lang in ev.languages if head is not None and lang in head.dimensions]
    if head_langs:
        pending["head_ratings"] = _head_pass(spec, data, head, head_langs, weights, batch)
    if "mcq" in formats and spec.mcq.get("test"):
        pending["choices"] = _choice_pass(spec, weights)
    # The passes are independent: run them side by side, so their actor pools start and
    # load the model at the same time instead of one after another (where resources
    # allow; otherwise Ray queues the later pool's actors until the first pool is done).
    with ThreadPoolExecutor(max_workers=max(1, len(pending)), thread_name_prefix="egrid-eval") as pool:
        futures = {
            table: pool.submit(
                _collected,
                ds,
                keys,
                f"{who}: {table.replace('_', ' ')} of {len(keys):,} rows",
                partial(sink, table) if sink is not None and table in STREAMED else None,
            )
            for table, (ds, keys) in pending.items()
        }
        out = {table: future.result() for table, future in futures.items()}
    return _part_validation({table: frame for table, frame in out.items() if frame is not None})


def _rating_passes(
    spec: JobSpec, data: dict, concepts: pd.DataFrame, weights: dict, batch: int, validation: bool
) -> dict:
    """The held-out ratings pass; the validation concepts, where asked for, ride in the same
    pass (one actor pool and one model load fewer) and are parted by :func:`_part_validation`."""
    ev = spec.evaluation
    dims = {lang: data[lang].test.dimensions for lang in ev.languages}
    options = {**weights, "dimensions": dims, "batch_size": ev.batch_size}
    held_back = [lang for lang in ev.languages if data[lang].validation is not None]
    rows = concepts
    if validation and held_back:
        rows = pd.concat([concepts, _concept_rows(data, held_back, "validation")], ignore_index=True)
    return {"ratings": (_scored_in_blocks(spec, rows, RatingScorer, options, batch), rows[["concept", "language"]])}


def _part_validation(out: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The validation concepts' ratings apart from the held-out ones, as ``validation_ratings``
    (a trial's score for the searcher, never written with the held-out ratings)."""
    ratings = out.get("ratings")
    if ratings is None or "split" not in ratings.columns:
        return out
    is_validation = ratings["split"] == "validation"
    if is_validation.any():
        out["validation_ratings"] = ratings[is_validation].drop(columns="split").reset_index(drop=True)
    out["ratings"] = ratings[~is_validation].drop(columns="split").reset_index(drop=True)
    return out


def _embedding_pass(spec: JobSpec, data: dict, concepts: pd.DataFrame, weights: dict, batch: int, probe: bool) -> tuple:
    """Hidden states of the held-out concepts (and of the training ones, for the probe)."""
    ev = spec.evaluation
    layers = None if ev.layers == "all" else list(ev.layers)
    unique = concepts[["concept", "language", "split"]].drop_duplicates("concept")
    if probe:
        train = _concept_rows(data, list(ev.languages), "train")[["concept", "language", "split"]]
        unique = pd.concat([unique, train[~train["concept"].isin(unique["concept"])]], ignore_index=True)
    options = {**weights, "layers": layers, "batch_size": ev.batch_size}
    return _scored_in_blocks(spec, unique, EmbeddingExtractor, options, batch), unique[["concept"]]


def _head_pass(spec: JobSpec, data: dict, head: TrialHead, languages: list[str], weights: dict, batch: int) -> tuple:
    """Held-out ratings read through a trial's trained head."""
    rows = _concept_rows(data, languages)
    options = {
        **weights,
        "head": head.path,
        "format": head.format,
        "dimensions": {lang: head.dimensions[lang] for lang in languages},
        "batch_size": spec.evaluation.batch_size,
    }
    return _scored_in_blocks(spec, rows, HeadScorer, options, batch), rows[["concept", "language"]]


def _choice_pass(spec: JobSpec, weights: dict) -> tuple:
    """The colour multiple-choice questions, one row per question."""
    items = load_mcq(spec.mcq["test"])
    frame = pd.DataFrame(
        [
            {"index": it["index"], "question": it["question"], "correct_option": it["correct_option"], **it["options"]}
            for it in items
        ]
    )
    per_block = max(1, min(64, -(-len(frame) // max(1, spec.resources.scorer_actors))))
    return _scored_in_blocks(spec, frame, ChoiceScorer, dict(weights), per_block), frame[["index"]]

"""Ray Data evaluation: the concept table reaches every scorer actor, and a pool of actors
rates exactly as one plain call does."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

from embodiment.models import load_model
from embodiment.scoring import score_ratings
from grid.data import prepare_norms
from grid.pipeline import blocks, evaluate_model
from grid.spec import parse_job


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_blocks_keep_rows_in_order_and_feed_every_actor(local_ray):
    from ray.data import ActorPoolStrategy

    class Pid:  # defined here so Ray ships it by value: workers cannot import a test module
        def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
            time.sleep(0.3)  # long enough that no block finishes before the other actor is up
            return batch.assign(pid=os.getpid())

    frame = pd.DataFrame({"concept": [f"w{i}" for i in range(10)], "x": np.arange(10.0)})
    ds = blocks(frame, 4)
    assert ds.num_blocks() == 3
    pd.testing.assert_frame_equal(ds.to_pandas().reset_index(drop=True), frame)

    many = pd.DataFrame({"concept": [f"w{i}" for i in range(16)]})
    out = (
        blocks(many, 2)
        .map_batches(Pid, batch_size=2, batch_format="pandas", compute=ActorPoolStrategy(size=2), num_cpus=1)
        .to_pandas()
    )
    assert sorted(out["concept"]) == sorted(many["concept"])
    assert out["pid"].nunique() == 2  # one block of the whole table would keep an actor idle


def test_two_scorer_actors_rate_as_one_plain_call(local_ray, tiny_model_dir):
    raw = {
        "name": "pipe",
        "models": [tiny_model_dir],
        "norms": {"en": {"source": "embedded", "max_train": 10, "max_test": 20}},
        "evaluation": {"batch_size": 4, "embeddings": False},
        "resources": {"scorer_actors": 2, "cpus_per_worker": 1},
    }
    spec = parse_job(raw)
    data = prepare_norms(spec.norms, spec.seed)
    ratings = evaluate_model(spec, tiny_model_dir, None, data, embeddings=False)["ratings"]

    test = data["en"].test
    lm = load_model(tiny_model_dir)
    plain = score_ratings(lm.model, lm.tokenizer, test.words, test.dimensions, batch_size=4)
    got = ratings.set_index(["concept", "dimension"])["expected"]
    want = plain.set_index(["concept", "dimension"])["expected"]
    assert len(got) == len(want) == len(test.words) * len(test.dimensions)
    np.testing.assert_allclose(got.loc[want.index].to_numpy(), want.to_numpy(), atol=1e-5)
    human = pd.DataFrame(test.means, index=test.words, columns=test.dimensions)
    np.testing.assert_allclose(
        ratings["human"], [human.at[c, d] for c, d in zip(ratings["concept"], ratings["dimension"])]
    )


def test_a_trial_with_a_head_is_rated_through_it_as_one_plain_call_does(local_ray, tiny_model_dir, tmp_path):
    """A regression trial's held-out ratings read through its own head (the head pass),
    equal to the format's own predict called directly; then head_<metric> rows in the
    metrics, their Spearman equal to scipy's on those ratings."""
    import torch
    from safetensors.torch import save_file
    from scipy import stats

    from embodiment.formats import get_format
    from embodiment.training import load_head
    from grid.aggregate import aggregate
    from grid.pipeline import TrialHead

    raw = {
        "name": "pipe",
        "models": [tiny_model_dir],
        "norms": {"en": {"source": "embedded", "max_train": 10, "max_test": 20}},
        "evaluation": {"batch_size": 4, "embeddings": False, "formats": ["rating"], "subsets": ["all"], "n_boot": 10},
        "resources": {"scorer_actors": 1, "cpus_per_worker": 1},
    }
    spec = parse_job(raw)
    data = prepare_norms(spec.norms, spec.seed)
    test = data["en"].test
    lm = load_model(tiny_model_dir)
    torch.manual_seed(0)
    head = torch.nn.Linear(lm.model.config.hidden_size, len(test.dimensions))
    with torch.no_grad():  # outputs inside the 0-5 clamp, so every dimension varies
        head.weight.mul_(0.1)
        head.bias.fill_(0.5)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp_path / "head.safetensors"))
    trial_head = TrialHead(str(tmp_path / "head.safetensors"), "regression", {"en": list(test.dimensions)})

    got = evaluate_model(spec, tiny_model_dir, None, data, embeddings=False, head=trial_head)["head_ratings"]
    plain = get_format("regression").predict(
        lm.model,
        load_head(trial_head.path, lm.model.config.hidden_size, len(test.dimensions)),
        lm.tokenizer,
        test.words,
        4,
    )
    wide = got.pivot(index="concept", columns="dimension", values="expected").loc[test.words, test.dimensions]
    np.testing.assert_allclose(wide.to_numpy(float), plain, rtol=1e-5, atol=1e-6)
    assert got.groupby("dimension")["human"].apply(list).loc[test.dimensions[0]] == list(test.means[:, 0])

    tagged = got.assign(trial_id="t1", condition="regression", model="m")
    metrics = aggregate({"head_ratings": tagged}, subsets=("all",), n_boot=10)["metrics"]
    spearman = metrics[metrics["metric"] == "head_spearman"].set_index("dimension")["value"]
    for j, dim in enumerate(test.dimensions):
        assert spearman[dim] == pytest.approx(stats.spearmanr(plain[:, j], test.means[:, j]).statistic, abs=1e-9)
    assert {"head_rsa", "head_spearman"} <= set(metrics["metric"]) and set(metrics["eval_set"]) == {"en/head"}


def test_hidden_states_stream_block_by_block_and_a_second_attempt_replaces_the_first(
    local_ray, tiny_model_dir, tmp_path
):
    """With a writer, the embeddings come back in blocks (never the whole table in one
    frame), rows equal to the collected table's; a part writer cleared before each
    attempt leaves one attempt's parts in the store, however many the first one wrote."""
    import ray

    from grid.results import PART, PartWriter, ResultsActor, ResultsStore

    raw = {
        "name": "stream",
        "models": [tiny_model_dir],
        "norms": {"en": {"source": "embedded", "max_train": 10, "max_test": 24}},
        "evaluation": {"batch_size": 2, "layers": [0, 2], "formats": ["rating"]},
        "resources": {"scorer_actors": 2, "cpus_per_worker": 1},
    }
    spec = parse_job(raw)
    data = prepare_norms(spec.norms, spec.seed)
    whole = evaluate_model(spec, tiny_model_dir, None, data, formats=[])["embeddings"]  # no ratings pass
    blocks_seen = []
    streamed = evaluate_model(
        spec, tiny_model_dir, None, data, sink=lambda table, frame: blocks_seen.append((table, frame))
    )
    assert "embeddings" not in streamed and "ratings" in streamed
    assert len(blocks_seen) >= 2 and {t for t, _ in blocks_seen} == {"embeddings"}
    keys = ["concept", "layer", "pooling"]
    joined = pd.concat([f for _, f in blocks_seen], ignore_index=True).sort_values(keys).reset_index(drop=True)
    whole = whole.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(joined[keys], whole[keys])
    np.testing.assert_allclose(np.stack(joined["vector"]), np.stack(whole["vector"]), atol=1e-5)

    actor = ray.remote(ResultsActor).remote(str(tmp_path / "run"))
    for attempt, frames in enumerate(([whole[:5], whole[5:10], whole[10:]], [whole[:20], whole[20:]])):
        writer = PartWriter(actor, "trial:t1", {"trial_id": "t1", "model": "m"})
        writer.clear(["embeddings"])
        for frame in frames:
            writer("embeddings", frame)
    assert ray.get(actor.keys.remote("embeddings")) == [f"trial:t1{PART}00000", f"trial:t1{PART}00001"]
    stored = ResultsStore(str(tmp_path / "run")).read("embeddings")
    assert len(stored) == len(whole) and not stored.duplicated(keys).any()
    assert set(stored["trial_id"]) == {"t1"}

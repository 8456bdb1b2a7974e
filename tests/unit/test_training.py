"""Training runs for real: every format lowers its loss on a tiny model; the rating format
learns a synthetic rule well enough to raise held-out Spearman; adapters save as safetensors."""

import string

import numpy as np
import pytest
import torch
from scipy import stats

from embodiment.errors import InputError
from embodiment.formats import FORMATS, TaskData, alignment_loss
from embodiment.models import tiny_causal_lm, tiny_tokenizer
from embodiment.models.loading import load_adapter
from embodiment.norms import Norms
from embodiment.scoring import score_ratings
from embodiment.training import BatchPlan, TrainConfig, learning_rate_at, load_head, train, verify_adapter
from embodiment.training.batching import _epoch_order, _micro_batch_indices


def _words(rng, n):
    return list(
        dict.fromkeys(
            rng.choice(list("abcdef")) + "".join(rng.choice(list(string.ascii_lowercase), 3)) for _ in range(n)
        )
    )


def _rule_norms(words, dims=("Visual",)):
    """Synthetic, learnable rule: the rating is the index of the first letter in 'abcdef'."""
    base = np.array(["abcdef".index(w[0]) for w in words], dtype=float)
    cols = [base if k % 2 == 0 else 5 - base for k in range(len(dims))]
    return Norms(words, list(dims), np.column_stack(cols), "en", "synthetic")


MCQ = [
    {
        "index": i,
        "question": f"Colour {c}?",
        "options": {"A": "red", "B": "blue", "C": "green", "D": "black"},
        "correct_option": "ABCD"[i % 4],
    }
    for i, c in enumerate("abcdefgh")
]
# questions from 1 to 24 words: batches drawn at random pad heavily
VARIED_MCQ = [
    {
        "index": i,
        "question": " ".join(["what colour is it"] * (1 + (7 * i) % 6)) + "?",
        "options": {"A": "red", "B": "blue", "C": "green", "D": "black"},
        "correct_option": "ABCD"[i % 4],
    }
    for i in range(48)
]


def _data(rng, fmt):
    words = _words(rng, 40)
    norms = _rule_norms(words, ("Visual", "Haptic"))
    return TaskData(norms={"en": norms}, mcq_items=MCQ if fmt == "mcq" else [], seed=0)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_lowers_its_loss_under_deepspeed(tmp_path, rng, fmt):
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=1)
    cfg = TrainConfig(format=fmt, lora=False, learning_rate=3e-3, steps=30, batch_size=8, engine="deepspeed")
    result = train(cfg, model, tok, _data(rng, fmt), tmp_path / fmt)
    assert result.engine == "deepspeed" and result.steps == 30 and len(result.losses) == 30
    assert np.mean(result.losses[-5:]) < 0.8 * np.mean(result.losses[:5])
    # each format evaluates the trained model
    fmt_obj = FORMATS[fmt]().configure(_data(rng, fmt))
    head = load_head(result.head_path, 48, 2) if result.head_path else None
    model.eval()
    data = _data(rng, fmt)
    ev = fmt_obj.evaluate(model, tok, data, head=head)
    assert ev.summary and all(np.isfinite(v) for v in ev.summary.values())
    _check_summary_values(fmt, ev, data)


def _check_summary_values(fmt: str, ev, data) -> None:
    """Each format's summary numbers recomputed from its own output rows (scipy, loops)."""
    from scipy import stats

    if fmt in ("rating", "regression"):
        norms = data.norms["en"]
        rows = ev.ratings
        assert len(rows) == len(norms.words) * len(norms.dimensions)
        human = {(w, d): norms.means[i, j] for i, w in enumerate(norms.words) for j, d in enumerate(norms.dimensions)}
        assert all(
            h == pytest.approx(human[(c, d)]) for c, d, h in zip(rows["concept"], rows["dimension"], rows["human"])
        )
        per_dim = [stats.spearmanr(g["expected"], g["human"]).statistic for _, g in rows.groupby("dimension")]
        assert ev.summary["mean_spearman"] == pytest.approx(np.mean(per_dim), abs=1e-12)
        if fmt == "rating":
            probs = rows[[f"p{k}" for k in range(6)]].to_numpy()
            np.testing.assert_allclose(rows["expected"], probs @ np.arange(6), atol=1e-9)
    elif fmt == "mcq":
        correct = {it["index"]: it["correct_option"] for it in data.mcq_items}
        hits = []
        for index, g in ev.choices.groupby("index"):
            hits.append(g.loc[g["loglik"].idxmax(), "option"] == correct[index])
        assert len(hits) == len(data.mcq_items)
        assert ev.summary["accuracy"] == pytest.approx(np.mean(hits))
    elif fmt == "pairwise":
        frame = ev.choices
        assert ev.summary["accuracy"] == pytest.approx(
            np.mean([(("A" if p >= 0.5 else "B") == a) for p, a in zip(frame["p_a"], frame["answer"])])
        )
        assert ev.summary["spearman_gap"] == pytest.approx(stats.spearmanr(frame["p_a"], frame["gap"]).statistic)
    elif fmt == "alignment":
        per_language = [v for k, v in ev.summary.items() if k.startswith("rsa_")]
        assert per_language and ev.summary["rsa"] == pytest.approx(np.mean(per_language))
        assert -1.0 <= ev.summary["rsa"] <= 1.0
    else:
        raise AssertionError(f"no value check for the format {fmt!r}: add one")


def test_rating_finetune_raises_heldout_spearman(tmp_path):
    rng = np.random.default_rng(0)
    train_words = _words(rng, 300)
    test_words = [w for w in _words(rng, 80) if w not in set(train_words)]
    train_norms, test_norms = _rule_norms(train_words), _rule_norms(test_words)
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, hidden=64, layers=2)

    def heldout():
        s = score_ratings(model, tok, test_words, ["Visual"], batch_size=64)
        return stats.spearmanr(s["expected"], test_norms.column("Visual")).statistic

    before = heldout()
    cfg = TrainConfig(format="rating", lora=False, learning_rate=3e-3, steps=300, batch_size=16, engine="deepspeed")
    result = train(cfg, model, tok, TaskData(norms={"en": train_norms}), tmp_path)
    model.eval()
    after = heldout()
    assert result.losses[-1] < 0.1 * result.losses[0]
    assert before < 0.5 and after > 0.9


@pytest.mark.parametrize("zero_stage", [0, 3])
def test_lora_adapter_saved_as_safetensors_and_reloads(tmp_path, rng, zero_stage):
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=2)
    data = TaskData(norms={"en": _rule_norms(_words(rng, 40))})
    cfg = TrainConfig(
        format="rating", lora=True, lora_rank=4, learning_rate=1e-2, steps=20, batch_size=8, zero_stage=zero_stage
    )
    result = train(cfg, model, tok, data, tmp_path)
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert verify_adapter(result.adapter_dir) > 0
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))
    reloaded = load_adapter(tiny_causal_lm(tok, seed=2), result.adapter_dir).eval()
    model.eval()
    a = score_ratings(model, tok, ["abcd", "fghi"], ["Visual"])
    b = score_ratings(reloaded, tok, ["abcd", "fghi"], ["Visual"])
    assert np.allclose(a["expected"], b["expected"], atol=1e-4)


def test_torch_fallback_engine_trains(tmp_path, rng):
    tok = tiny_tokenizer()
    cfg = TrainConfig(format="rating", lora=False, learning_rate=3e-3, steps=20, batch_size=8, engine="torch")
    result = train(cfg, tiny_causal_lm(tok), tok, TaskData(norms={"en": _rule_norms(_words(rng, 40))}), tmp_path)
    assert result.engine == "torch" and np.mean(result.losses[-5:]) < np.mean(result.losses[:5])


@pytest.mark.parametrize(
    "engine,fmt,batches",
    [
        ("torch", "rating", "concept"),
        ("deepspeed", "rating", "concept"),
        ("deepspeed", "rating", "dimension"),
        ("torch", "mcq", "concept"),
    ],
)
def test_resume_continues_the_same_run_exactly(tmp_path, rng, engine, fmt, batches):
    """10 steps, then 10 more from the step-10 checkpoint (weights + AdamW moments) equal
    20 steps straight: same losses, same final adapter (mcq: batches grouped by length)."""

    tok = tiny_tokenizer()
    data = TaskData(norms={"en": _rule_norms(_words(rng, 40), ("Visual", "Haptic", "Auditory"))}, mcq_items=VARIED_MCQ)
    cfg = TrainConfig(
        format=fmt,
        lora=True,
        learning_rate=1e-2,
        steps=20,
        batch_size=6,
        engine=engine,
        checkpoint_every=10,
        rating_batches=batches,
        lr_schedule="cosine",
        warmup=0.2,
    )
    straight = train(cfg, tiny_causal_lm(tok, seed=5), tok, data, tmp_path / "a")
    ckpt = tmp_path / "a" / "checkpoints" / "step_000010"
    assert (ckpt / "train_state.json").exists() and (ckpt / "optimizer.safetensors").exists()
    resumed = train(cfg, tiny_causal_lm(tok, seed=5), tok, data, tmp_path / "b", resume_from=ckpt)
    assert resumed.steps == 20 and len(resumed.losses) == 20
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-5)
    _assert_same_adapters(resumed.adapter_dir, straight.adapter_dir, rtol=1e-5, atol=1e-6)


def test_data_order_depends_only_on_seed_and_step():
    a = _micro_batch_indices(10, 7, 4, 1, 2, seed=3)
    assert list(a) == list(_micro_batch_indices(10, 7, 4, 1, 2, seed=3))
    # the ranks of one micro-step take disjoint slices of the same stream
    r0, r1 = _micro_batch_indices(100, 0, 8, 0, 2, 0), _micro_batch_indices(100, 0, 8, 1, 2, 0)
    assert not set(r0) & set(r1)


def _padding_share(lengths, batches):
    """Loop oracle: padded positions over all positions of right-padded batches."""
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths[i] for b in batches for i in b) / padded


def test_length_grouped_epochs_see_every_example_once_in_batches_of_similar_length():
    n, batch = 203, 8  # 25 full batches and a partial one
    lengths = np.random.default_rng(0).integers(10, 200, n)
    plan = BatchPlan(keys=lengths)
    for epoch in (0, 1):
        order = _epoch_order(n, 3, epoch, batch, plan)
        assert sorted(order) == list(range(n))  # every example once per epoch
        assert list(order) == list(_epoch_order(n, 3, epoch, batch, plan))  # seeded
    assert list(_epoch_order(n, 3, 0, batch, plan)) != list(_epoch_order(n, 4, 0, batch, plan))
    grouped = [list(_micro_batch_indices(n, m, batch, 0, 1, 3, plan)) for m in range(n // batch)]
    plain = [list(_micro_batch_indices(n, m, batch, 0, 1, 3)) for m in range(n // batch)]
    assert all(len(set(b)) == batch for b in grouped)
    assert _padding_share(lengths, grouped) < 0.25 * _padding_share(lengths, plain)
    # two ranks read disjoint batches of the same grouped stream
    r0, r1 = _micro_batch_indices(n, 0, batch, 0, 2, 3, plan), _micro_batch_indices(n, 0, batch, 1, 2, 3, plan)
    assert not set(r0) & set(r1)


def test_training_batches_mcq_by_length_and_never_alignment(tmp_path, rng, monkeypatch):
    from embodiment.formats.mcq import MultipleChoiceFormat

    widths = []
    collate = MultipleChoiceFormat.collate

    def spy(self, examples, tokenizer):
        out = collate(self, examples, tokenizer)
        if len(examples) > 1:  # not the one-example calls that measure lengths
            widths.append(1 - float(out["attention_mask"].float().mean()))
        return out

    monkeypatch.setattr(MultipleChoiceFormat, "collate", spy)
    tok = tiny_tokenizer()
    data = TaskData(norms={"en": _rule_norms(_words(rng, 8))}, mcq_items=VARIED_MCQ)
    share = {}
    for grouped in (True, False):
        widths.clear()
        cfg = TrainConfig(format="mcq", lora=False, steps=6, batch_size=8, engine="torch", group_by_length=grouped)
        train(cfg, tiny_causal_lm(tok, seed=1), tok, data, tmp_path / str(grouped))
        share[grouped] = float(np.mean(widths))
    assert len(widths) == 6
    assert share[True] < 0.5 * share[False]
    assert FORMATS["mcq"].batch_by_length and not FORMATS["alignment"].batch_by_length


def test_alignment_loss_is_zero_for_identical_geometry_and_differentiable():
    x = torch.randn(6, 5, requires_grad=True)
    assert float(alignment_loss(x * 3.0, x.detach())) == pytest.approx(0.0, abs=1e-6)
    loss = alignment_loss(x, torch.randn(6, 5))
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_config_validation():
    with pytest.raises(InputError, match="did you mean 'learning_rate'"):
        TrainConfig.from_dict({"learning_rat": 1e-3})
    with pytest.raises(InputError, match="zero_stage"):
        TrainConfig.from_dict({"zero_stage": 4})
    with pytest.raises(InputError, match="did you mean 'rating'"):
        TrainConfig.from_dict({"format": "ratings"})


def test_rating_loss_matches_the_scorer_distribution():
    """The left-padded training loss reads the same next-token distribution as the scorer."""
    from embodiment.formats import get_format
    from embodiment.scoring import soft_digit_target
    from embodiment.training import ObjectiveModel

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=4)
    fmt = get_format("rating")
    examples = [
        {"concept": "apple", "dimension": "Visual", "language": "en", "target": 2.4},
        {"concept": "a much longer concept", "dimension": "foot", "language": "en", "target": 5.0},
    ]
    module = ObjectiveModel(model, fmt.prepare(tok))
    with torch.no_grad():
        loss = float(module(**fmt.collate(examples, tok)))
    scored = {r["concept"]: r for _, r in score_ratings(model, tok, ["apple"], ["Visual"]).iterrows()}
    scored.update(
        {r["concept"]: r for _, r in score_ratings(model, tok, ["a much longer concept"], ["foot"]).iterrows()}
    )
    ref = []
    for ex in examples:
        r = scored[ex["concept"]]
        logp_digits = np.log(np.array([r[f"p{d}"] for d in range(6)]) * r["digit_mass"])
        ref.append(-(soft_digit_target(ex["target"]) * logp_digits).sum())
    assert loss == pytest.approx(float(np.mean(ref)), abs=1e-4)


def test_deepspeed_on_cpu_never_jit_compiles_its_shm_comm_op(tmp_path, monkeypatch):
    """A compile killed halfway leaves a lock in the extensions dir that makes every later
    deepspeed.initialize wait forever; training must not depend on that op at all."""
    from deepspeed.comm.torch import build_shm_op

    from embodiment.training import ensure_distributed

    stale = tmp_path / "py311_cpu" / "deepspeed_shm_comm"
    stale.mkdir(parents=True)
    (stale / "lock").touch()  # what a killed compile leaves behind
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    ensure_distributed("gloo")
    assert build_shm_op() is None
    assert sorted(p.name for p in stale.iterdir()) == ["lock"]


@pytest.mark.parametrize("engine", ["deepspeed", "torch"])
def test_amp_bf16_trains_fp32_weights_with_bf16_matmuls(tmp_path, rng, engine):
    """amp_bf16: the weights stay fp32 while the linears compute in bf16 (DeepSpeed's
    torch_autocast, or torch.autocast in the torch loop), and the loss goes down."""
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=1)
    seen = set()
    hooks = [
        m.register_forward_hook(lambda mod, args, out: seen.add(out.dtype))
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    cfg = TrainConfig(
        format="rating", lora=False, learning_rate=3e-3, steps=20, batch_size=8, engine=engine, precision="amp_bf16"
    )
    result = train(cfg, model, tok, TaskData(norms={"en": _rule_norms(_words(rng, 40))}), tmp_path)
    for h in hooks:
        h.remove()
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert np.mean(result.losses[-5:]) < 0.8 * np.mean(result.losses[:5])


def _rating_examples():
    return [
        {"concept": c, "dimension": d, "language": "en", "target": t}
        for c, d, t in [
            ("apple", "Visual", 3.2),
            ("a much longer concept", "Auditory", 4.6),
            ("lemon peel", "taste", 2.5),
            ("cat", "Visual", 4.1),
            ("sky", "Visual", 4.9),
            ("noise", "Auditory", 0.4),
            ("x", "Haptic", 1.0),
        ]
    ]


@pytest.mark.parametrize("lora", [True, False])
@pytest.mark.parametrize("loss_kind", ["soft_ce", "both"])
def test_shared_prefix_loss_and_every_gradient_equal_the_plain_batch(lora, loss_kind):
    """Each distinct prompt prefix runs once and its keys and values serve every example;
    the loss and every trainable gradient equal the full-prompt batch's (1e-5 relative)."""
    from embodiment.formats.rating import RatingFormat
    from embodiment.training import ObjectiveModel
    from embodiment.training.model import _wrap_lora

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=6)
    if lora:
        model = _wrap_lora(model, TrainConfig(lora_rank=4))
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at zero: give the adapter an effect on the prefix
                torch.nn.init.normal_(p, std=0.05, generator=torch.Generator().manual_seed(len(name)))
    model.train()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    results = {}
    for shared in (False, True):
        fmt = RatingFormat(shared_prefix=shared, loss_kind=loss_kind)
        batch = fmt.collate(_rating_examples(), tok)
        if shared:  # 4 distinct prefixes for 7 examples, each run once
            assert batch["prefix_ids"].shape[0] == 4 and batch["input_ids"].shape[1] < batch["prefix_ids"].shape[1]
        model.zero_grad(set_to_none=True)
        loss = ObjectiveModel(model, fmt.prepare(tok))(**batch)
        loss.backward()
        results[shared] = (float(loss), {n: p.grad.clone() for n, p in params.items()})
    (plain_loss, plain), (shared_loss, shared) = results[False], results[True]
    assert shared_loss == pytest.approx(plain_loss, rel=1e-5)
    for name, grad in plain.items():
        assert float(grad.norm()) > 0, name
        torch.testing.assert_close(shared[name], grad, rtol=1e-5, atol=1e-5 * float(grad.abs().max()))


#: a short LoRA rating run whose every step two set-ups must take alike
SIX_STEPS = {"format": "rating", "lora": True, "learning_rate": 1e-2, "steps": 6, "batch_size": 6}


def _assert_same_adapters(a_dir: str, b_dir: str, **tolerance) -> None:
    from safetensors.torch import load_file

    a = load_file(f"{a_dir}/adapter_model.safetensors")
    b = load_file(f"{b_dir}/adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], **tolerance)


@pytest.mark.parametrize("engine", ["deepspeed", "torch"])
def test_shared_prefix_training_equals_plain_training(tmp_path, rng, engine):
    """Six optimizer steps on shared prefixes follow the plain run's losses and weights."""
    tok = tiny_tokenizer()
    data = TaskData(norms={"en": _rule_norms(_words(rng, 24), ("Visual", "Haptic", "Auditory"))})
    runs = {}
    for shared in (False, True):
        cfg = TrainConfig(**SIX_STEPS, engine=engine, shared_prefix=shared)
        runs[shared] = train(cfg, tiny_causal_lm(tok, seed=2), tok, data, tmp_path / str(shared))
    np.testing.assert_allclose(runs[True].losses, runs[False].losses, rtol=1e-4)
    _assert_same_adapters(runs[True].adapter_dir, runs[False].adapter_dir, rtol=1e-4, atol=1e-6)


def test_concept_batches_hold_every_dimension_of_their_concepts():
    """Each concept's prompts share a batch; every example is seen once per epoch."""
    from embodiment.formats.rating import RatingFormat
    from embodiment.training import batch_plan

    words, dims = [f"w{i}" for i in range(10)], ["Visual", "Haptic", "Auditory"]
    examples = RatingFormat().examples(TaskData(norms={"en": Norms(words, dims, np.ones((10, 3)), "en", "x")}))
    cfg = TrainConfig(batch_size=6)
    plan = batch_plan(RatingFormat(batches="concept"), examples, None, cfg)
    for epoch in (0, 1):
        order = _epoch_order(len(examples), 7, epoch, 6, plan)
        assert sorted(order) == list(range(len(examples)))
        for start in range(0, len(order), 6):
            concepts = [examples[i]["concept"] for i in order[start : start + 6]]
            assert len(set(concepts)) == 2 and all(concepts.count(c) == 3 for c in concepts)
    assert list(_epoch_order(len(examples), 7, 0, 6, plan)) != list(_epoch_order(len(examples), 7, 1, 6, plan))
    # dimension batches: one prompt prefix per batch wherever a dimension has a full batch left
    plan = batch_plan(RatingFormat(batches="dimension"), examples, tiny_tokenizer(), cfg)
    order = _epoch_order(len(examples), 7, 0, 5, plan)
    one_dim = [len({examples[i]["dimension"] for i in order[s : s + 5]}) == 1 for s in range(0, 30, 5)]
    assert sum(one_dim) >= 4 and sorted(order) == list(range(30))


def test_learning_rate_schedule_loop_oracle():
    import math

    cfg = TrainConfig(learning_rate=1.0, lr_schedule="cosine", warmup=0.2)
    rates = [learning_rate_at(cfg, s, 10) for s in range(10)]
    assert rates[:2] == pytest.approx([1 / 3, 2 / 3])  # two warm-up steps rise linearly
    assert rates[2:] == pytest.approx([0.5 * (1 + math.cos(math.pi * (s - 2) / 8)) for s in range(2, 10)])
    linear = TrainConfig(learning_rate=2.0, lr_schedule="linear")
    assert [learning_rate_at(linear, s, 4) for s in range(4)] == pytest.approx([2.0, 1.5, 1.0, 0.5])
    assert learning_rate_at(TrainConfig(learning_rate=3e-4), 99, 100) == 3e-4
    with pytest.raises(InputError, match="lr_schedule"):
        TrainConfig.from_dict({"lr_schedule": "step"})


def test_lora_on_the_top_blocks_only_trains_those_blocks(tmp_path, rng):
    """``lora_top_layers: 1`` adapts the last block alone (every linear of it), and learns."""
    from safetensors.torch import load_file

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=3)
    last = model.config.num_hidden_layers - 1
    linears = {
        n.rsplit(".", 1)[-1]
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and f".layers.{last}." in n
    }
    cfg = TrainConfig(format="rating", lora_top_layers=1, learning_rate=1e-2, steps=12, batch_size=6, engine="torch")
    result = train(
        cfg, model, tok, TaskData(norms={"en": _rule_norms(_words(rng, 30), ("Visual", "Haptic"))}), tmp_path
    )
    keys = load_file(f"{result.adapter_dir}/adapter_model.safetensors")
    assert keys and all(f".layers.{last}." in k for k in keys)
    assert {k.split(f".layers.{last}.")[1].split(".")[1] for k in keys} == linears
    assert np.mean(result.losses[-4:]) < np.mean(result.losses[:4])


@pytest.mark.parametrize("lora", [True, False])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(lora):
    """Activations recomputed in the backward pass: the loss and every trainable gradient
    equal those of the stored-activation pass, with and without LoRA (full prompts: a
    checkpointed model returns no cache for shared prefixes, so training turns them off)."""
    shared = False
    from embodiment.formats.rating import RatingFormat
    from embodiment.training import ObjectiveModel, enable_checkpointing
    from embodiment.training.model import _wrap_lora

    tok = tiny_tokenizer()
    results = {}
    for checkpointing in (False, True):
        model = tiny_causal_lm(tok, seed=7, layers=3)
        if checkpointing:
            enable_checkpointing(model)
        if lora:
            model = _wrap_lora(model, TrainConfig(lora_rank=4))
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    torch.nn.init.normal_(p, std=0.05, generator=torch.Generator().manual_seed(len(name)))
        model.train()
        fmt = RatingFormat(shared_prefix=shared)
        loss = ObjectiveModel(model, fmt.prepare(tok))(**fmt.collate(_rating_examples(), tok))
        loss.backward()
        results[checkpointing] = (
            float(loss),
            {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad},
        )
        assert model.is_gradient_checkpointing == checkpointing if hasattr(model, "is_gradient_checkpointing") else True
    (plain_loss, plain), (ckpt_loss, ckpt) = results[False], results[True]
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-6)
    assert plain.keys() == ckpt.keys()
    for name, grad in plain.items():
        assert float(grad.norm()) > 0, name
        torch.testing.assert_close(ckpt[name], grad, rtol=1e-5, atol=1e-6 * float(grad.abs().max()))


def test_training_with_checkpointing_lowers_the_loss_on_full_prompts(tmp_path, rng):
    from embodiment.training import train

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=3)
    cfg = TrainConfig(
        format="rating",
        lora=False,
        learning_rate=3e-3,
        steps=20,
        batch_size=8,
        engine="torch",
        gradient_checkpointing=True,
    )
    result = train(cfg, model, tok, TaskData(norms={"en": _rule_norms(_words(rng, 40))}), tmp_path)
    assert model.is_gradient_checkpointing
    assert np.mean(result.losses[-5:]) < 0.8 * np.mean(result.losses[:5])


def test_optimizer_offload_follows_the_same_losses_and_weights(tmp_path, rng):
    """ZeRO-2 with the optimizer's states in CPU memory takes the steps ZeRO-2 takes on the
    device; the option refuses a setup without ZeRO."""
    from embodiment.training.distributed import deepspeed_config

    tok = tiny_tokenizer()
    data = TaskData(norms={"en": _rule_norms(_words(rng, 24), ("Visual", "Haptic"))})
    runs = {}
    for offload in (False, True):
        cfg = TrainConfig(**SIX_STEPS, zero_stage=2, offload_optimizer=offload)
        assert ("offload_optimizer" in deepspeed_config(cfg)["zero_optimization"]) is offload
        runs[offload] = train(cfg, tiny_causal_lm(tok, seed=2), tok, data, tmp_path / str(offload))
    assert np.mean(runs[True].losses[-2:]) < np.mean(runs[True].losses[:2])
    np.testing.assert_allclose(runs[True].losses, runs[False].losses, rtol=1e-5)
    # DeepSpeed's CPU Adam orders its float32 arithmetic differently from torch's Adam (and by the
    # CPU's vector width), so weights may differ by rounding: 1e-4 is 1 % of one step's size at
    # this learning rate, far below what a missed or different step would leave.
    _assert_same_adapters(runs[True].adapter_dir, runs[False].adapter_dir, rtol=1e-3, atol=1e-4)
    for bad in ({"offload_optimizer": True}, {"offload_optimizer": True, "zero_stage": 2, "engine": "torch"}):
        with pytest.raises(InputError, match="offload_optimizer needs engine: deepspeed and zero_stage"):
            TrainConfig.from_dict(bad)

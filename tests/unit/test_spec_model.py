"""The job spec as validated models: ranges on searched values, the csv norms format, no
unread fields, data problems found by `egrid validate`, and the property that a job
`egrid validate` accepts gets past its configuration stage."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embodiment.models.loading import load_model
from embodiment.models.tiny import save_tiny_model
from embodiment.training.loop import _build
from grid.cli import main as egrid
from grid.configure import configure, trial_values
from grid.spec import SpecError, parse_job
from grid.tuning import param_space, worker_config

JOB = {"name": "x", "models": ["m"], "norms": {"en": {"max_train": 40, "max_test": 20}}}


def _problems(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as err:
        spec = parse_job(raw, "job.yaml")
        configure(spec)
    return err.value.problems


@pytest.mark.parametrize(
    "search,message",
    [
        ({"lora_rank": {"grid": [0, 8]}}, "search.lora_rank.grid[0]: must be >= 1, got 0"),
        (
            {"lora_rank": {"uniform": {"low": 2, "high": 8}}},
            "search.lora_rank.uniform.low: expected an integer, got 2.0",
        ),
        (
            {"learning_rate": {"loguniform": {"low": 1e-4, "high": 50}}},
            "search.learning_rate.loguniform.high: must be <= 10",
        ),
        ({"warmup": {"choice": [0.1, 1.5]}}, "search.warmup.choice[1]: must be < 1.0, got 1.5"),
        ({"engine": "deepspeedd"}, "search.engine: got 'deepspeedd' (did you mean 'deepspeed'?)"),
        ({"seed": {"grid": [0, 1]}}, "search.seed: not a training option"),
    ],
)
def test_every_value_a_search_can_take_is_checked_like_the_option(search, message):
    problems = _problems({**JOB, "search": search})
    assert any(p.startswith(message) for p in problems), problems


def test_tune_metric_and_mode_are_gone_and_training_format_and_seed_point_elsewhere():
    problems = _problems(
        {**JOB, "tune": {"metric": "eval_score", "mode": "max"}, "training": {"format": "mcq", "seed": 3}}
    )
    assert any(p.startswith("tune.metric: unknown key") for p in problems), problems
    assert any(p.startswith("tune.mode: unknown key") for p in problems), problems
    assert any(p.startswith("training.format: not a training option here: set it per condition") for p in problems), (
        problems
    )


def test_norms_in_any_csv_load_with_their_declared_columns(tmp_path):
    path = tmp_path / "norms.csv"
    words = [f"w{i}" for i in range(30)]
    pd.DataFrame({"term": words, "vis": [i % 6 for i in range(30)], "snd": [(i * 7) % 6 for i in range(30)]}).to_csv(
        path, index=False
    )
    norms = {
        "en": {
            "source": str(path),
            "format": "csv",
            "word_column": "term",
            "columns": {"Visual": "vis", "Auditory": "snd"},
            "test_fraction": 0.3,
        }
    }
    spec = parse_job({**JOB, "norms": norms, "evaluation": {"subsets": ["all"]}}, "job.yaml")
    (plan,) = configure(spec)
    from grid.data import prepare_norms

    data = prepare_norms(spec.norms, 0)["en"]
    assert sorted(data.train.dimensions) == ["Auditory", "Visual"] and len(data.train) + len(data.test) == 30
    both = {**dict(zip(data.train.words, data.train.means)), **dict(zip(data.test.words, data.test.means))}
    auditory = data.train.dimensions.index("Auditory")
    assert [both[f"w{i}"][auditory] for i in (7, 8)] == [(7 * 7) % 6, (8 * 7) % 6]
    assert plan.examples == 2 * len(data.train)  # one rating prompt per word and dimension
    problems = _problems({**JOB, "norms": {"en": {"source": str(path), "format": "csv"}}})
    assert problems == [
        "norms.en.format: format csv needs word_column (the column of words) and columns ({dimension: column header})"
    ]


def test_validate_names_what_only_the_data_can_tell(tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_text("name: x\nmodels: [m]\nnorms:\n  en: {validation: 1000000}\n")
    assert egrid(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"egrid: error: {path}: 1 problem(s):")
        and "norms.en.validation: 1000000 concepts asked for" in err
    )


# ------------------------------------------------------------------ the property
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = save_tiny_model(tmp_path_factory.mktemp("models") / "tiny", hidden=32, layers=2, heads=4)
    return folder, load_model(folder)


_counts = st.one_of(st.none(), st.integers(-2, 60))
_norms = st.fixed_dictionaries(
    {},
    optional={
        "test_fraction": st.floats(-0.5, 1.5),
        "max_train": _counts,
        "max_test": _counts,
        "validation": st.integers(-1, 40),
        "dimensions": st.sampled_from(["all", ["Visual"], ["Visual", "Haptic"], [], "Visul"]),
    },
)
_condition = st.fixed_dictionaries(
    {"format": st.sampled_from(["rating", "regression", "pairwise", "alignment", "ratng"])},
    optional={
        "languages": st.sampled_from([["en"], ["nl"], "en", []]),
        "dimensions": st.sampled_from(["all", ["Visual"], ["Olfactory", "Gustatory"]]),
    },
)
_value = st.one_of(
    st.integers(-2, 64),
    st.floats(-1, 20, allow_nan=False),
    st.booleans(),
    st.sampled_from(["cosine", "concept", "torch", "soft_ce", "x"]),
)
_search_entry = st.one_of(
    _value,
    st.fixed_dictionaries({"grid": st.lists(_value, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"uniform": st.fixed_dictionaries({"low": _value, "high": _value})}),
)
_training_keys = st.sampled_from(
    [
        "lora_rank",
        "lora_alpha",
        "learning_rate",
        "batch_size",
        "steps",
        "warmup",
        "lora_dropout",
        "lr_schedule",
        "rating_batches",
        "engine",
        "lora_top_layers",
        "grad_accum",
        "rating_loss",
    ]
)
_job = st.fixed_dictionaries(
    {
        "norms": st.fixed_dictionaries({"en": _norms}),
        "conditions": st.lists(_condition, min_size=1, max_size=3),
        "training": st.dictionaries(_training_keys, _value, max_size=5),
        "search": st.dictionaries(_training_keys, _search_entry, max_size=2),
        "tune": st.fixed_dictionaries({"searcher": st.sampled_from(["grid", "random"])}),
        "evaluation": st.fixed_dictionaries({"subsets": st.just(["all"])}),
    }
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(_job)
def test_a_job_validate_accepts_gets_past_its_configuration_stage(tiny, raw):
    """Whatever `egrid validate` accepts (the spec, then the data) builds Tune's search
    space, and every trial builds its TrainConfig, task format, batch plan, LoRA model and
    optimizer: no job fails later on a value validation let through."""
    folder, lm = tiny
    raw = {"name": "prop", "models": [folder], **raw}
    try:
        spec = parse_job(raw, "prop.yaml")
        plans = configure(spec, tokenizer=lm.tokenizer)
    except SpecError as exc:  # rejected: one line per problem, each with its YAML path
        assert all(": " in p and p.split(": ", 1)[1].strip() for p in exc.problems), exc.problems
        return
    assert param_space(spec)
    from grid.data import training_data

    for values, plan in zip(trial_values(spec), plans):
        config = worker_config(spec, values)
        run = _build(
            config["train"],
            load_model(folder).model,
            lm.tokenizer,
            training_data(config["condition"], config["norms"], spec.seed, spec.mcq),
        )
        assert run.examples and run.optimizer.param_groups[0]["params"]


def test_a_regression_trial_is_evaluated_through_its_head_with_its_training_dimensions(tmp_path):
    from grid.tuning import _trial_head

    raw = {
        **JOB,
        "conditions": [
            {"name": "reg", "format": "regression", "dimensions": ["Haptic", "Visual"]},
            {"name": "rate", "format": "rating"},
        ],
    }
    spec = parse_job(raw, "job.yaml")
    assert _trial_head(spec, {"condition": "reg", "model": "m"}, tmp_path) is None  # no head saved: nothing to read
    (tmp_path / "head.safetensors").write_bytes(b"")
    head = _trial_head(spec, {"condition": "reg", "model": "m"}, tmp_path)
    assert head.format == "regression" and head.dimensions == {"en": ["Haptic", "Visual"]}
    assert head.path == str(tmp_path / "head.safetensors")


def test_best_only_formats_need_their_data_and_are_not_scored_twice():
    problems = _problems({**JOB, "evaluation": {"formats": ["rating", "mcq"], "best_only": ["mcq"]}})
    assert "evaluation.formats[1]: evaluating mcq needs mcq.test (a JSON question file)" in problems
    assert "evaluation.best_only[0]: evaluating mcq needs mcq.test (a JSON question file)" in problems
    assert "evaluation.best_only[0]: mcq is already in evaluation.formats (every trial gets it)" in problems

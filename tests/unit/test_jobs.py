"""Job specs: every shipped job validates; bad jobs get one clear line per problem, with
its YAML path; fuzzed YAML never escapes as a bare traceback. Also cluster.yaml."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.cli import main as egrid
from grid.job_file import load_job
from grid.spec import SpecError, parse_job

REPO = Path(__file__).resolve().parents[2]
JOBS = sorted((REPO / "jobs").glob("*.yaml"))


@pytest.mark.parametrize("path", JOBS, ids=[p.name for p in JOBS])
def test_every_shipped_job_validates(path, wu2026_tables):
    spec = load_job(path)
    assert spec.name and spec.models and spec.conditions
    assert egrid(["validate", str(path)]) == 0


def test_shipped_jobs_cover_demo_paper_and_objective_search():
    assert {"demo.yaml", "paper.yaml", "objective_search.yaml"} <= {p.name for p in JOBS}


def test_paper_job_is_the_study_grid(wu2026_tables):
    spec = load_job(REPO / "jobs" / "paper.yaml")
    formats = {c.format for c in spec.conditions}
    assert {"rating", "mcq"} <= formats
    assert {tuple(c.languages) for c in spec.conditions if c.format == "rating"} >= {("en",), ("nl",)}
    assert set(spec.evaluation.languages) == {"en", "nl"} and "mcq" in spec.evaluation.formats
    assert set(spec.evaluation.subsets) == {"all", "sensory", "motor"}


def test_objective_search_spans_the_five_formats():
    spec = load_job(REPO / "jobs" / "objective_search.yaml")
    conditions = {c.name: c.format for c in spec.conditions}
    assert set(conditions.values()) == {"rating", "mcq", "regression", "pairwise", "alignment"}
    # every objective searched with at least three trials, each of them evaluated
    assert spec.search["condition"] == {"grid": list(conditions)} and spec.tune.num_samples >= 3
    assert spec.tune.scheduler == "fifo"


def test_run_name_is_a_hash_of_the_spec_not_a_time():
    a = parse_job({"name": "x", "models": ["m"]})
    b = parse_job({"name": "x", "models": ["m"]})
    c = parse_job({"name": "x", "models": ["m"], "seed": 1})
    assert a.run_name == b.run_name != c.run_name
    assert re.fullmatch(r"x-[0-9a-f]{10}", a.run_name)


BAD = [
    ({"name": "x", "models": ["m"], "trainig": {}}, "trainig: unknown key (did you mean 'training'?)"),
    (
        {"name": "x", "models": ["m"], "training": {"learning_rat": 1e-3}},
        "training.learning_rat: unknown key (did you mean 'learning_rate'?)",
    ),
    (
        {"name": "x", "models": ["m"], "resources": {"workers": "two"}},
        "resources.workers: expected an integer, got 'two'",
    ),
    ({"name": "x", "models": ["m"], "resources": {"workers": 0}}, "resources.workers: must be >= 1"),
    (
        {"name": "x", "models": ["m"], "resources": {"workers": 2, "gpus_per_worker": 0.5}},
        "resources.gpus_per_worker: fractional GPUs only",
    ),
    (
        {"name": "x", "models": ["m"], "search": {"learning_rate": {"loguniform": {"low": 0, "high": 1}}}},
        "search.learning_rate.loguniform.low: loguniform needs low > 0",
    ),
    (
        {"name": "x", "models": ["m"], "search": {"learning_rate": {"grid": []}}},
        "search.learning_rate.grid: expected a non-empty list",
    ),
    (
        {"name": "x", "models": ["m"], "conditions": [{"format": "ratng"}]},
        "conditions[0].format: got 'ratng' (did you mean 'rating'?)",
    ),
    ({"name": "x", "models": ["m"], "norms": {"fr": {}}}, "norms.fr: unknown key; expected one of en, nl"),
    (
        {"name": "x", "models": ["m"], "norms": {"en": {"source": "/no/such/norms.csv"}}},
        "norms.en.source: file not found: /no/such/norms.csv",
    ),
    ({"name": "x", "models": []}, "models: empty list; give at least one entry"),
    ({"models": ["m"]}, "name: missing (required)"),
    ({"name": "x", "models": ["m"], "evaluation": {"layers": []}}, "evaluation.layers: empty list"),
    (
        {
            "name": "x",
            "models": ["m"],
            "tune": {"searcher": "grid"},
            "search": {"learning_rate": {"uniform": {"low": 0.1, "high": 0.2}}},
        },
        "tune.searcher: grid search cannot sample",
    ),
    ({"name": "x", "models": ["m"], "seed": -3}, "seed: must be >= 0, got -3"),
    ({"name": "x", "models": ["m"], "trust_remote_code": "yes"}, "trust_remote_code: expected true or false"),
    ({"name": "x", "models": ["m"], "tune": {"mlflow": 3}}, "tune.mlflow: expected"),
    ({"name": "x", "models": ["m"], "evaluation": {"probe": "trials"}}, "evaluation.probe: got 'trials'"),
    (
        {"name": "x", "models": ["m"], "evaluation": {"embeddings": False, "probe": "base"}},
        "evaluation.probe: the probe reads hidden states",
    ),
    (
        {"name": "x", "models": ["m"], "training": {"rating_loss": "mse"}},
        "training.rating_loss: got 'mse', expected one of",
    ),
    ({"name": "x", "models": ["m"], "training": {"rating_batches": "word"}}, "training.rating_batches: got 'word'"),
    (
        {"name": "x", "models": ["m"], "conditions": [{"training": {"stpes": 5}}]},
        "conditions[0].training.stpes: not a training option (did you mean 'steps'?)",
    ),
    (
        {"name": "x", "models": ["m"], "conditions": [{"training": {"lora_rank": 0}}]},
        "conditions[0].training.lora_rank: must be >= 1",
    ),
    (
        {"name": "x", "models": ["m"], "conditions": [{"training": {"seed": 1}}]},
        "conditions[0].training.seed: not a training option here",
    ),
    (
        {
            "name": "x",
            "models": ["m"],
            "conditions": [{"training": {"steps": 5}}],
            "search": {"steps": {"grid": [5, 10]}},
        },
        "conditions[0].training.steps: also searched (search.steps)",
    ),
]


@pytest.mark.parametrize("raw,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_jobs_name_the_yaml_path(raw, message):
    with pytest.raises(SpecError) as err:
        parse_job(raw, "job.yaml")
    assert any(p.startswith(message) for p in err.value.problems), err.value.problems
    assert "job.yaml" in str(err.value)


def test_a_conditions_own_training_options_override_the_jobs_for_its_trials_only():
    from grid.configure import configure
    from grid.tuning import worker_config

    job = {
        "name": "x",
        "models": ["m"],
        "training": {"steps": 40, "learning_rate": 1.0e-3},
        "norms": {"en": {"source": "embedded", "validation": 50}},
        "conditions": [{"name": "long"}, {"name": "short", "training": {"steps": 7, "batch_size": 3}}],
    }
    spec = parse_job(job)
    trains = {c: worker_config(spec, {"condition": c, "model": "m"})["train"] for c in ("long", "short")}
    assert (trains["long"].steps, trains["long"].batch_size) == (40, spec.training.batch_size)
    assert (trains["short"].steps, trains["short"].batch_size, trains["short"].learning_rate) == (7, 3, 1.0e-3)
    assert {p.condition: p.train.steps for p in configure(spec)} == {"long": 40, "short": 7}
    from grid.tuning import condition_steps

    assert condition_steps(spec) == {"long": 40, "short": 7}  # what the progress lines count to
    # a job that gives a condition no options of its own keeps the hash it had before they existed
    plain = {**job, "conditions": [{"name": "long"}, {"name": "short"}]}
    empty = {**job, "conditions": [{"name": "long", "training": {}}, {"name": "short"}]}
    assert parse_job(plain).run_name == parse_job(empty).run_name != spec.run_name


def test_all_problems_are_reported_at_once():
    with pytest.raises(SpecError) as err:
        parse_job({"name": "x", "models": ["m"], "trainig": {}, "seed": "s", "resources": {"workers": -1}})
    assert len(err.value.problems) == 3


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "job file is empty"),
        (b"name: [unclosed", "not valid YAML"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"- just\n- a list\n", "(top level): expected a mapping"),
        (b"!!python/object/apply:os.system ['echo pwned']", "not valid YAML"),
    ],
)
def test_unreadable_job_files_get_one_clear_error(tmp_path, capsys, content, message):
    path = tmp_path / "job.yaml"
    path.write_bytes(content)
    assert egrid(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("egrid: error:") and message in err and str(path) in err
    assert "Traceback" not in err


def test_missing_job_file(tmp_path, capsys):
    assert egrid(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "job file not found" in capsys.readouterr().err


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)
_keys = st.sampled_from(
    [
        "name",
        "models",
        "norms",
        "conditions",
        "training",
        "search",
        "tune",
        "evaluation",
        "resources",
        "storage",
        "seed",
        "mcq",
        "en",
        "nl",
        "format",
        "steps",
        "learning_rate",
        "grid",
        "loguniform",
        "low",
        "high",
        "workers",
        "layers",
        "languages",
        "ünïcode",
        "x" * 40,
    ]
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=8))
def test_fuzzed_jobs_raise_only_clear_errors(raw):
    raw.setdefault("name", "fuzz")
    raw.setdefault("models", ["m"])
    try:
        parse_job(raw, "fuzz.yaml", check_files=False)
    except SpecError as exc:
        # one message: the file, then every problem as "<yaml path>: <what was wrong>"
        assert str(exc).startswith(f"fuzz.yaml: {len(exc.problems)} problem(s):\n  ")
        for problem in exc.problems:
            path, sep, message = problem.partition(": ")
            assert path and sep and message.strip(), problem


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_fuzzed_job_files_through_the_cli_exit_0_or_2(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("fuzz") / "job.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    assert egrid(["validate", str(path)]) in (0, 2)


# ----------------------------------------------------------------------------- cluster.yaml
def _cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_parses_and_names_what_exists():
    cfg = _cluster()
    assert cfg["head_node_type"] in cfg["available_node_types"]
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert any(t["resources"].get("GPU", 0) >= 1 for t in cfg["available_node_types"].values())
    for target, source in cfg["file_mounts"].items():
        assert (REPO / source).exists(), source
        mounted = re.findall(re.escape(target) + r"/([\w./-]+)", " ".join(cfg["setup_commands"]))
        for rel in mounted:
            assert (REPO / source / rel).exists(), rel


def test_cluster_yaml_pins_versions_that_match_the_project():
    cfg = _cluster()
    ray_version = md.version("ray")
    assert re.search(r":" + re.escape(ray_version) + r"-", cfg["docker"]["image"])
    gpu = _pins(REPO / "cluster" / "constraints-gpu.txt")
    cpu = _pins(REPO / "constraints.txt")
    assert gpu["ray"] == ray_version
    # one source of pins: the GPU file pins exactly the CPU environment's versions (torch
    # included), and the environment the tests run in is that one (torch without its +cpu tag)
    assert gpu == cpu
    for name, version in gpu.items():
        assert md.version(name).split("+")[0] == version, name


def _pins(path) -> dict[str, str]:
    return dict(
        line.split("#")[0].strip().split("==")
        for line in path.read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    )


def test_cluster_yaml_opens_no_port_to_the_world():
    text = (REPO / "cluster.yaml").read_text()
    assert "0.0.0.0/0" not in text and "::/0" not in text
    cfg = _cluster()
    for rule in cfg["provider"]["security_group"]["IpPermissions"]:
        for rng in rule["IpRanges"]:
            assert not rng["CidrIp"].endswith("/0")
    head_start = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start


def test_mlflow_logging_without_mlflow_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    # a machine without mlflow, wherever the test runs (make test installs it)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(SpecError) as err:
        parse_job({"name": "x", "models": ["m"], "tune": {"mlflow": "run"}}, "job.yaml")
    assert any(p.startswith("tune.mlflow: mlflow is not installed") for p in err.value.problems)


def test_validation_concepts_come_from_the_training_split_and_are_never_trained_on():
    from grid.data import prepare_norms, training_data

    def data(**en):
        norms = {"en": {"source": "embedded", "max_train": 50, "max_test": 20, **en}}
        return parse_job({"name": "v", "models": ["m"], "norms": norms}, "job.yaml").norms

    held = prepare_norms(data(validation=15), 0)["en"]
    plain = prepare_norms(data(), 0)["en"]
    assert len(held.validation) == 15 and len(held.train) == 50 and held.test.words == plain.test.words
    # validation is a draw of whole families from the training side, never trained on
    assert not set(held.validation.words) & set(held.train.words)
    full = prepare_norms(data(max_train=None), 0)["en"]
    assert set(held.validation.words) <= set(full.train.words) and held.validation.words != full.train.words[:15]
    trained = training_data({"format": "rating", "languages": ["en"], "dimensions": "all"}, data(validation=15), 0, {})
    assert trained.norms["en"].words == held.train.words


def test_a_job_without_embeddings_has_no_probe():
    spec = parse_job({"name": "x", "models": ["m"], "evaluation": {"embeddings": False}}, "job.yaml")
    assert spec.evaluation.probe == "none"
    assert parse_job({"name": "x", "models": ["m"]}, "job.yaml").evaluation.probe == "base"


def test_submit_refuses_a_relative_storage_path_in_one_line(tmp_path, capsys):
    from grid.cli import main

    job = tmp_path / "job.yaml"
    job.write_text("name: x\nmodels: [smollm2-135m]\nstorage: egrid_runs\n")
    assert main(["submit", str(job), "--address", "http://127.0.0.1:1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("egrid: error:")]
    assert len(errors) == 1 and "relative path" in errors[0] and "storage" in errors[0]

"""Job specs: one YAML file -> a validated :class:`JobSpec`, before anything starts.

Every problem is reported at once, one line each, with its YAML path
(``training.search.learning_rate.low``), what was found and what was expected, and
"did you mean" for unknown keys. Files are read with ``yaml.safe_load``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from embodiment.errors import InputError, did_you_mean
from embodiment.formats import FORMATS
from embodiment.metrics.rsa import RECIPES
from embodiment.training import TrainConfig

SEARCH_KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
SEARCHERS = ("random", "grid", "optuna")
SCHEDULERS = ("fifo", "asha")
LANGUAGES = ("en", "nl")


class SpecError(InputError):
    """All problems of one job file, one per line."""

    def __init__(self, source: object, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems), source=source)


@dataclass
class NormsSpec:
    """Where one language's norms come from and how they split."""

    source: str = "embedded"
    format: str = "auto"
    paired: bool = False          # a paired EN/NL table: take this language's side
    test_fraction: float = 0.4
    max_train: int | None = None  # cap on training concepts (after the split)
    max_test: int | None = None   # cap on held-out concepts
    # training-split concepts set aside (before max_train) and never trained on: trials are
    # scored on them, and that score picks the best trial; 0 scores on held-out concepts
    validation: int = 0
    test_source: str | None = None  # a fixed held-out table instead of a random split
    dimensions: list[str] | str = "all"


@dataclass
class ConditionSpec:
    """A training condition: what the model is fine-tuned on."""

    name: str = ""
    format: str = "rating"
    languages: list[str] = field(default_factory=lambda: ["en"])
    dimensions: list[str] | str = "all"


#: whose hidden states the frozen-feature probe reads: nobody's, the base model's, or the
#: base and every trained trial's
PROBES = ("none", "base", "all")


@dataclass
class EvalSpec:
    """The evaluation suite run on the base model and on every trained trial."""

    formats: list[str] = field(default_factory=lambda: ["rating"])
    languages: list[str] = field(default_factory=lambda: ["en"])
    subsets: list[str] = field(default_factory=lambda: ["all", "sensory", "motor"])
    layers: list[int] | str = "all"
    rsa_recipe: str = "wu2026"
    n_boot: int = 200
    batch_size: int = 32
    embeddings: bool = True
    probe: str = "base"
    paired: bool = True  # the study's paired-word rule when conditions are compared


@dataclass
class ResourcesSpec:
    """What one trial gets."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_concurrent_trials: int | None = None
    # Ray Data actors per evaluation pass, each with cpus_per_worker CPUs (its torch
    # threads). On CPU, one single-threaded actor per core scores fastest (README Performance).
    scorer_actors: int = 1
    gpus_per_scorer: float = 0.0


@dataclass
class TuneSpec:
    """Search over learning objectives and hyperparameters."""

    searcher: str = "grid"
    scheduler: str = "fifo"
    num_samples: int = 1
    metric: str = "eval_score"
    mode: str = "max"
    grace_period: int = 1
    max_failures: int = 2
    #: MLflow tracking URI for Tune's MLflowLoggerCallback ("run": RUN_DIR/mlruns); off when unset.
    mlflow: str | None = None


@dataclass
class JobSpec:
    """A whole grid job."""

    name: str
    models: list[str]
    norms: dict[str, NormsSpec]
    conditions: list[ConditionSpec]
    training: dict[str, Any]
    search: dict[str, Any]
    tune: TuneSpec
    evaluation: EvalSpec
    resources: ResourcesSpec
    storage: str = "egrid_runs"
    seed: int = 0
    mcq: dict[str, str] = field(default_factory=dict)
    allow_download: bool = False
    trust_remote_code: bool = False
    source: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    def fingerprint(self) -> str:
        """Hash of everything that changes results (not where they are stored)."""
        body = asdict(self)
        for key in ("storage", "source", "raw"):
            body.pop(key, None)
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:10]

    @property
    def run_name(self) -> str:
        """``<name>-<hash of the spec>``: the same job always finds the same run."""
        return f"{self.name}-{self.fingerprint()}"

    def run_dir(self, storage: str | None = None) -> str:
        return f"{(storage or self.storage).rstrip('/')}/{self.run_name}"


# --------------------------------------------------------------------------- parsing

_TYPES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list", dict: "a mapping"}


class _Checker:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        return value

    def keys(self, value: dict, allowed, path: str) -> None:
        for key in value:
            if str(key) not in allowed:
                self.add(f"{path}.{key}" if path else str(key), f"unknown key{did_you_mean(str(key), allowed)}; allowed: {', '.join(sorted(allowed))}")

    def typed(self, value: Any, kind: type, path: str, *, low=None, high=None):
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            self.add(path, f"expected {_TYPES[kind]}, got {value!r}")
            return None
        if low is not None and value < low:
            self.add(path, f"must be >= {low}, got {value!r}")
        if high is not None and value > high:
            self.add(path, f"must be <= {high}, got {value!r}")
        return value

    def choice(self, value: Any, allowed, path: str):
        if value not in allowed:
            self.add(path, f"got {value!r}{did_you_mean(str(value), [str(a) for a in allowed])}; expected one of {', '.join(map(str, allowed))}")
        return value


MAX_INT = 10**9  # larger counts are typos (or a night lost), not experiments


def _field_kind(f, default) -> type | None:
    """The scalar type a dataclass field expects, from its default or its annotation."""
    annotation = str(f.type)
    if "list" in annotation:
        return list
    for kind in (bool, float, int, str):
        if isinstance(default, kind):
            return kind
    for name, kind in (("bool", bool), ("float", float), ("int", int), ("str", str)):
        if re.search(rf"\b{name}\b", annotation):
            return kind
    return None


def _dataclass_from(cls, raw: dict, chk: _Checker, path: str, *, skip: tuple[str, ...] = ()):
    """Fill a dataclass from a mapping, type-checking each field by its default or annotation."""
    names = {f.name: f for f in fields(cls) if f.name not in skip}
    chk.keys(raw, names, path)
    obj = cls()
    for key, value in raw.items():
        if key not in names:
            continue
        f = names[key]
        default = getattr(obj, key)
        kind = _field_kind(f, default)
        p = f"{path}.{key}"
        if value is None:
            if default is not None and "None" not in str(f.type):
                chk.add(p, f"expected {_TYPES.get(kind, 'a value')}, got null")
                continue
            setattr(obj, key, None)
        elif kind is bool:
            setattr(obj, key, chk.typed(value, bool, p))
        elif kind is float:
            number = chk.typed(value, float, p, low=0)
            if number is not None and not math.isfinite(number):
                chk.add(p, f"expected a finite number, got {value!r}")
            setattr(obj, key, number)
        elif kind is int:
            setattr(obj, key, chk.typed(value, int, p, low=0, high=MAX_INT))
        elif kind is list:
            if isinstance(value, list):
                if not value:
                    chk.add(p, "empty list; give at least one entry")
                    continue
                if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
                    chk.add(p, f"expected a list of names or numbers, got {value!r}")
                    continue  # keep the default so later checks see a well-formed value
            elif not isinstance(value, str):
                chk.add(p, f"expected a list or a name, got {value!r}")
                continue
            setattr(obj, key, value)
        elif kind is str:
            setattr(obj, key, chk.typed(value, str, p))
        else:
            setattr(obj, key, value)
    return obj


def _search_space(raw: dict, chk: _Checker) -> dict:
    """Check the search space: each entry a fixed value or {kind: [...] / low, high}."""
    train_keys = {f.name for f in fields(TrainConfig)}
    out = {}
    for key, value in raw.items():
        p = f"search.{key}"
        if key not in train_keys and key != "condition":
            chk.add(p, f"not a training option{did_you_mean(key, train_keys)}")
            continue
        if not isinstance(value, dict):
            out[key] = value
            continue
        kinds = [k for k in value if k in SEARCH_KINDS]
        if len(kinds) != 1 and not {"low", "high"} <= set(value):
            chk.add(p, f"expected one of {', '.join(SEARCH_KINDS)} (e.g. {{grid: [1e-4, 1e-3]}} or {{loguniform: {{low: 1e-5, high: 1e-3}}}})")
            continue
        kind = kinds[0]
        arg = value[kind]
        if kind in ("choice", "grid"):
            if not isinstance(arg, list) or not arg:
                chk.add(f"{p}.{kind}", "expected a non-empty list")
                continue
        else:
            if not isinstance(arg, dict) or not {"low", "high"} <= set(arg):
                chk.add(f"{p}.{kind}", "expected {low: ..., high: ...}")
                continue
            low, high = arg["low"], arg["high"]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
                chk.add(f"{p}.{kind}", f"expected numbers with low < high, got low={low!r}, high={high!r}")
                continue
            if kind == "loguniform" and low <= 0:
                chk.add(f"{p}.{kind}.low", f"loguniform needs low > 0, got {low!r}")
                continue
        out[key] = {kind: arg}
    return out


def parse_job(raw: Any, source: str = "<job>", *, check_files: bool = True) -> JobSpec:
    """Validate a loaded YAML document and build the :class:`JobSpec`.

    Each section is checked by its own function below; all of them run, so every problem
    of the file is reported at once.

    Raises:
        SpecError: every problem found, each with its YAML path.
    """
    chk = _Checker(source)
    top = chk.mapping(raw, "(top level)")
    chk.keys(top, {f.name for f in fields(JobSpec)} - {"source", "raw"}, "")
    name, models = _identity(chk, top)
    norms = _norms_section(chk, top, source, check_files)
    conditions = _conditions_section(chk, top, norms)
    training, search = _training_section(chk, top, {c.name for c in conditions})
    tune = _tune_section(chk, top, search)
    evaluation = _evaluation_section(chk, top, norms)
    resources = _resources_section(chk, top)
    mcq, storage, seed = _data_and_run_section(chk, top, source, check_files)
    if chk.problems:
        raise SpecError(source, chk.problems)
    for ns in norms.values():
        if ns.source != "embedded":
            ns.source = _absolute_source(ns.source, source)
        if ns.test_source:
            ns.test_source = _absolute_source(ns.test_source, source)
    return JobSpec(name=name, models=models, norms=norms, conditions=conditions, training=training, search=search,
                   tune=tune, evaluation=evaluation, resources=resources, storage=storage, seed=seed,
                   mcq={k: _absolute_source(v, source) for k, v in mcq.items()},
                   allow_download=bool(top.get("allow_download", False)),
                   trust_remote_code=bool(top.get("trust_remote_code", False)), source=str(source), raw=top)


def _identity(chk: _Checker, top: dict) -> tuple[str, list[str]]:
    """``name`` and ``models``."""
    for key in ("name", "models"):
        if key not in top:
            chk.add(key, "missing (required)")
    name = top.get("name", "job")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        chk.add("name", f"expected letters, digits, '-' or '_', got {name!r}")
    models = top.get("models", [])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
        chk.add("models", f"expected a non-empty list of model references, got {models!r}")
        models = []
    return name, models


def _norms_section(chk: _Checker, top: dict, source: str, check_files: bool) -> dict[str, NormsSpec]:
    """``norms``: per language, where the norms come from and how they split."""
    norms = {}
    for lang, spec in chk.mapping(top.get("norms", {"en": {}}), "norms").items():
        if lang not in LANGUAGES:
            chk.add(f"norms.{lang}", f"unknown language{did_you_mean(str(lang), LANGUAGES)}; expected one of {', '.join(LANGUAGES)}")
            continue
        ns = _dataclass_from(NormsSpec, chk.mapping(spec or {}, f"norms.{lang}"), chk, f"norms.{lang}")
        if ns.test_fraction is not None and not 0 < ns.test_fraction < 1:
            chk.add(f"norms.{lang}.test_fraction", f"must lie strictly between 0 and 1, got {ns.test_fraction}")
        for key in ("source", "test_source"):
            value = getattr(ns, key)
            if value and value != "embedded":
                _check_data_source(chk, f"norms.{lang}.{key}", value, source, check_files)
        norms[lang] = ns
    return norms


def _conditions_section(chk: _Checker, top: dict, norms: dict) -> list[ConditionSpec]:
    """``conditions``: what each trial is fine-tuned on; the format says what data it needs."""
    conditions = []
    raw_conditions = top.get("conditions", [{"name": "rating_en"}])
    if not isinstance(raw_conditions, list) or not raw_conditions:
        chk.add("conditions", "expected a non-empty list of training conditions")
        raw_conditions = []
    seen = set()
    for i, c in enumerate(raw_conditions):
        p = f"conditions[{i}]"
        cs = _dataclass_from(ConditionSpec, chk.mapping(c, p), chk, p)
        chk.choice(cs.format, list(FORMATS), f"{p}.format")
        trains_on = FORMATS[cs.format].trains_on if cs.format in FORMATS else "norms"
        for lang in cs.languages if isinstance(cs.languages, list) else [cs.languages]:
            if lang not in norms and trains_on == "norms":
                chk.add(f"{p}.languages", f"no norms for {lang!r}; add norms.{lang}")
        if trains_on == "mcq" and "train" not in top.get("mcq", {}):
            chk.add(f"{p}.format", f"the {cs.format} format trains on multiple-choice items: it needs mcq.train "
                                   "(a JSON question file, or wu2026:mcq-train)")
        cs.name = cs.name or f"{cs.format}_{'_'.join(cs.languages)}"
        if cs.name in seen or cs.name == "base":
            chk.add(f"{p}.name", f"{cs.name!r} is used twice or reserved ('base' is the untrained model)")
        seen.add(cs.name)
        conditions.append(cs)
    return conditions


def _training_section(chk: _Checker, top: dict, condition_names: set[str]) -> tuple[dict, dict]:
    """``training`` (every TrainConfig field, types then ranges) and the ``search`` space."""
    training = chk.mapping(top.get("training", {}), "training")
    before = len(chk.problems)
    train_cfg = _dataclass_from(TrainConfig, training, chk, "training", skip=("format",))
    if len(chk.problems) == before:  # types are right: now the ranges and names
        try:
            train_cfg.validate()
        except InputError as exc:
            chk.add(f"training.{exc.key}" if exc.key else "training", str(exc).split(": ", 1)[-1])
    search = _search_space(chk.mapping(top.get("search", {}), "search"), chk)
    if "condition" in search and isinstance(search["condition"], dict):
        for cond in next(iter(search["condition"].values())):
            if cond not in condition_names:
                chk.add("search.condition", f"unknown condition {cond!r}{did_you_mean(str(cond), condition_names)}")
    return training, search


def _tune_section(chk: _Checker, top: dict, search: dict) -> TuneSpec:
    """``tune``: searcher, scheduler, samples, tracking (the packages they need installed)."""
    import importlib.util

    tune = _dataclass_from(TuneSpec, chk.mapping(top.get("tune", {}), "tune"), chk, "tune")
    chk.choice(tune.searcher, SEARCHERS, "tune.searcher")
    chk.choice(tune.scheduler, SCHEDULERS, "tune.scheduler")
    chk.choice(tune.mode, ("max", "min"), "tune.mode")
    if tune.searcher == "grid" and any(k in ("uniform", "loguniform", "randint") for v in search.values() if isinstance(v, dict) for k in v):
        chk.add("tune.searcher", "grid search cannot sample uniform/loguniform/randint ranges; use searcher: random or optuna")
    if tune.searcher == "optuna" and importlib.util.find_spec("optuna") is None:
        chk.add("tune.searcher", "optuna is not installed (pip install optuna), or use random")
    if tune.mlflow and importlib.util.find_spec("mlflow") is None:
        chk.add("tune.mlflow", "mlflow is not installed (pip install mlflow), or leave tune.mlflow out")
    return tune


def _evaluation_section(chk: _Checker, top: dict, norms: dict) -> EvalSpec:
    """``evaluation``: the suite every model gets (formats, languages, RSA, layers, probe)."""
    evaluation = _dataclass_from(EvalSpec, chk.mapping(top.get("evaluation", {}), "evaluation"), chk, "evaluation")
    for i, f in enumerate(evaluation.formats if isinstance(evaluation.formats, list) else []):
        chk.choice(f, ["rating", "mcq"], f"evaluation.formats[{i}]")
        if f == "mcq" and "test" not in top.get("mcq", {}):
            chk.add(f"evaluation.formats[{i}]", "evaluating mcq needs mcq.test (a JSON question file)")
    for i, lang in enumerate(evaluation.languages if isinstance(evaluation.languages, list) else []):
        if lang not in norms:
            chk.add(f"evaluation.languages[{i}]", f"no norms for {lang!r}; add norms.{lang}")
    chk.choice(evaluation.rsa_recipe, list(RECIPES), "evaluation.rsa_recipe")
    chk.choice(evaluation.probe, PROBES, "evaluation.probe")
    if not evaluation.embeddings:  # no hidden states, no probe; asking for both is a contradiction
        if evaluation.probe != "none" and "probe" in (top.get("evaluation") or {}):
            chk.add("evaluation.probe", "the probe reads hidden states: set evaluation.embeddings: true, or probe: none")
        evaluation.probe = "none"
    return evaluation


def _resources_section(chk: _Checker, top: dict) -> ResourcesSpec:
    """``resources``: DeepSpeed ranks per trial, CPUs/GPUs, concurrency, scorer actors."""
    resources = _dataclass_from(ResourcesSpec, chk.mapping(top.get("resources", {}), "resources"), chk, "resources")
    if resources.workers == 0:
        chk.add("resources.workers", f"must be >= 1, got {resources.workers}")
    if resources.gpus_per_worker and resources.workers > 1 and resources.gpus_per_worker != int(resources.gpus_per_worker):
        chk.add("resources.gpus_per_worker", "fractional GPUs only for single-worker trials (DeepSpeed ranks need whole GPUs)")
    return resources


def _data_and_run_section(chk: _Checker, top: dict, source: str, check_files: bool) -> tuple[dict, str, int]:
    """``mcq`` files, ``storage``, ``seed`` and the two trust flags."""
    mcq = chk.mapping(top.get("mcq", {}), "mcq")
    chk.keys(mcq, {"train", "test"}, "mcq")
    for key, path in mcq.items():
        if isinstance(path, str):
            _check_data_source(chk, f"mcq.{key}", path, source, check_files)
    storage = top.get("storage", "egrid_runs")
    if not isinstance(storage, str) or not storage:
        chk.add("storage", f"expected a path or URI, got {storage!r}")
    seed = top.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        chk.add("seed", f"expected a non-negative integer, got {seed!r}")
    for flag in ("allow_download", "trust_remote_code"):
        if flag in top and not isinstance(top[flag], bool):
            chk.add(flag, f"expected true or false, got {top[flag]!r}")
    return mcq, storage, seed


def _check_data_source(chk: "_Checker", key: str, value: str, source: str, check_files: bool) -> None:
    """A data ``source`` is a registered dataset's table (``wu2026:train``) or a file."""
    from embodiment import datasets

    if datasets.is_reference(value):
        name, table = value.split(datasets.SEPARATOR, 1)
        known = datasets.DATASETS[name].tables
        if table not in known:
            chk.add(key, f"dataset {name} has no table {table!r}{did_you_mean(table, known)}; its tables: {', '.join(known)}")
        return
    head = value.split(datasets.SEPARATOR, 1)[0]
    if datasets.SEPARATOR in value and head.isidentifier() and len(head) > 1 and not _resolve_path(value, source).exists():
        chk.add(key, f"unknown dataset {head!r}{did_you_mean(head, datasets.DATASETS)}; known: "
                     f"{', '.join(datasets.DATASETS)} (egrid data list), or give a file path")
        return
    if check_files and not _resolve_path(value, source).exists():
        chk.add(key, f"file not found: {_resolve_path(value, source)}")


def _absolute_source(value: str, source: str) -> str:
    """A file source made absolute; a dataset reference kept as written (resolved where it is read)."""
    from embodiment import datasets

    return value if datasets.is_reference(value) else str(_resolve_path(value, source).resolve())


def _resolve_path(path: str, source: str) -> Path:
    """Paths in a job are relative to the job file's folder, then to the working directory."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    beside = Path(source).parent / p if source != "<job>" else p
    return beside if beside.exists() else p


ENV_PREFIX = "env:"  # `env:NAME`: the job's YAML text is in environment variable NAME (egrid submit)


def load_job(path: str | Path, *, check_files: bool = True) -> JobSpec:
    """Read and validate a job YAML file (or ``env:NAME``, the text of one in a variable)."""
    if str(path).startswith(ENV_PREFIX):
        name = str(path)[len(ENV_PREFIX):]
        if name not in os.environ:
            raise InputError(f"environment variable {name} holds no job", source=path)
        return _parse_text(os.environ[name], str(path), check_files)
    path = Path(path)
    if not path.exists():
        raise InputError("job file not found", source=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=path) from None
    return _parse_text(text, str(path), check_files)


def _parse_text(text: str, path: str, check_files: bool) -> JobSpec:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {str(exc).splitlines()[0]} ({getattr(exc, 'problem_mark', '')})".strip(), source=path) from None
    if raw is None:
        raise InputError("job file is empty", source=path)
    return parse_job(raw, str(path), check_files=check_files)

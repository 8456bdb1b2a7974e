"""The job's checks across fields: unknown keys (with "did you mean"), the search space
(every value a searched option can take), each condition's own training options, and the
checks across sections once each is well-formed. :func:`grid.spec.parse_job` runs them."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from embodiment.errors import did_you_mean
from embodiment.training import TrainConfig
from embodiment.validation import first_problem
from grid.spec import (
    NOT_TRAINING_OPTIONS,
    SEARCH_KINDS,
    ConditionSpec,
    EvalSpec,
    JobSpec,
    NormsSpec,
    ResourcesSpec,
    TuneSpec,
)


#: the model that validates the mapping at a YAML path (for "did you mean" on unknown keys)
_SECTIONS = {("training",): TrainConfig, ("tune",): TuneSpec, ("evaluation",): EvalSpec, ("resources",): ResourcesSpec}


def allowed_keys(loc: tuple) -> list[str]:
    if not loc:
        model = JobSpec
    elif loc[0] == "norms" and len(loc) == 2:
        model = NormsSpec
    elif loc[0] == "conditions" and len(loc) == 2:
        model = ConditionSpec
    else:
        model = _SECTIONS.get(tuple(loc))
    if model is None:
        return []
    names = set(model.model_fields)
    return sorted(names - set(NOT_TRAINING_OPTIONS) if model is TrainConfig else names)


def search_problems(search: Any, training: Any) -> list[str]:
    """The search space, checked on the YAML as written (so its problems come with the
    others): each entry a fixed value, ``{grid|choice: [...]}`` or ``{uniform|loguniform|
    randint: {low, high}}``, and every value it can take a valid training option."""
    if not isinstance(search, dict):
        return []  # pydantic says what it should be
    base = _training_base(training)
    out = []
    for key, value in search.items():
        p = f"search.{key}"
        if key == "condition":
            continue  # checked against the conditions once they are valid
        if key not in TrainConfig.model_fields or key in NOT_TRAINING_OPTIONS:
            out.append(f"{p}: not a training option{did_you_mean(str(key), TrainConfig.model_fields)}")
            continue
        for where, candidate in _candidates(value, p, out):
            problem = _option_problem({**base, key: candidate})
            if problem is not None:
                out.append(f"{where}: {problem}")
    return out


def condition_training_problems(raw: Any) -> list[str]:
    """Each condition's own training options: known options, valid over the job's
    training section, and not also searched (one value would silently win)."""
    if not isinstance(raw.get("conditions"), list):
        return []
    base = _training_base(raw.get("training"))
    searched = raw.get("search") if isinstance(raw.get("search"), dict) else {}
    out = []
    for i, condition in enumerate(raw["conditions"]):
        own = condition.get("training") if isinstance(condition, dict) else None
        if not isinstance(own, dict):
            continue  # absent, or pydantic says what it should be
        for key, value in own.items():
            p = f"conditions[{i}].training.{key}"
            if key in NOT_TRAINING_OPTIONS:
                out.append(f"{p}: not a training option here: {NOT_TRAINING_OPTIONS[key]}")
            elif key not in TrainConfig.model_fields:
                out.append(f"{p}: not a training option{did_you_mean(str(key), TrainConfig.model_fields)}")
            elif key in searched:
                out.append(f"{p}: also searched (search.{key}); set it in one place")
            else:
                problem = _option_problem({**base, key: value})
                if problem is not None:
                    out.append(f"{p}: {problem}")
    return out


def _training_base(training: Any) -> dict:
    """The training section as written, what other options are checked over; empty where
    it is not valid (its own problems are reported there, not again for every option)."""
    base = {k: v for k, v in training.items() if k not in NOT_TRAINING_OPTIONS} if isinstance(training, dict) else {}
    return base if _option_problem(base) is None else {}


def _option_problem(options: dict) -> str | None:
    """What is wrong with these training options (the first problem), or None."""
    try:
        TrainConfig.model_validate(options)
    except ValidationError as exc:
        return first_problem(exc)[1]
    return None


def _candidates(value: Any, path: str, out: list[str]) -> list[tuple[str, Any]]:
    """(YAML path, value) for every value a search entry can take (a range: its ends)."""
    if not isinstance(value, dict):
        return [(path, value)]
    kinds = [k for k in value if k in SEARCH_KINDS]
    if len(kinds) != 1 or len(value) != 1:
        out.append(
            f"{path}: expected one of {', '.join(SEARCH_KINDS)} (e.g. {{grid: [1e-4, 1e-3]}} or "
            "{loguniform: {low: 1e-5, high: 1e-3}})"
        )
        return []
    kind, arg = kinds[0], value[kinds[0]]
    if kind in ("choice", "grid"):
        if not isinstance(arg, list) or not arg:
            out.append(f"{path}.{kind}: expected a non-empty list")
            return []
        return [(f"{path}.{kind}[{i}]", v) for i, v in enumerate(arg)]
    if not isinstance(arg, dict) or set(arg) != {"low", "high"}:
        out.append(f"{path}.{kind}: expected {{low: ..., high: ...}}")
        return []
    low, high = arg["low"], arg["high"]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers or low >= high:
        out.append(f"{path}.{kind}: expected numbers with low < high, got low={low!r}, high={high!r}")
        return []
    if kind == "loguniform" and low <= 0:
        out.append(f"{path}.{kind}.low: loguniform needs low > 0, got {low!r}")
        return []
    if kind == "randint" and not all(isinstance(v, int) for v in (low, high)):
        out.append(f"{path}.{kind}: randint needs integer bounds, got low={low!r}, high={high!r}")
        return []
    if kind == "randint":  # integers; its high is exclusive
        return [(f"{path}.{kind}.low", low), (f"{path}.{kind}.high", high - 1)]
    # uniform and loguniform sample floats: an integer option cannot take them
    return [(f"{path}.{kind}.low", float(low)), (f"{path}.{kind}.high", float(high))]


def search_candidates(value: Any) -> list[tuple[str, Any]]:
    """(YAML path under ``search``, value) for every value a valid search entry can take:
    a fixed value, each listed one, or a range's two ends."""
    return _candidates(value, "search", [])


def cross_problems(spec: JobSpec) -> list[str]:
    """Checks across sections, once each section is well-formed."""
    out = []
    seen = set()
    for i, c in enumerate(spec.conditions):
        from embodiment.formats import FORMATS

        trains_on = FORMATS[c.format].trains_on
        for lang in c.languages:
            if lang not in spec.norms and trains_on == "norms":
                out.append(f"conditions[{i}].languages: no norms for {lang!r}; add norms.{lang}")
        if trains_on == "mcq" and "train" not in spec.mcq:
            out.append(
                f"conditions[{i}].format: the {c.format} format trains on multiple-choice items: it needs "
                "mcq.train (a JSON question file, or wu2026:mcq-train)"
            )
        if c.name in seen or c.name == "base":
            out.append(f"conditions[{i}].name: {c.name!r} is used twice or reserved ('base' is the untrained model)")
        seen.add(c.name)
    for key in ("formats", "best_only"):
        for i, f in enumerate(getattr(spec.evaluation, key)):
            if f == "mcq" and "test" not in spec.mcq:
                out.append(f"evaluation.{key}[{i}]: evaluating mcq needs mcq.test (a JSON question file)")
            if key == "best_only" and f in spec.evaluation.formats:
                out.append(f"evaluation.best_only[{i}]: {f} is already in evaluation.formats (every trial gets it)")
    for i, lang in enumerate(spec.evaluation.languages):
        if lang not in spec.norms:
            out.append(f"evaluation.languages[{i}]: no norms for {lang!r}; add norms.{lang}")
    sampled = [
        k for v in spec.search.values() if isinstance(v, dict) for k in v if k in ("uniform", "loguniform", "randint")
    ]
    if spec.tune.searcher == "grid" and sampled:
        out.append(
            "tune.searcher: grid search cannot sample uniform/loguniform/randint ranges; use searcher: random or optuna"
        )
    condition = spec.search.get("condition")
    names = [c.name for c in spec.conditions]
    for where, value in _candidates(condition, "search.condition", out) if condition is not None else []:
        if value not in names:
            out.append(f"{where}: unknown condition {value!r}{did_you_mean(str(value), names)}")
    return out

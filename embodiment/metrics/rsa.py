"""Representational Similarity Analysis with named choices.

A :class:`RSARecipe` names every choice: feature standardisation, RDM distance,
comparison method. The study's recipe (Wu et al., 2026) -- z-score each dimension across
concepts, cosine distance between concepts, Spearman between the condensed RDMs -- is
:data:`STUDY_RECIPE`, registered as ``"wu2026"``. :func:`rsa` runs dense (float64
condensed RDMs) up to ``max_dense_pairs`` and streams exactly beyond that, so the whole
Lancaster vocabulary (788M pairs) fits in memory; subsampling happens only when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from embodiment.errors import InputError, did_you_mean
from embodiment.metrics import streaming
from embodiment.metrics.bootstrap import percentile_interval
from embodiment.metrics.compare import average_ranks, get_comparison
from embodiment.metrics.rdm import get_rdm_method, get_standardiser, iter_condensed, n_pairs
from embodiment.registry import lookup

#: Above this many pairs the streaming path is used (dense needs 8 bytes a pair per RDM).
MAX_DENSE_PAIRS = 20_000_000


@dataclass(frozen=True)
class RSARecipe:
    """The named choices of one RSA.

    Attributes:
        standardise: feature standardisation before distances (``none`` / ``zscore``).
        rdm: distance between concepts (``cosine``, ``correlation``, ``euclidean`` ...).
        compare: comparison of the two RDMs (``spearman``, ``corr``, ``tau-a``, ``rho-a`` ...).
        name: a label recorded in the tables.
    """

    standardise: str = "zscore"
    rdm: str = "cosine"
    compare: str = "spearman"
    name: str = "wu2026"

    def validate(self) -> "RSARecipe":
        """Check every name against its registry; raises InputError with "did you mean"."""
        get_standardiser(self.standardise)
        get_rdm_method(self.rdm)
        get_comparison(self.compare)
        return self


STUDY_RECIPE = RSARecipe()
RECIPES: dict[str, RSARecipe] = {
    "wu2026": STUDY_RECIPE,
    "rsatoolbox": RSARecipe("none", "correlation", "cosine", "rsatoolbox"),
    "pearson-euclidean": RSARecipe("zscore", "euclidean", "corr", "pearson-euclidean"),
}


def get_recipe(name_or_recipe: str | RSARecipe | dict) -> RSARecipe:
    """A recipe from a registered name, a dict of choices, or a recipe."""
    if isinstance(name_or_recipe, RSARecipe):
        return name_or_recipe.validate()
    if isinstance(name_or_recipe, dict):
        base = RECIPES.get(name_or_recipe.get("name", "wu2026"), STUDY_RECIPE)
        unknown = set(name_or_recipe) - {"standardise", "rdm", "compare", "name"}
        if unknown:
            key = sorted(unknown)[0]
            raise InputError(
                f"unknown RSA option{did_you_mean(key, ['standardise', 'rdm', 'compare', 'name'])}", key=key
            )
        return replace(base, **name_or_recipe).validate()
    return lookup(RECIPES, name_or_recipe, what="RSA recipe", key="recipe")


@dataclass(frozen=True)
class RSAResult:
    """One RSA value with its inference and bookkeeping.

    Attributes:
        value: the comparison of the two RDMs.
        n_concepts: concepts used.
        n_dropped: concepts dropped (a missing rating, or a vector whose distance is undefined).
        n_pairs: concept pairs compared.
        path: ``dense`` or ``streaming``.
        p_perm: one-sided concept-permutation p (value >= permuted), NaN when not run.
        n_perm: permutations run.
        ci_low: bootstrap percentile lower bound over concepts, NaN when not run.
        ci_high: upper bound.
        n_boot: bootstrap resamples run.
    """

    recipe: RSARecipe
    value: float
    n_concepts: int
    n_dropped: int
    n_pairs: int
    path: str
    p_perm: float = float("nan")
    n_perm: int = 0
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    n_boot: int = 0

    def as_row(self) -> dict:
        """A flat dict for a metrics table."""
        row = asdict(self)
        recipe = row.pop("recipe")
        row.update(
            {
                "recipe": recipe["name"],
                "standardise": recipe["standardise"],
                "rdm_method": recipe["rdm"],
                "compare_method": recipe["compare"],
            }
        )
        return row


def _prepare(features: np.ndarray, recipe: RSARecipe):
    method = get_rdm_method(recipe.rdm)
    prepared, ok = method.prepare(get_standardiser(recipe.standardise)(features))
    return method, prepared, ok


def rsa(
    model: np.ndarray,
    human: np.ndarray,
    recipe: str | RSARecipe | dict = STUDY_RECIPE,
    *,
    n_perm: int = 0,
    n_boot: int = 0,
    seed: int = 0,
    subsample: int | None = None,
    max_dense_pairs: int = MAX_DENSE_PAIRS,
    progress: Callable[[str], None] | None = None,
) -> RSAResult:
    """Compare the model's and the humans' representational geometry over the same concepts.

    Args:
        model: (n, d_model) features per concept: model ratings or hidden states.
        human: (n, d_human) human ratings of the same concepts, same row order.
        recipe: an :class:`RSARecipe`, a registered name (``"wu2026"``) or a dict of choices.
        n_perm: concept-permutation test iterations (dense path only).
        n_boot: bootstrap resamples over concepts for a CI (dense path only).
        seed: seed of subsampling, permutations and bootstrap.
        subsample: use only this many concepts, drawn at random (explicit opt-in).
        max_dense_pairs: above this many pairs use the exact streaming path.
        progress: called with a line of text at slow steps.

    Returns:
        :class:`RSAResult`. Concepts with a NaN feature on either side, or whose distance is
        undefined (a zero vector under cosine), are dropped and counted.
    """
    recipe = get_recipe(recipe)
    model = np.asarray(model, dtype=np.float64)
    human = np.asarray(human, dtype=np.float64)
    if model.ndim != 2 or human.ndim != 2 or len(model) != len(human):
        raise InputError(
            f"model and human features must be (n, d) arrays over the same concepts, got {model.shape} and {human.shape}"
        )
    keep = ~(np.isnan(model).any(axis=1) | np.isnan(human).any(axis=1))
    dropped = int((~keep).sum())
    model, human = model[keep], human[keep]
    rng = np.random.default_rng(seed)
    if subsample is not None and subsample < len(model):
        pick = np.sort(rng.choice(len(model), size=subsample, replace=False))
        model, human = model[pick], human[pick]
    # standardisation is over the concepts in the analysis: drop undefined rows, then redo
    ma, pa, ok_a = _prepare(model, recipe)
    mb, pb, ok_b = _prepare(human, recipe)
    if not (ok_a & ok_b).all():
        ok = ok_a & ok_b
        dropped += int((~ok).sum())
        model, human = model[ok], human[ok]
        ma, pa, _ = _prepare(model, recipe)
        mb, pb, _ = _prepare(human, recipe)
    n = len(model)
    comparison = get_comparison(recipe.compare)
    pairs = n_pairs(n)
    if n < 3:
        return RSAResult(recipe, float("nan"), n, dropped, pairs, "dense")
    if pairs <= max_dense_pairs:
        a = _condensed(pa, ma)
        b = _condensed(pb, mb)
        value = comparison.dense(a, b)
        result = RSAResult(recipe, value, n, dropped, pairs, "dense")
        if n_perm:
            result = replace(result, p_perm=_permutation_p(a, b, n, comparison, value, n_perm, rng), n_perm=n_perm)
        if n_boot:
            lo, hi = _bootstrap(a, b, n, comparison, n_boot, rng)
            result = replace(result, ci_low=lo, ci_high=hi, n_boot=n_boot)
        return result
    return _streaming(
        recipe, comparison, (pa, ma, pb, mb), n, dropped, inference=bool(n_perm or n_boot), progress=progress
    )


def _streaming(
    recipe: RSARecipe, comparison, prepared: tuple, n: int, dropped: int, *, inference: bool, progress
) -> RSAResult:
    """RSA over more pairs than fit in memory at once: exact, from streamed moments."""
    pairs = n_pairs(n)
    if comparison.from_moments is None:
        raise InputError(
            f"{recipe.compare!r} needs all {pairs:,} pairs at once; use spearman, rho-a, corr or cosine, "
            f"or pass subsample=",
            key="compare",
        )
    if inference:
        raise InputError(
            f"permutation and bootstrap at {n:,} concepts ({pairs:,} pairs) would take days; "
            "pass subsample= for inference",
            key="n_perm",
        )
    pa, ma, pb, mb = prepared
    moments = (
        streaming.rank_moments(pa, ma, pb, mb, progress)
        if comparison.on_ranks
        else streaming.value_moments(pa, ma, pb, mb)
    )
    return RSAResult(recipe, comparison.from_moments(moments), n, dropped, pairs, "streaming")


def _condensed(prepared: np.ndarray, method) -> np.ndarray:
    out = np.empty(n_pairs(len(prepared)))
    for offset, values in iter_condensed(prepared, method):
        out[offset : offset + values.size] = values
    return out


def _permutation_p(a: np.ndarray, b: np.ndarray, n: int, comparison, observed: float, n_perm: int, rng) -> float:
    """One-sided p: share of concept relabellings of RDM a whose value reaches the observed.

    For rank methods the ranks are computed once: relabelling concepts only moves them.
    """
    if comparison.on_ranks and comparison.name == "spearman":
        a, b = average_ranks(a), average_ranks(b)
        score = lambda x, y: float(np.corrcoef(x, y)[0, 1])  # noqa: E731
    else:
        score = comparison.dense
    square = np.zeros((n, n))
    iu = np.triu_indices(n, 1)
    square[iu] = a
    square += square.T
    hits = 0
    for _ in range(n_perm):
        perm = rng.permutation(n)
        hits += score(square[np.ix_(perm, perm)][iu], b) >= observed - 1e-12
    return (hits + 1) / (n_perm + 1)


def _bootstrap(
    a: np.ndarray, b: np.ndarray, n: int, comparison, n_boot: int, rng, ci: float = 0.95
) -> tuple[float, float]:
    """Percentile CI over concepts resampled with replacement, on the RDMs already built
    (see :mod:`embodiment.metrics.rsa_bootstrap`); inside a
    :class:`~embodiment.metrics.rsa_shared.SharedDraws` context, a Spearman RSA's is queued
    and its bounds are placeholders until the context closes."""
    from embodiment.metrics.rsa_bootstrap import ResampledRSA
    from embodiment.metrics.rsa_shared import active

    shared = active()
    if shared is not None and comparison.name == "spearman":
        return shared.add(a, b, n, n_boot, rng, ci)
    return percentile_interval(ResampledRSA(a, b, n, comparison).draws(n_boot, rng), ci)


def rsa_by_subset(
    model: np.ndarray,
    human: np.ndarray,
    dimensions: Sequence[str],
    subsets: Sequence[str] = ("all", "sensory", "motor"),
    **kwargs,
) -> list[tuple[str, list[str], RSAResult]]:
    """RSA of rating vectors restricted to each dimension subset (both sides share columns).

    Subsets with fewer than two dimensions in ``dimensions`` are skipped (a one-feature
    cosine RDM is degenerate).
    """
    from embodiment import dimensions as dims

    out = []
    for name in subsets:
        cols = dims.subset(list(dimensions), name)
        if len(cols) < 2:
            continue
        j = [list(dimensions).index(c) for c in cols]
        out.append((name, cols, rsa(model[:, j], human[:, j], **kwargs)))
    return out

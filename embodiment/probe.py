"""The frozen-feature probe: ridge regression from a layer's pooled hidden states to the norms.

The reference any fine-tuning result is read against: how much of the human ratings a
linear read-out of the (frozen or fine-tuned) model's concept representations already
recovers. Ridge in closed form through one SVD per fold; the penalty is chosen by
k-fold cross-validation on the training concepts only (held-out concepts are never seen
before the final prediction). Features are standardised with the training concepts'
mean and spread; targets are centred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: penalties tried by cross-validation (features are standardised, so they are comparable
#: across layers and models)
ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))


@dataclass
class RidgeProbe:
    """A fitted ridge read-out.

    Attributes:
        alpha: the penalty chosen by cross-validation.
        coef: (features, targets) weights on standardised features.
        intercept: (targets,) the training targets' mean.
        mean, scale: the training features' mean and standard deviation.
        cv_error: penalty -> mean cross-validated squared error of standardised targets.
    """

    alpha: float
    coef: np.ndarray
    intercept: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    cv_error: dict[float, float] = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, targets) predictions for (n, features) vectors."""
        return ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale) @ self.coef + self.intercept


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)  # a constant feature carries nothing
    return (x - mean) / scale, mean, scale


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas) -> list[np.ndarray]:
    """Ridge weights for every penalty from one SVD: V diag(s / (s^2 + a)) U^T y."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    uty = u.T @ y
    return [vt.T @ ((s / (s * s + a))[:, None] * uty) for a in alphas]


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    return np.array_split(np.random.default_rng(seed).permutation(n), k)


def fit_ridge(features: np.ndarray, targets: np.ndarray, *, alphas=ALPHAS, folds: int = 5, seed: int = 0) -> RidgeProbe:
    """Fit a ridge probe, choosing the penalty by k-fold cross-validation.

    Args:
        features: (n, features) pooled hidden states of the training concepts.
        targets: (n, targets) their human ratings (no missing values).
        alphas: penalties to try.
        folds: cross-validation folds over the training concepts (at most n).
        seed: seed of the fold assignment.

    Returns:
        :class:`RidgeProbe` refitted on all training concepts with the chosen penalty.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features {x.shape} and targets {y.shape} must be 2-D with one row per concept")
    if len(x) < 4 or not np.isfinite(y).all():
        raise ValueError("the probe needs at least 4 training concepts and finite targets")
    spread = y.std(0)
    spread = np.where(spread > 1e-12, spread, 1.0)
    errors = np.zeros(len(alphas))
    for held in _folds(len(x), min(folds, len(x)), seed):
        keep = np.setdiff1d(np.arange(len(x)), held)
        xs, mean, scale = _standardise(x[keep])
        centre = y[keep].mean(0)
        x_held = (x[held] - mean) / scale
        for i, w in enumerate(_ridge_path(xs, y[keep] - centre, alphas)):
            errors[i] += (((x_held @ w + centre - y[held]) / spread) ** 2).sum()
    errors /= len(x) * y.shape[1]
    best = int(np.argmin(errors))
    xs, mean, scale = _standardise(x)
    centre = y.mean(0)
    coef = _ridge_path(xs, y - centre, [alphas[best]])[0]
    return RidgeProbe(float(alphas[best]), coef, centre, mean, scale, dict(zip(map(float, alphas), errors.tolist())))


@dataclass
class ProbeResult:
    """A probe's held-out figures for one layer.

    Attributes:
        probe: the fitted read-out.
        predictions: (n_test, dimensions) predicted ratings of the held-out concepts.
        metrics: the held-out metrics of those predictions, computed as any model's
            ratings are (:func:`embodiment.evaluate.evaluate_joined`: per-dimension
            Spearman and Pearson with CIs, RSA per dimension subset with CIs, word-wise
            similarity); ``condition`` is ``probe``.
    """

    probe: RidgeProbe
    predictions: np.ndarray
    metrics: "pd.DataFrame"


def evaluate_probe(
    train_features: np.ndarray,
    train_ratings: np.ndarray,
    test_features: np.ndarray,
    test_ratings: np.ndarray,
    dimensions,
    *,
    recipe="wu2026",
    subsets=("all", "sensory", "motor"),
    n_boot: int = 1000,
    seed: int = 0,
    eval_set: str = "probe",
) -> ProbeResult:
    """Fit a probe on the training concepts and score its predictions on the held-out ones.

    The probe is a read-out of ratings, like a rating prompt or a regression head: its
    predictions are scored by the same evaluation as every other model's ratings, so its
    figures are comparable with theirs by construction.

    Args:
        train_features, train_ratings: (n_train, features) vectors and (n_train, d) norms.
        test_features, test_ratings: the same for the held-out concepts.
        dimensions: names of the d rating columns.
        recipe: the RSA recipe (the study's by default).
        subsets: dimension subsets of the RSA.
        n_boot: bootstrap resamples over held-out concepts for every CI.
        seed: seed of the folds and the bootstrap.
        eval_set: the label of the metrics' ``eval_set`` column.

    Returns:
        :class:`ProbeResult`.
    """
    from embodiment.evaluate import EvaluationOptions, evaluate_joined
    from embodiment.ratings import JoinedRatings

    probe = fit_ridge(train_features, train_ratings, seed=seed)
    pred = probe.predict(test_features)
    dims = list(dimensions)
    joined = JoinedRatings(
        [str(i) for i in range(len(pred))], dims, np.asarray(test_ratings, dtype=np.float64), {"probe": pred}, [], None
    )
    options = EvaluationOptions(
        base=None, n_boot=n_boot, rsa_recipe=recipe, rsa_subsets=subsets, rsa_boot=n_boot, seed=seed, eval_set=eval_set
    )
    return ProbeResult(probe, pred, evaluate_joined(joined, options)["metrics"])

"""The ridge probe against closed-form and loop oracles."""

import numpy as np
import pytest
from scipy import stats

from embodiment.metrics import rsa
from embodiment.probe import ALPHAS, evaluate_probe, fit_ridge

pytestmark = pytest.mark.unit


def _data(n=120, p=30, d=3, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, size=p) + rng.normal(size=p)
    w = rng.normal(size=(p, d))
    return x, x @ w + noise * rng.normal(size=(n, d)) + 2.0


def _standardised(x):
    return (x - x.mean(0)) / x.std(0)


def test_weights_equal_the_normal_equations():
    x, y = _data()
    probe = fit_ridge(x, y, alphas=(7.0,))
    xs = _standardised(x)
    oracle = np.linalg.solve(xs.T @ xs + 7.0 * np.eye(x.shape[1]), xs.T @ (y - y.mean(0)))
    np.testing.assert_allclose(probe.coef, oracle, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(probe.predict(x[:5]), xs[:5] @ oracle + y.mean(0), rtol=1e-8)


def test_cross_validated_errors_equal_a_loop_over_folds_and_penalties():
    x, y = _data(n=60, p=12, noise=1.0, seed=1)
    alphas = (0.1, 3.0, 100.0, 1e4)
    probe = fit_ridge(x, y, alphas=alphas, folds=4, seed=5)
    folds = np.array_split(np.random.default_rng(5).permutation(len(x)), 4)
    spread = y.std(0)
    for a in alphas:
        total = 0.0
        for held in folds:
            keep = np.setdiff1d(np.arange(len(x)), held)
            mean, scale = x[keep].mean(0), x[keep].std(0)
            xs = (x[keep] - mean) / scale
            w = np.linalg.solve(xs.T @ xs + a * np.eye(x.shape[1]), xs.T @ (y[keep] - y[keep].mean(0)))
            pred = ((x[held] - mean) / scale) @ w + y[keep].mean(0)
            for i in range(len(held)):
                for j in range(y.shape[1]):
                    total += ((pred[i, j] - y[held][i, j]) / spread[j]) ** 2
        assert probe.cv_error[a] == pytest.approx(total / (len(x) * y.shape[1]), rel=1e-9)
    assert probe.alpha == min(probe.cv_error, key=probe.cv_error.get)


def test_penalty_follows_the_signal():
    x, y = _data(n=200, p=20, noise=0.05, seed=2)
    rng = np.random.default_rng(3)
    assert fit_ridge(x, y).alpha < fit_ridge(x, rng.normal(size=y.shape)).alpha
    assert fit_ridge(x, rng.normal(size=y.shape)).alpha >= 1e4  # pure noise: shrink everything


def test_held_out_figures_match_scipy():
    x, y = _data(n=300, p=25, d=4, noise=2.0, seed=4)
    res = evaluate_probe(x[:200], y[:200], x[200:], y[200:], ["a", "b", "c", "d"], n_boot=50)
    sp = res.metrics[res.metrics["metric"] == "spearman"].set_index("dimension")
    for j, dim in enumerate("abcd"):
        assert sp.at[dim, "value"] == pytest.approx(
            stats.spearmanr(res.predictions[:, j], y[200:, j]).statistic, abs=1e-12
        )
        assert sp.at[dim, "ci_low"] <= sp.at[dim, "value"] <= sp.at[dim, "ci_high"]
    whole = res.metrics[res.metrics["metric"] == "rsa"].iloc[0]  # custom dimensions: one subset, all
    assert whole["subset"] == "all" and whole["value"] == pytest.approx(rsa(res.predictions, y[200:], "wu2026").value)
    assert 0.5 < whole["value"] <= 1.0 and whole["ci_low"] <= whole["value"] <= whole["ci_high"]
    assert res.probe.alpha in ALPHAS


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="one row per concept"):
        fit_ridge(np.zeros((5, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        fit_ridge(np.ones((6, 3)), np.full((6, 2), np.nan))

import numpy as np
import pytest
from scipy import stats

from embodiment.errors import InputError
from embodiment.metrics import bootstrap_ci, correlate, per_dimension, steiger_z


def _with_ties_and_nans(rng, n=80):
    x = rng.integers(0, 6, size=n).astype(float)  # many ties
    y = x + rng.normal(scale=1.5, size=n)
    x[[3, 10]] = np.nan
    y[[10, 20, 30]] = np.nan
    return x, y


@pytest.mark.parametrize("method,oracle", [("spearman", stats.spearmanr), ("pearson", stats.pearsonr)])
def test_correlate_equals_scipy_on_complete_cases(rng, method, oracle):
    x, y = _with_ties_and_nans(rng)
    c = correlate(x, y, method)
    keep = ~(np.isnan(x) | np.isnan(y))
    ref = oracle(x[keep], y[keep])
    assert c.n == keep.sum() == 76
    assert c.n_dropped == 4  # concepts 3, 10, 20, 30; 10 is missing on both sides, counted once
    assert c.r == pytest.approx(ref.statistic, abs=1e-12)
    assert c.p == pytest.approx(ref.pvalue, rel=1e-6)


def test_constant_column_gives_nan_not_error(rng):
    c = correlate(np.full(20, 2.5), rng.normal(size=20), "spearman")
    assert np.isnan(c.r) and c.n == 20


def test_bootstrap_ci_matches_naive_loop(rng):
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)
    lo, hi = bootstrap_ci(x, y, "spearman", n_boot=300, seed=7, block=64)
    # naive oracle: same draws, one resample at a time, scipy for each
    r = np.random.default_rng(7)
    idx = np.concatenate([r.integers(0, 60, size=(min(64, 300 - s), 60)) for s in range(0, 300, 64)])
    boots = [stats.spearmanr(x[i], y[i]).statistic for i in idx]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), abs=1e-12)
    r0 = stats.spearmanr(x, y).statistic
    assert lo < r0 < hi


def test_bootstrap_is_seeded(rng):
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    assert bootstrap_ci(x, y, n_boot=200, seed=1) == bootstrap_ci(x, y, n_boot=200, seed=1)
    assert bootstrap_ci(x, y, n_boot=200, seed=1) != bootstrap_ci(x, y, n_boot=200, seed=2)


def test_per_dimension_rows(rng):
    human = rng.uniform(0, 5, size=(50, 3))
    model = human + rng.normal(size=(50, 3))
    rows = per_dimension(model, human, ["Auditory", "Visual", "Haptic"], n_boot=50)
    assert len(rows) == 6
    vis = next(r for r in rows if r["dimension"] == "Visual" and r["method"] == "spearman")
    assert vis["value"] == pytest.approx(stats.spearmanr(model[:, 1], human[:, 1]).statistic)
    assert vis["ci_low"] <= vis["value"] <= vis["ci_high"]


def test_unknown_method_suggests():
    with pytest.raises(InputError, match="did you mean 'spearman'"):
        correlate([1, 2, 3], [1, 2, 3], "spearmann")


# Published outputs of R's cocor.dep.groups.overlap(test="steiger1980") for fixed inputs:
# Steiger (1980) Case A (p. 249) as cocor's own test suite computes it, and the depcor
# program's (Silver, Hittner & May, 2006) example, z and p to four places.
COCOR_STEIGER = [((0.4, 0.5, 0.1, 103), -0.8887185, None), ((0.3, 0.4, 0.5, 100), -1.0718, 0.2838)]


@pytest.mark.parametrize("inputs,z,p", COCOR_STEIGER)
def test_steiger_matches_cocor(inputs, z, p):
    t = steiger_z(*inputs)
    places = len(str(z).split(".")[1])
    assert round(t.z, places) == pytest.approx(z, abs=1e-12)
    if p is not None:
        assert round(t.p, 4) == pytest.approx(p, abs=1e-12)


def test_steiger_symmetry_and_null():
    assert steiger_z(0.5, 0.5, 0.3, 100).z == 0.0
    assert steiger_z(0.3, 0.6, 0.4, 200).z == pytest.approx(-steiger_z(0.6, 0.3, 0.4, 200).z)
    assert np.isnan(steiger_z(np.nan, 0.3, 0.4, 200).z)


def test_steiger_is_calibrated_under_the_null():
    """Monte Carlo: equal population correlations -> about 5% rejections; unequal -> power."""
    rng = np.random.default_rng(0)
    cov_null = np.array([[1, 0.5, 0.5], [0.5, 1, 0.6], [0.5, 0.6, 1]])
    cov_alt = np.array([[1, 0.6, 0.3], [0.6, 1, 0.4], [0.3, 0.4, 1]])

    def rejections(cov, reps=1500, n=120):
        hits = 0
        for _ in range(reps):
            j, k, h = rng.multivariate_normal(np.zeros(3), cov, size=n).T
            r = np.corrcoef([j, k, h])
            hits += steiger_z(r[0, 1], r[0, 2], r[1, 2], n).p < 0.05
        return hits / reps

    null_rate = rejections(cov_null)
    assert 0.03 < null_rate < 0.07
    assert rejections(cov_alt, reps=300) > 0.8


def test_mean_correlation_equals_a_scipy_loop_and_its_bootstrap(rng):
    from embodiment.metrics import mean_correlation

    n, d = 70, 4
    human = rng.normal(size=(n, d))
    model = human + rng.normal(scale=[0.5, 1.0, 2.0, 4.0], size=(n, d))
    model[5, 2] = np.nan  # a concept missing one rating leaves value and CI alike
    m = mean_correlation(model, human, "spearman", n_boot=150, seed=3, block=40)
    keep = ~np.isnan(model).any(axis=1)
    x, y = model[keep], human[keep]
    assert m.n == n - 1 and m.n_dropped == 1
    assert m.r == pytest.approx(np.mean([stats.spearmanr(x[:, j], y[:, j]).statistic for j in range(d)]), abs=1e-12)
    # naive oracle: the same resamples of concepts, scipy per dimension, then the mean
    r = np.random.default_rng(3)
    idx = np.concatenate([r.integers(0, n - 1, size=(min(40, 150 - s), n - 1)) for s in range(0, 150, 40)])
    boots = [np.mean([stats.spearmanr(x[i, j], y[i, j]).statistic for j in range(d)]) for i in idx]
    assert (m.ci_low, m.ci_high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), abs=1e-12)
    assert m.ci_low < m.r < m.ci_high


def test_mean_correlation_rejects_vectors_and_mismatched_tables(rng):
    from embodiment.metrics import mean_correlation

    with pytest.raises(InputError, match="equal shape"):
        mean_correlation(rng.normal(size=10), rng.normal(size=10))
    with pytest.raises(InputError, match=r"\(10, 3\) and \(10, 2\)"):
        mean_correlation(rng.normal(size=(10, 3)), rng.normal(size=(10, 2)))


def test_proportion_bootstrap_matches_resampling_items():
    from embodiment.metrics import proportion

    hits = np.array([True] * 30 + [False] * 70)
    p = proportion(hits, n_boot=4000, seed=1)
    assert p.value == 0.3 and p.n == 100
    # resampling the items themselves gives the same interval up to Monte Carlo noise
    r = np.random.default_rng(2)
    naive = np.quantile([hits[r.integers(0, 100, size=100)].mean() for _ in range(4000)], [0.025, 0.975])
    assert (p.ci_low, p.ci_high) == pytest.approx(tuple(naive), abs=0.021)
    assert proportion(hits, n_boot=4000, seed=1) == p  # seeded
    assert np.isnan(proportion([]).value) and np.isnan(proportion(hits).ci_low)


@pytest.mark.parametrize("method,oracle", [("spearman", stats.spearmanr), ("pearson", stats.pearsonr)])
def test_resampled_correlations_equal_scipy_on_each_written_out_resample(rng, method, oracle):
    from embodiment.metrics.resampled import SortedColumn, counts_of, resampled_correlations

    n = 40
    x = rng.integers(0, 4, size=n).astype(float)  # ties between concepts, besides a resample's repeats
    y = np.round(x + rng.normal(size=n), 1)
    idx = rng.integers(0, n, size=(200, n))
    idx[0] = 7  # a resample of one concept: both sides constant
    idx[1, :] = np.where(x == x[0])[0][0]  # constant too
    got = resampled_correlations(method, SortedColumn(x), SortedColumn(y), counts_of(idx, n))
    for row, value in zip(idx, got):
        if np.unique(x[row]).size == 1 or np.unique(y[row]).size == 1:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(oracle(x[row], y[row]).statistic, abs=1e-12)
    assert np.isnan(got[:2]).all() and np.isfinite(got[2:]).sum() > 150


def test_mean_correlation_bootstrap_counts_a_model_column_constant_in_a_resample_as_zero(rng):
    from embodiment.metrics import mean_correlation

    n = 12
    human = rng.normal(size=(n, 2))
    model = np.column_stack([human[:, 0] + rng.normal(size=n), np.where(np.arange(n) == 0, 1.0, 0.0)])
    m = mean_correlation(model, human, "spearman", n_boot=300, seed=5, block=70)
    r = np.random.default_rng(5)
    idx = np.concatenate([r.integers(0, n, size=(min(70, 300 - s), n)) for s in range(0, 300, 70)])
    boots = []
    for i in idx:
        col = [stats.spearmanr(model[i, 0], human[i, 0]).statistic]
        col.append(0.0 if np.unique(model[i, 1]).size == 1 else stats.spearmanr(model[i, 1], human[i, 1]).statistic)
        boots.append(np.mean(col))
    assert any(0 not in i for i in idx)  # some resamples leave out the one concept where column 1 differs
    assert (m.ci_low, m.ci_high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), abs=1e-12)

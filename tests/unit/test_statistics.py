"""The statistics say what they claim: resampled RSA against the written-out resample,
Holm against a loop, p-values floored, collapsed dimensions counted, probe layer by CV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from embodiment.metrics import RECIPES, holm, mean_correlation, paired_difference
from embodiment.metrics.rdm import condensed_rdm, get_standardiser
from embodiment.metrics.rsa_bootstrap import ResampledRSA
from grid.hidden_states import probe_layer


def _written_out(model, human, recipe, idx):
    """The resample's distinct-concept pairs, one by one (a loop over resample positions)."""
    square = []
    for (features,) in ((model,), (human,)):
        d = np.zeros((len(features),) * 2)
        d[np.triu_indices(len(features), 1)] = condensed_rdm(get_standardiser(recipe.standardise)(features), recipe.rdm)
        square.append(d + d.T)
    a, b = [], []
    for k in range(len(idx)):
        for m in range(k + 1, len(idx)):
            if idx[k] != idx[m]:
                a.append(square[0][idx[k], idx[m]])
                b.append(square[1][idx[k], idx[m]])
    return np.array(a), np.array(b)


SCIPY = {
    "spearman": lambda a, b: stats.spearmanr(a, b).statistic,
    "corr": lambda a, b: stats.pearsonr(a, b).statistic,
    "cosine": lambda a, b: a @ b / np.sqrt((a @ a) * (b @ b)),
}


@pytest.mark.parametrize("name", list(RECIPES))
@pytest.mark.parametrize("ties", [False, True])
def test_resampled_rsa_equals_the_written_out_resample(name, ties):
    rng = np.random.default_rng(7)
    model, human = rng.normal(size=(25, 4)), rng.normal(size=(25, 3))
    if ties:  # tied distances: rounded features repeat vectors and distances
        model, human = np.round(model), np.round(human * 2) / 2
        defined = (model.std(axis=1) > 0) & (human.std(axis=1) > 0)  # what rsa() keeps
        model, human = model[defined], human[defined]
    recipe = RECIPES[name]
    fast = ResampledRSA.of(model, human, recipe)
    n = len(model)
    for _ in range(4):
        idx = rng.integers(0, n, size=n)
        a, b = _written_out(model, human, recipe, idx)
        assert fast(idx) == pytest.approx(SCIPY[recipe.compare](a, b), abs=1e-10)


def test_resampled_draws_are_seeded_and_bracket_the_value():
    rng = np.random.default_rng(3)
    human = rng.normal(size=(200, 6))
    model = human + rng.normal(scale=1.5, size=human.shape)
    r = ResampledRSA.of(model, human, RECIPES["wu2026"])
    one, two = r.draws(300, np.random.default_rng(1)), r.draws(300, np.random.default_rng(1))
    assert np.array_equal(one, two)
    value = r(np.arange(200))
    assert np.quantile(one, 0.025) < value < np.quantile(one, 0.975)


def test_resampled_draws_do_not_depend_on_how_many_run_at_once():
    rng = np.random.default_rng(4)
    human = np.round(rng.normal(size=(120, 5)), 1)  # ties on the human side
    model = human + rng.normal(scale=1.0, size=human.shape)
    r = ResampledRSA.of(model, human, RECIPES["wu2026"])
    one = r.draws(25, np.random.default_rng(2), threads=1)
    assert np.isfinite(one).all() and one.std() > 0
    for threads in (2, 3):
        assert np.array_equal(r.draws(25, np.random.default_rng(2), threads=threads), one)
    # each draw is the resample's own RSA, drawn in the generator's order
    draw = np.random.default_rng(2)
    assert [r(draw.integers(0, 120, size=120)) for _ in range(3)] == pytest.approx(one[:3], abs=1e-12)


def _holm_loop(p):
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_holm_matches_a_loop_and_leaves_nan_out():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=11)
        assert holm(p) == pytest.approx(_holm_loop(list(p)), abs=1e-15)
    p = np.array([0.01, np.nan, 0.04, 0.03])
    adjusted = holm(p)
    assert np.isnan(adjusted[1]) and adjusted[[0, 2, 3]] == pytest.approx(_holm_loop([0.01, 0.04, 0.03]))


def test_bootstrap_p_is_never_zero():
    n = 300
    x = np.linspace(0, 1, n)
    far = paired_difference(lambda idx: float(x[idx].mean() + 10), lambda idx: float(x[idx].mean()), n, n_boot=200)
    assert far.p == pytest.approx(1 / 201)


def test_collapsed_dimension_counts_zero_in_mean_spearman():
    rng = np.random.default_rng(2)
    human = rng.normal(size=(100, 3))
    model = human + rng.normal(scale=0.5, size=human.shape)
    model[:, 1] = 2.0  # the model rates every concept 2 on this dimension
    m = mean_correlation(model, human, n_boot=100)
    rho = [stats.spearmanr(model[:, j], human[:, j]).statistic for j in (0, 2)]
    assert m.r == pytest.approx(sum(rho) / 3) and m.n_constant == 1
    assert m.ci_low < m.r < m.ci_high


def test_probe_layer_is_chosen_by_cross_validated_error():
    metrics = pd.DataFrame(
        {
            "metric": ["probe_cv_error", "probe_cv_error", "probe_rsa", "probe_rsa"],
            "language": "en",
            "trial_id": "base",
            "layer": [8, 15, 8, 15],
            "value": [0.70, 0.65, 0.40, 0.30],
        }
    )  # layer 8 scores better held out, 15 fits better
    assert probe_layer(metrics, "en") == 15


def test_paired_differences_of_mean_spearman_and_rsa_equal_a_loop_over_written_out_resamples():
    from embodiment.metrics import mean_spearman_of, paired_differences

    rng = np.random.default_rng(4)
    n = 30
    human = np.round(rng.uniform(0, 5, size=(n, 3)), 0)  # tied ratings
    tuned = human + rng.normal(size=human.shape)
    probe = human + rng.normal(scale=2.0, size=human.shape)
    tuned[4, 1] = np.nan  # a row missing a rating: out of every resample of that model
    recipe = RECIPES["wu2026"]
    stats_of = {"tuned": mean_spearman_of(tuned, human), "probe": mean_spearman_of(probe, human)}
    got = paired_differences(stats_of, [("tuned", "probe")], n, n_boot=150, seed=9, block=32)[("tuned", "probe")]
    r = np.random.default_rng(9)
    idx = [r.integers(0, n, size=n) for _ in range(150)]
    boots = [mean_correlation(tuned[i], human[i]).r - mean_correlation(probe[i], human[i]).r for i in idx]
    assert got.value == pytest.approx(mean_correlation(tuned, human).r - mean_correlation(probe, human).r, abs=1e-12)
    assert (got.ci_low, got.ci_high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), abs=1e-12)
    keep = ~np.isnan(tuned).any(axis=1)
    t, p, h = tuned[keep], probe[keep], human[keep]
    rsa_of = {"tuned": ResampledRSA.of(t, h, recipe), "probe": ResampledRSA.of(p, h, recipe)}
    got = paired_differences(rsa_of, [("tuned", "probe")], len(t), n_boot=40, seed=2, block=16)[("tuned", "probe")]
    r = np.random.default_rng(2)
    boots = []
    for i in [r.integers(0, len(t), size=len(t)) for _ in range(40)]:
        boots.append(
            SCIPY["spearman"](*_written_out(t, h, recipe, i)) - SCIPY["spearman"](*_written_out(p, h, recipe, i))
        )
    assert (got.ci_low, got.ci_high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), abs=1e-9)


@pytest.mark.parametrize("threads,max_bytes", [(1, 1 << 30), (2, 1 << 30), (2, 1)])
def test_shared_draws_give_each_rsa_the_interval_it_gets_alone(threads, max_bytes):
    from embodiment.metrics import rsa
    from embodiment.metrics.rsa_shared import PendingBound, SharedDraws

    rng = np.random.default_rng(6)
    n = 40
    human = np.round(rng.uniform(0, 5, size=(n, 4)), 1)
    models = [human + rng.normal(scale=s, size=human.shape) for s in (0.5, 1.0, 3.0)]
    calls = [(m, human) for m in models] + [(models[0], human[:, :2]), (models[1][:30], human[:30])]
    alone = [rsa(m, h, "wu2026", n_boot=60, seed=3) for m, h in calls]
    with SharedDraws(threads=threads, max_bytes=max_bytes) as shared:
        queued = [rsa(m, h, "wu2026", n_boot=60, seed=3) for m, h in calls]
        pending = [r for r in queued if isinstance(r.ci_low, PendingBound)]
        if max_bytes > 1:  # nothing run yet: reading a bound is an error, not a NaN
            assert len(pending) == len(calls)
            with pytest.raises(RuntimeError):
                float(queued[0].ci_low)
        rows = pd.DataFrame([r.as_row() for r in queued])  # as_row deep-copies: the bounds stay linked
    assert len(shared.groups) == 0
    table = shared.resolved(rows)
    assert table["ci_low"].dtype == float
    for got, want, (low, high) in zip(queued, alone, zip(table["ci_low"], table["ci_high"])):
        assert (float(got.ci_low), float(got.ci_high)) == (want.ci_low, want.ci_high) == (low, high)
        assert got.value == want.value


def test_shared_draws_leave_other_comparisons_and_no_bootstrap_alone():
    from embodiment.metrics import rsa
    from embodiment.metrics.rsa_shared import SharedDraws

    rng = np.random.default_rng(1)
    human = rng.uniform(0, 5, size=(25, 3))
    model = human + rng.normal(size=human.shape)
    with SharedDraws() as shared:
        pearson = rsa(model, human, "pearson-euclidean", n_boot=30, seed=0)
        none = rsa(model, human, "wu2026", seed=0)
        assert not shared.groups
    assert pearson == rsa(model, human, "pearson-euclidean", n_boot=30, seed=0)
    assert np.isnan(none.ci_low)

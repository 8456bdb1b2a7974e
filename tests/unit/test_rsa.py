import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from embodiment.errors import InputError
from embodiment.metrics import RECIPES, STUDY_RECIPE, compare, condensed_rdm, rsa, rsa_by_subset
from embodiment.metrics.rsa import RSARecipe


def _loop_rdm(x, dist):
    """Naive double loop over concept pairs, pdist order."""
    n = len(x)
    return np.array([dist(x[i], x[j]) for i in range(n) for j in range(i + 1, n)])


def _cos(u, v):
    return 1 - u @ v / np.sqrt((u @ u) * (v @ v))


def _zscore_loop(x):
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        col = x[:, j]
        out[:, j] = (col - col.mean()) / col.std(ddof=1)
    return out


@pytest.mark.parametrize("method", ["cosine", "correlation", "euclidean", "sqeuclidean", "cityblock"])
def test_condensed_rdm_equals_pdist(rng, method):
    x = rng.normal(size=(37, 5))
    assert np.allclose(condensed_rdm(x, method), pdist(x, method), atol=1e-12)


def test_condensed_rdm_many_features_uses_gram_path(rng):
    x = rng.normal(size=(40, 100))  # > 32 features: the Gram-matrix branch
    assert np.allclose(condensed_rdm(x, "euclidean"), pdist(x, "euclidean"), atol=1e-9)


def test_study_recipe_equals_loop_oracle(rng):
    human = rng.uniform(0, 5, size=(30, 6))
    model = human + rng.normal(scale=1.0, size=(30, 6))
    res = rsa(model, human)  # default recipe: zscore, cosine, spearman
    a = _loop_rdm(_zscore_loop(model), _cos)
    b = _loop_rdm(_zscore_loop(human), _cos)
    assert res.value == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert (res.n_concepts, res.n_pairs, res.path) == (30, 435, "dense")
    assert STUDY_RECIPE == RECIPES["wu2026"]


def _tau_a_loop(a, b):
    s = 0.0
    for i, j in itertools.combinations(range(len(a)), 2):
        s += np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return s / (len(a) * (len(a) - 1) / 2)


def _rho_a_loop(a, b):
    ra, rb = stats.rankdata(a), stats.rankdata(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb)) / (n**3 - n)


@pytest.mark.parametrize(
    "method,oracle",
    [
        ("spearman", lambda a, b: stats.spearmanr(a, b).statistic),
        ("corr", lambda a, b: stats.pearsonr(a, b).statistic),
        ("pearson", lambda a, b: stats.pearsonr(a, b).statistic),
        ("tau-b", lambda a, b: stats.kendalltau(a, b).statistic),
        ("tau-a", _tau_a_loop),
        ("rho-a", _rho_a_loop),
        ("cosine", lambda a, b: a @ b / np.sqrt((a @ a) * (b @ b))),
    ],
)
def test_comparisons_with_ties_equal_oracles(rng, method, oracle):
    a = rng.integers(0, 5, size=60).astype(float)  # ties on both sides
    b = np.round(a + rng.normal(size=60))
    assert compare(a, b, method) == pytest.approx(oracle(a, b), abs=1e-12)


@pytest.mark.parametrize("compare_method", ["spearman", "rho-a", "corr", "cosine"])
@pytest.mark.parametrize("rdm", ["cosine", "euclidean", "correlation"])
def test_streaming_path_equals_dense(rng, compare_method, rdm):
    human = rng.uniform(0, 5, size=(90, 6))
    model = human + rng.normal(size=(90, 6))
    recipe = RSARecipe("zscore", rdm, compare_method, "t")
    dense = rsa(model, human, recipe)
    streamed = rsa(model, human, recipe, max_dense_pairs=10)
    assert streamed.path == "streaming" and dense.path == "dense"
    assert streamed.value == pytest.approx(dense.value, abs=1e-9)


def test_streaming_spearman_exact_with_tied_distances(rng):
    # integer ratings on 3 dims: cityblock distances tie massively
    human = rng.integers(0, 4, size=(70, 3)).astype(float)
    model = rng.integers(0, 4, size=(70, 3)).astype(float)
    recipe = RSARecipe("none", "cityblock", "spearman", "t")
    a, b = pdist(model, "cityblock"), pdist(human, "cityblock")
    assert rsa(model, human, recipe, max_dense_pairs=1).value == pytest.approx(
        stats.spearmanr(a, b).statistic, abs=1e-12
    )


def test_nan_and_zero_vectors_drop_concepts(rng):
    human = rng.uniform(0.5, 5, size=(40, 4))
    model = human + rng.normal(size=(40, 4))
    model[5, 2] = np.nan
    human[7] = 0.0  # zero vector: cosine undefined under recipe with no standardisation
    recipe = RSARecipe("none", "cosine", "spearman", "raw")
    res = rsa(model, human, recipe)
    keep = np.setdiff1d(np.arange(40), [5, 7])
    ref = stats.spearmanr(pdist(model[keep], "cosine"), pdist(human[keep], "cosine")).statistic
    assert res.n_dropped == 2 and res.n_concepts == 38
    assert res.value == pytest.approx(ref, abs=1e-12)


def test_permutation_p_detects_structure_and_null(rng):
    human = rng.uniform(0, 5, size=(25, 5))
    related = rsa(human + rng.normal(scale=0.3, size=human.shape), human, n_perm=200, seed=1)
    unrelated = rsa(rng.uniform(0, 5, size=(25, 5)), human, n_perm=200, seed=1)
    assert related.p_perm == pytest.approx(1 / 201)
    assert unrelated.p_perm > 0.05


def test_permutation_p_equals_naive_loop(rng):
    human = rng.uniform(0, 5, size=(12, 4))
    model = human + rng.normal(size=human.shape)
    res = rsa(model, human, n_perm=50, seed=3)
    # oracle: same generator sequence, relabel concepts of the model RDM, recompute with scipy
    r = np.random.default_rng(3)
    a = pdist(_zscore_loop(model), "cosine")
    b = pdist(_zscore_loop(human), "cosine")
    from scipy.spatial.distance import squareform

    sq = squareform(a)
    hits = 0
    for _ in range(50):
        p = r.permutation(12)
        hits += stats.spearmanr(squareform(sq[np.ix_(p, p)], checks=False), b).statistic >= res.value - 1e-12
    assert res.p_perm == pytest.approx((hits + 1) / 51)


def test_bootstrap_ci_brackets_value_and_is_seeded(rng):
    human = rng.uniform(0, 5, size=(40, 5))
    model = human + rng.normal(size=human.shape)
    a = rsa(model, human, n_boot=40, seed=9)
    b = rsa(model, human, n_boot=40, seed=9)
    assert a.ci_low < a.value < a.ci_high
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)


def test_subsample_is_explicit_and_seeded(rng):
    human = rng.uniform(0, 5, size=(200, 5))
    model = human + rng.normal(size=human.shape)
    a = rsa(model, human, subsample=50, seed=4)
    assert a.n_concepts == 50 and a.n_dropped == 0
    assert a.value == rsa(model, human, subsample=50, seed=4).value


def test_large_n_refuses_permutations_without_subsample(rng):
    x = rng.normal(size=(60, 3))
    with pytest.raises(InputError, match="subsample"):
        rsa(x, x, n_perm=10, max_dense_pairs=10)
    with pytest.raises(InputError, match="tau-a"):
        rsa(x, x, RSARecipe("zscore", "cosine", "tau-a", "t"), max_dense_pairs=10)


def test_subsets_select_columns(rng):
    names = ["Auditory", "Gustatory", "Haptic", "Foot_leg", "Hand_arm", "Head"]
    human = rng.uniform(0, 5, size=(30, 6))
    model = human + rng.normal(size=human.shape)
    out = {name: res for name, _, res in rsa_by_subset(model, human, names)}
    assert set(out) == {"all", "sensory", "motor"}
    assert out["motor"].value == pytest.approx(rsa(model[:, 3:], human[:, 3:]).value)


@pytest.mark.parametrize("bad", [{"rdm": "cosin"}, {"compare": "spearmann"}, {"standardise": "z"}, {"rdmm": "cosine"}])
def test_bad_recipe_names_say_what_is_known(bad):
    with pytest.raises(InputError):
        rsa(np.ones((5, 2)), np.ones((5, 2)), bad)


def test_streaming_sequential_and_parallel_ranking_agree(rng, monkeypatch):
    """Large inputs rank one RDM after the other (12 bytes a pair); small ones on two
    threads. Both give the same exact Spearman."""
    from embodiment.metrics import streaming

    x = np.round(rng.normal(size=(120, 4)), 1)  # rounding makes tied distances
    y = x + rng.normal(scale=0.5, size=x.shape)
    parallel = rsa(x, y, max_dense_pairs=0).value
    monkeypatch.setattr(streaming, "PARALLEL_MEMORY", 0)
    sequential = rsa(x, y, max_dense_pairs=0).value
    dense = rsa(x, y).value
    assert parallel == pytest.approx(dense, abs=1e-12) and sequential == pytest.approx(dense, abs=1e-12)


@pytest.mark.timeout(120)  # the overflow this guards against loops forever
@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 23])
def test_streaming_ranks_exact_when_chunks_cut_through_tie_groups(rng, monkeypatch, chunk):
    """Sorted keys are ranked in chunks on two threads; a chunk end that falls inside a tie
    group (the largest distance included, whose next key would overflow) must move to the
    group's end. Integer ratings tie massively; scipy ranks the same RDMs whole."""
    from embodiment.metrics import streaming

    monkeypatch.setattr(streaming, "_CHUNK", chunk)
    # 100 concepts: 4,950 pairs take 13 index bits, so the value bits fill the key to bit 63
    human = rng.integers(0, 3, size=(100, 2)).astype(float)
    model = rng.integers(0, 3, size=(100, 2)).astype(float)
    for rdm in ("cityblock", "euclidean"):
        recipe = RSARecipe("none", rdm, "spearman", "t")
        ref = stats.spearmanr(pdist(model, rdm), pdist(human, rdm)).statistic
        assert rsa(model, human, recipe, max_dense_pairs=1).value == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 50, 1000, 300_000])
def test_average_ranks_equal_scipy_rankdata(rng, n):
    from embodiment.metrics.compare import average_ranks

    continuous = rng.normal(size=n)
    tied = rng.integers(0, 7, size=n).astype(float)
    with_nan = continuous.copy()
    with_nan[n // 2] = np.nan
    for x in (continuous, tied, with_nan, np.zeros(n), -np.arange(n, dtype=float)):
        np.testing.assert_array_equal(average_ranks(x), stats.rankdata(x))


def test_standardising_no_rows_gives_no_rows_and_no_warning():
    """A table whose rows were all dropped standardises to an empty table, silently (numpy's
    mean of an empty column would warn and give NaN)."""
    import warnings

    from embodiment.metrics.rdm import STANDARDISERS

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = STANDARDISERS["zscore"](np.empty((0, 3)))
    assert out.shape == (0, 3)
    x = np.array([[1.0, 2.0, 5.0], [3.0, 2.0, 1.0], [2.0, 2.0, 0.0]])
    np.testing.assert_allclose(STANDARDISERS["zscore"](x), np.nan_to_num(stats.zscore(x, ddof=1)))

"""`egrid report`: figures hold the tables' numbers, the page loads in a real browser,
partial runs are reported with what is missing."""

from __future__ import annotations

import json
import re
from html import unescape
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.spatial.distance import pdist, squareform

from embodiment.errors import InputError
from grid.cli import main
from grid.report import FigureOptions, build_report
from grid.results import ResultsStore


@pytest.fixture
def evaluation(tmp_path, ratings_table, capsys):
    path, norms, _, _ = ratings_table
    out = tmp_path / "eval"
    assert main(["evaluate-ratings", str(path), "--norms", str(norms), "--out", str(out), "--n-boot", "50"]) == 0
    capsys.readouterr()
    return out


def test_report_of_an_evaluation_draws_the_tables_numbers(evaluation, capsys, svg_texts):
    assert main(["report", str(evaluation), "--concepts", "12"]) == 0
    printed = capsys.readouterr().out
    report = evaluation / "report"
    metrics = pd.read_parquet(evaluation / "metrics.parquet")
    transfer = pd.read_parquet(evaluation / "transfer.parquet")

    # per-dimension Spearman: axis label, every dimension, every bar's value as its label
    texts = svg_texts(report / "figures" / "spearman_by_dimension.svg")
    assert "Spearman ρ (model vs human)" in texts and "dimension" in texts
    sp = metrics[metrics["metric"] == "spearman"]
    for dim in sp["dimension"].unique():
        assert dim in texts
    assert sorted(t for t in texts if re.fullmatch(r"-?\d\.\d\d", t)) == sorted(f"{v:.2f}" for v in sp["value"])
    assert {"sensory", "motor"} <= {t.split(": ")[-1] for t in texts}  # the two groups apart

    # transfer heatmap: one cell per (dimension), the delta with the Steiger stars of its p
    texts = svg_texts(report / "figures" / "transfer_matrix.svg")
    stars = lambda p: "***" if p < 1e-3 else "**" if p < 1e-2 else "*" if p < 0.05 else ""  # noqa: E731
    expected = sorted(f"{d:+.2f}{stars(p)}" for d, p in zip(transfer["delta"], transfer["p"]))
    assert sorted(t for t in texts if re.fullmatch(r"[+-]\d\.\d\d\**", t)) == expected
    assert "evaluation set · dimension" in texts and "Δ Spearman vs base" in texts

    # RSA by subset: all / sensory / motor for both conditions
    rsa = metrics[metrics["metric"] == "rsa"]
    texts = svg_texts(report / "figures" / "rsa_by_subset.svg")
    assert {"all", "sensory", "motor"} <= set(texts)
    assert sorted(t for t in texts if re.fullmatch(r"-?\d\.\d\d", t)) == sorted(f"{v:.2f}" for v in rsa["value"])

    # word-wise violins: the means of the table
    ww = pd.read_parquet(evaluation / "wordwise.parquet")
    texts = svg_texts(report / "figures" / "wordwise_similarity.svg")
    for cond, mean in ww.groupby("condition")["similarity"].mean().items():
        assert f"mean {mean:.3f}" in texts

    html = (report / "index.html").read_text(encoding="utf-8")
    for name in ("spearman_by_dimension", "rsa_by_subset", "transfer_matrix", "rdm_heatmaps", "wordwise_similarity"):
        assert (report / "figures" / f"{name}.png").stat().st_size > 5_000
        assert f'src="figures/{name}.png"' in html
    # an evaluation has no embeddings and no search: said, not silently dropped
    assert "RSA by layer" in html and "no hidden-state RSA rows" in html and "no trials recorded" in html
    provenance = json.loads((evaluation / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["command"].startswith("egrid ") and unescape(provenance["command"]) in unescape(
        html
    )  # the command
    assert "Per-dimension Spearman" in printed and str(report / "index.html") in printed


def test_rdm_heatmap_equals_scipy_on_the_chosen_concepts(evaluation):
    words = ["apple", "hammer", "music", "dog", "rain", "kick", "soup", "idea"]
    ratings = pd.read_parquet(evaluation / "ratings.parquet")
    present = [w for w in words if w in set(ratings["word"])]
    if len(present) < 3:
        present = sorted(ratings["word"].unique())[:6]
    report = build_report(evaluation, options=FigureOptions(concepts=present))
    figs = {f.name: f for f in _figures_of(report)}
    data = figs["rdm_heatmaps"].data
    human = ratings[ratings["condition"] == "base"].pivot_table(index="word", columns="dimension", values="human")
    z = (human - human.mean()) / human.std(ddof=1)  # z-scored over every concept, as in the RSA
    expected = squareform(pdist(z.loc[present].to_numpy(), "cosine"))
    got = data[data["label"] == "human"]
    for _, row in got.iterrows():
        i, j = present.index(row["concept_a"]), present.index(row["concept_b"])
        assert row["distance"] == pytest.approx(expected[i, j], abs=1e-10)
    assert len(got) == len(present) * (len(present) - 1) // 2


def _figures_of(report):
    from grid.report.figures import build_figures

    return build_figures(
        report.results, FigureOptions(concepts=sorted(report.results.table("ratings")["concept"].unique())[:6])
    )[0]


def test_partial_run_is_reported_with_what_is_missing(tmp_path, ratings_table, capsys):
    """A run stopped after its baseline: ratings only, status 'running'."""
    _, _, rows, _ = ratings_table
    run = tmp_path / "runs" / "partial-0123456789"
    store = ResultsStore(str(run))
    base = rows[(rows["condition"] == "base") & (rows["word"] != "notaword")]
    long = base.rename(columns={"word": "concept", "rating": "expected"}).assign(
        dimension=lambda f: f["dimension"].replace({"foot": "Foot_leg", "hand": "Hand_arm"}),
        human=np.linspace(0, 5, len(base)),
        trial_id="base",
        condition="base",
        language="en",
        model="m",
    )
    store.write(
        "ratings",
        "base:en",
        long[["concept", "dimension", "language", "expected", "human", "trial_id", "condition", "model"]].reset_index(
            drop=True
        ),
    )
    store.write_json("manifest.json", {"run_name": "partial-0123456789", "status": "running", "job": {}})
    before = sorted(p.relative_to(run) for p in run.rglob("*") if p.is_file())
    assert main(["report", str(run), "--concepts", "10"]) == 0
    printed = capsys.readouterr().out
    html = unescape((run / "report" / "index.html").read_text(encoding="utf-8"))
    assert "Incomplete" in html and "status is 'running'" in html and "table 'metrics': not written yet" in html
    assert (run / "report" / "figures" / "rdm_heatmaps.svg").exists()
    assert (run / "report" / "figures" / "wordwise_similarity.svg").exists()
    assert not (run / "report" / "figures" / "transfer_matrix.svg").exists()
    assert "Missing:" in printed and "not written yet" in printed
    # the report only adds files: the run's own are untouched
    after = sorted(p.relative_to(run) for p in run.rglob("*") if p.is_file() and "report" not in p.parts)
    assert after == before


def test_report_of_a_folder_without_results_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "holds no results" in err and "Traceback" not in err
    with pytest.raises(InputError, match="not a folder"):
        build_report(tmp_path / "nope")


@pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="needs Chromium: `make browser` (as root), or sudo apt-get install chromium",
)
def test_report_page_renders_in_headless_chromium(evaluation, tmp_path):
    from PIL import Image

    report = build_report(evaluation, options=FigureOptions(concepts=12))
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    url = report.index.resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    n = int(re.search(r'data-images="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    assert n == len(report.figures) >= 5 and loaded == n  # every figure decoded by the browser
    shot = tmp_path / "page.png"
    subprocess.run([*flags, "--window-size=1280,2000", f"--screenshot={shot}", url], capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (2000, 1280)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500  # figures drawn, not a blank page


def test_mcq_accuracy_figure_shows_accuracy_with_wilson_intervals(evaluation, svg_texts):
    """A run that evaluated the colour QA set has 'accuracy' rows; the figure draws them
    with Wilson intervals equal to scipy's."""
    from scipy.stats import binomtest

    metrics = pd.read_parquet(evaluation / "metrics.parquet")
    extra = pd.DataFrame(
        {
            "condition": ["base", "tuned"],
            "eval_set": "mcq",
            "metric": "accuracy",
            "subset": "all",
            "value": [10 / 40, 27 / 40],
            "n": [40, 40],
        }
    )
    pd.concat([metrics, extra], ignore_index=True).to_parquet(evaluation / "metrics.parquet")
    report = build_report(evaluation, options=FigureOptions(concepts=8))
    texts = svg_texts(report.figures["mcq_accuracy"][1])
    assert {"0.25", "0.68"} <= set(texts) and "accuracy (Wilson 95% CI)" in texts
    data = next(f for f in _figures_of(report) if f.name == "mcq_accuracy").data
    for row in data.itertuples():
        ci = binomtest(round(row.value * row.n), row.n).proportion_ci(method="wilson")
        assert (row.ci_low, row.ci_high) == (pytest.approx(ci.low, abs=1e-9), pytest.approx(ci.high, abs=1e-9))


def test_spread_keeps_order_and_gap_and_leaves_separate_labels_alone():
    from grid.report.figures import spread

    assert spread([0.1, 0.5, 0.9], 0.05) == [0.1, 0.5, 0.9]
    rng = np.random.default_rng(3)
    for _ in range(200):
        values = list(rng.uniform(0, 1, rng.integers(1, 7)))
        gap = float(rng.uniform(0.01, 0.2))
        heights = spread(values, gap)
        order = np.argsort(values, kind="stable")
        placed = np.asarray(heights)[order]
        assert np.all(np.diff(placed) >= gap - 1e-9)  # never closer than the gap, in the values' order
        # the closest such placement (least squares), as a general solver finds it
        v = np.asarray(values)[order]
        cons = [{"type": "ineq", "fun": lambda h, i=i: h[i + 1] - h[i] - gap} for i in range(len(v) - 1)]
        best = minimize(
            lambda h: ((h - v) ** 2).sum(),
            v + np.arange(len(v)) * gap,
            constraints=cons,
            method="SLSQP",
            options={"ftol": 1e-12, "maxiter": 500},
        ).x
        np.testing.assert_allclose(placed, best, atol=1e-5)


def test_rsa_by_layer_value_labels_never_overlap_where_curves_meet(evaluation):
    """Three conditions whose hidden-state RSA meet at layers 0 and 1: every value label is
    drawn, and labels at one layer are at least a font size apart in the SVG."""
    metrics = pd.read_parquet(evaluation / "metrics.parquet")
    conditions = [*dict.fromkeys(metrics["condition"]), "third"][:3]
    curves = {conditions[0]: [0.10, 0.20, 0.30], conditions[1]: [0.10, 0.21, 0.50], conditions[2]: [0.11, 0.20, 0.05]}
    rows = [
        {
            "condition": c,
            "eval_set": "en/embeddings",
            "metric": "rsa_hidden",
            "subset": "all",
            "layer": layer,
            "value": v,
            "n": 30,
        }
        for c, values in curves.items()
        for layer, v in enumerate(values)
    ]
    pd.concat([metrics, pd.DataFrame(rows)], ignore_index=True).to_parquet(evaluation / "metrics.parquet")
    report = build_report(evaluation, options=FigureOptions(concepts=8))
    svg = Path(report.figures["rsa_by_layer"][1]).read_text(encoding="utf-8")
    labels = [
        (float(x), float(y), text)
        for x, y, text in re.findall(
            r'<text style="font-size: 6px[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>([\d.]+)</text>', svg
        )
    ]
    wanted = sorted(f"{v:.2f}" for values in curves.values() for v in values)
    assert sorted(text for _, _, text in labels) == wanted
    by_x: dict[float, list[float]] = {}
    for x, y, _ in labels:
        by_x.setdefault(round(x, 1), []).append(y)
    assert len(by_x) == 3
    for ys in by_x.values():
        ys.sort()
        assert all(b - a >= 6.0 for a, b in zip(ys, ys[1:])), ys  # 6 px font: no two overlap

"""``egrid report``: the figures and tables a paper needs, from a run or evaluation folder.

from grid.report import build_report
report = build_report("egrid_runs/demo-9a13fe80d6")
print(report.index)   # .../report/index.html, figures/*.png and *.svg beside it
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from embodiment.errors import InputError
from embodiment.tables import atomic_path, write_text_atomic
from grid.report.figures import FIGURES, Figure, FigureOptions, build_figures
from grid.report.results import Results, load_results

__all__ = ["FIGURES", "FigureOptions", "Report", "build_report", "load_results", "summary_text"]


@dataclass
class Report:
    """What ``build_report`` wrote.

    Attributes:
        index: the HTML page.
        figures: figure name -> (png path, svg path).
        missing: what the folder lacks (empty when complete).
        results: the folder's normalised tables.
        best: the best trial per objective (empty for evaluation folders).
        objectives: base and each objective's best trial side by side on every held-out
            measure with CIs (:func:`grid.aggregate.objective_text`; empty unless the run
            searched more than one objective).
        differences: paired bootstrap differences between those models
            (:func:`grid.aggregate.differences_text`; empty likewise).
    """

    index: Path
    figures: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    results: Results | None = None
    best: pd.DataFrame = field(default_factory=pd.DataFrame)
    objectives: pd.DataFrame = field(default_factory=pd.DataFrame)
    differences: pd.DataFrame = field(default_factory=pd.DataFrame)


#: where the report of a run in object storage is written locally (it is also copied
#: into the run's own ``report/`` folder in the store)
REMOTE_REPORTS = "egrid_reports"


def _save(fig: Figure, folder: Path) -> tuple[Path, Path]:
    import matplotlib.pyplot as plt

    png, svg = folder / f"{fig.name}.png", folder / f"{fig.name}.svg"
    for path, kwargs in ((png, {"dpi": 130}), (svg, {"metadata": {"Date": None}})):
        with atomic_path(path) as tmp:
            fig.figure.savefig(tmp, format=path.suffix[1:], bbox_inches="tight", **kwargs)
    plt.close(fig.figure)
    return png, svg


def build_report(
    folder: str | os.PathLike,
    out: str | os.PathLike | None = None,
    options: FigureOptions | None = None,
    differences: pd.DataFrame | None = None,
) -> Report:
    """Write the HTML report and its PNG/SVG figures for a run or evaluate-ratings folder.

    Args:
        folder: a run folder (``egrid run`` prints it) or an ``egrid evaluate-ratings --out`` folder.
        out: where the report goes (default ``FOLDER/report``; for a run in object storage
            ``egrid_reports/<run name>`` here, copied to ``FOLDER/report`` in the store);
            only files in it are replaced.
        options: figure choices (concepts in the RDM heatmaps, seed).
        differences: the run's :func:`grid.aggregate.job_differences`, where the caller
            has them already (computed from the folder otherwise).

    Returns:
        The :class:`Report`: paths, what is missing, the best trials.

    Raises:
        InputError: the folder holds no results, or a table cannot be read.
    """
    from grid.objectives import (
        best_trials,
        differences_text,
        job_differences,
        objective_table,
        objective_text,
        seed_table,
        several_objectives,
    )
    from grid.report.page import render_page

    res = load_results(folder)
    remote = isinstance(res.root, str)  # a run in object storage: the report is written here, then copied there
    out = Path(out) if out is not None else (Path(REMOTE_REPORTS) / res.name if remote else res.root / "report")
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write the report here: {exc.strerror or exc}", source=out, key="--out") from None
    figures, missing = build_figures(res, options)
    saved = {fig.name: _save(fig, out / "figures") for fig in figures}
    trials = res.table("trials")
    best = best_trials(trials) if not trials.empty else pd.DataFrame()
    if not best.empty:
        best = best[[c for c in ("format", "condition", "trial_id", "eval_score", "config") if c in best]]
    objectives = (
        objective_text(objective_table(res.table("metrics"), trials)) if several_objectives(trials) else pd.DataFrame()
    )
    if differences is None:  # `egrid run` passes the ones its summary computed
        differences = job_differences(
            {t: res.table(t) for t in ("ratings", "choices", "trials")}, res.provenance.get("job")
        )
    differences = differences_text(differences)
    missing = res.missing + missing
    index = out / "index.html"
    seeds = seed_table(res.table("metrics"), trials) if not trials.empty else pd.DataFrame()
    write_text_atomic(render_page(res, figures, missing, best, objectives, differences, seeds), index)
    if remote:
        from grid.node_cache import publish_folder

        publish_folder(out, f"{res.root}/report")
    return Report(index, saved, missing, res, best, objectives, differences)


def summary_text(report: Report) -> str:
    """The terminal summary of a report: per-dimension Spearman, RSA, best trials, what is missing."""
    res = report.results
    lines = [f"{res.kind} {res.name}" + (f" ({res.provenance.get('status')})" if res.provenance.get("status") else "")]
    m = res.shown("metrics")
    fmt = lambda v: f"{v:6.3f}"  # noqa: E731
    if not m.empty:
        sp = m[m["metric"] == "spearman"]
        for es, part in sp.groupby("eval_set", sort=False):
            pivot = part.pivot_table(index="dimension", columns="label", values="value", sort=False, observed=True)
            lines += ["", f"Per-dimension Spearman, {es}:", pivot.to_string(float_format=fmt)]
        rs = m[m["metric"] == "rsa"]
        if not rs.empty:
            pivot = rs.pivot_table(
                index=["eval_set", "subset"], columns="label", values="value", sort=False, observed=True
            )
            lines += ["", "RSA:", pivot.to_string(float_format=fmt)]
    tr = res.shown("transfer")
    if not tr.empty:
        sig = (
            tr.assign(sig=tr["p"] < 0.05)
            .groupby(["label", "eval_set"], observed=True)
            .agg(mean_delta=("delta", "mean"), significant=("sig", "sum"), dimensions=("sig", "size"))
        )
        lines += [
            "",
            "Transfer against base (mean Δ Spearman; dimensions with Steiger p < .05):",
            sig.to_string(float_format=lambda v: f"{v:+.3f}"),
        ]
    if not report.best.empty:
        lines += [
            "",
            "Best trial per objective:",
            report.best.drop(columns=["config"], errors="ignore").to_string(
                index=False, float_format=lambda v: f"{v:.3f}"
            ),
        ]
    if not report.objectives.empty:
        lines += [
            "",
            "Best trial per objective on held-out concepts (95 % bootstrap CIs):",
            report.objectives.to_string(),
        ]
    if not report.differences.empty:
        lines += [
            "",
            "Paired differences (a - b, the same concepts / questions resampled together; * CI excludes 0):",
            report.differences.to_string(),
        ]
    if report.missing:
        lines += ["", "Missing:"] + [f"  - {m}" for m in report.missing]
    lines += [
        "",
        f"Report:  {report.index}",
        f"Figures: {report.index.parent / 'figures'} ({len(report.figures)} as PNG and SVG)",
    ]
    return "\n".join(lines)

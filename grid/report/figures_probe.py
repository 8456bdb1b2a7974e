"""The report's figure of the claim a fine-tuning result must make: is the fine-tuned
model's prompted rating beyond a linear read-out of the frozen base model?"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from grid.report.figures import PALETTE, Figure, FigureOptions, figure
from grid.report.results import Results

#: what the figure compares: (label, the trial's metric, the probe's metric, the difference's metric)
MEASURES = (
    ("mean Spearman", "mean_spearman", "probe_mean_spearman", "minus_probe_mean_spearman"),
    ("rating RSA", "rsa", "probe_rsa", "minus_probe_rsa"),
)


@figure("against_probe")
def against_probe(res: Results, opt: FigureOptions, missing: list) -> Figure | None:
    m = res.shown("metrics")
    diffs = m[m["metric"].isin([d for *_, d in MEASURES])] if not m.empty else m
    if diffs.empty:
        missing.append("against the probe: no minus_probe rows (a run with a base probe and a rating trial)")
        return None
    rows = []
    for label, metric, probe_metric, diff_metric in MEASURES:
        for d in diffs[diffs["metric"] == diff_metric].itertuples():
            part = m[(m["language"] == d.language) & (m["subset"].fillna("all") == "all")]
            base = part[
                (part["metric"] == metric) & (part["trial_id"] == "base") & part["eval_set"].str.endswith("/rating")
            ]
            tuned = part[
                (part["metric"] == metric) & (part["trial_id"] == d.trial_id) & part["eval_set"].str.endswith("/rating")
            ]
            probe = part[(part["metric"] == probe_metric) & (part["trial_id"] == "base") & (part["layer"] == d.layer)]
            for who, frame in (("base", base), (f"probe, layer {int(d.layer)}", probe), (str(d.label), tuned)):
                if len(frame):
                    r = frame.iloc[0]
                    rows.append(
                        {
                            "measure": label,
                            "language": d.language,
                            "model": who,
                            "value": r["value"],
                            "ci_low": r["ci_low"],
                            "ci_high": r["ci_high"],
                        }
                    )
            rows.append(
                {
                    "measure": label,
                    "language": d.language,
                    "model": f"{d.label} - probe",
                    "value": d.value,
                    "ci_low": d.ci_low,
                    "ci_high": d.ci_high,
                }
            )
    table = pd.DataFrame(rows).drop_duplicates(["measure", "language", "model"])
    panels = list(dict.fromkeys(zip(table["language"], table["measure"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (language, measure) in zip(axes[0], panels):
        part = table[(table["language"] == language) & (table["measure"] == measure)]
        x = np.arange(len(part))
        err = np.vstack([part["value"] - part["ci_low"], part["ci_high"] - part["value"]]).clip(0)
        colours = [PALETTE[0], PALETTE[2], PALETTE[1], PALETTE[3]][: len(part)]
        bars = ax.bar(x, part["value"], yerr=np.nan_to_num(err), capsize=2, color=colours, error_kw={"elinewidth": 0.8})
        ax.bar_label(
            bars,
            labels=[f"{v:+.2f}" if "-" in m else f"{v:.2f}" for v, m in zip(part["value"], part["model"])],
            fontsize=6,
            padding=1,
        )
        ax.set_xticks(x, part["model"], rotation=25, ha="right", fontsize=7)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_title(f"{language}: {measure}", fontsize=9)
    axes[0][0].set_ylabel("on held-out concepts (95 % CI)")
    fig.tight_layout()
    return Figure(
        "against_probe",
        "Fine-tuned against the frozen probe",
        "The base model, the ridge probe on its frozen hidden states (the layer of least cross-validated "
        "error on the training concepts), each fine-tuned trial's prompted ratings, and the trial minus the "
        "probe as a paired bootstrap difference on the same held-out concepts, each with its 95 % CI.",
        fig,
        table.reset_index(drop=True),
    )

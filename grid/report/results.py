"""Read a finished or partial results folder into one normalised view for the report.

Two kinds of folder are understood: a grid run (``manifest.json`` and Parquet datasets
under ``tables/``) and an ``egrid evaluate-ratings`` output (``metrics.parquet`` ...).
Both become the same frames, with a ``label`` column that names what a figure shows:
``base`` and, per fine-tuning condition, its best trial (all trials stay in ``trials``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from embodiment.errors import InputError
from grid.node_cache import is_uri

RUN_TABLES = ("trials", "metrics", "transfer", "ratings", "embeddings")
EVALUATION_TABLES = ("metrics", "transfer", "wordwise", "ratings")
BASE = "base"


@dataclass
class Results:
    """One results folder, normalised.

    Attributes:
        root: the folder (a local path, or the URI of a run in object storage).
        kind: ``run`` (a grid run) or ``evaluation`` (``egrid evaluate-ratings`` output).
        provenance: the run manifest, or the evaluation's provenance record (may be empty).
        tables: table name -> frame; absent tables are empty frames.
        labels: trial id (or condition) -> the label figures use, for what they show.
        missing: one line per thing a complete folder would have and this one lacks.
    """

    root: Path | str
    kind: str
    provenance: dict
    tables: dict[str, pd.DataFrame]
    labels: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.provenance.get("run_name") or str(self.root).rstrip("/").rsplit("/", 1)[-1])

    def table(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    def shown(self, name: str) -> pd.DataFrame:
        """Rows of a table for the labelled trials/conditions, with a ``label`` column, in label order."""
        frame = self.table(name)
        if frame.empty:
            return frame
        key = "trial_id" if "trial_id" in frame else "condition"
        out = frame[frame[key].isin(self.labels)].copy()
        out["label"] = pd.Categorical(
            out[key].map(self.labels), categories=list(dict.fromkeys(self.labels.values())), ordered=True
        )
        return out


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # a truncated or foreign file: say which, keep going with the rest
        raise InputError(f"cannot be read as Parquet: {type(exc).__name__}: {exc}", source=path) from None


def load_results(root: str | Path) -> Results:
    """Read a run folder or an evaluate-ratings folder.

    Raises:
        InputError: the folder does not exist or holds neither kind of results.
    """
    if is_uri(root):  # a run folder in object storage: read through its filesystem
        res = _load_remote_run(str(root).rstrip("/"))
        res.labels = _labels(res)
        return res
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder; give a run folder (egrid run) or an evaluate-ratings --out folder", source=root)
    if (root / "manifest.json").exists():
        res = _load_run(root)
    elif any((root / f"{t}.parquet").exists() for t in EVALUATION_TABLES):
        res = _load_evaluation(root)
    else:
        raise InputError(
            "holds no results: expected manifest.json and tables/ (a run folder) or metrics.parquet "
            "(an evaluate-ratings folder)",
            source=root,
        )
    res.labels = _labels(res)
    return res


def _load_run(root: Path) -> Results:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"is not valid JSON ({exc})", source=root / "manifest.json") from None
    tables = {}
    for name in RUN_TABLES:
        path = root / "tables" / name
        tables[name] = _read_parquet(path) if path.exists() and any(path.rglob("*.parquet")) else pd.DataFrame()
    return _run_results(root, manifest, tables)


def _load_remote_run(uri: str) -> Results:
    from grid.results import ResultsStore

    store = ResultsStore(uri)
    manifest = store.read_json("manifest.json")
    if manifest is None:
        raise InputError("holds no manifest.json: give the run folder `egrid run` printed", source=uri)
    return _run_results(uri, manifest, {name: store.read(name) for name in RUN_TABLES})


def _run_results(root: Path | str, manifest: dict, tables: dict[str, pd.DataFrame]) -> Results:
    """A run's Results from its manifest and tables, with what a finished run would have and it lacks."""
    missing = [f"table {name!r}: not written yet" for name in RUN_TABLES if tables[name].empty]
    status = manifest.get("status", "unknown")
    if status != "finished":
        missing.insert(0, f"the run's status is {status!r}, not 'finished': figures show what was written so far")
    expected = _expected_trials(manifest)
    recorded = len(tables["trials"])
    if expected is not None and recorded < expected:
        missing.append(f"{recorded} of {expected} trials recorded")
    return Results(root, "run", manifest, tables, missing=missing)


def _expected_trials(manifest: dict) -> int | None:
    try:
        from grid.spec import parse_job
        from grid.tuning import expected_trials

        return expected_trials(parse_job(manifest["job"], manifest.get("job_file", "<job>")))
    except Exception:  # an older or hand-edited manifest: the count is only a courtesy
        return None


def _load_evaluation(root: Path) -> Results:
    tables, missing = {}, []
    for name in EVALUATION_TABLES:
        path = root / f"{name}.parquet"
        tables[name] = _read_parquet(path) if path.exists() else pd.DataFrame()
        if tables[name].empty and name != "transfer":
            missing.append(f"table {name!r}: {path.name} not found")
    if tables["transfer"].empty:
        missing.append("no transfer table (one condition only, or no base condition)")
    ratings = tables["ratings"]
    if not ratings.empty:  # the joined long table: word, rating -> the run's names
        tables["ratings"] = ratings.rename(columns={"word": "concept", "rating": "expected"})
    prov_path = root / "provenance.json"
    provenance = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.exists() else {}
    if not provenance:
        missing.append("provenance.json not found (written by egrid evaluate-ratings from 0.1.0 on)")
    return Results(root, "evaluation", provenance, tables, missing=missing)


def _labels(res: Results) -> dict[str, str]:
    """What the condition figures show: base, then each condition's best configuration (by
    its seeds' mean validation score): its one trial, or, run with several training seeds,
    every seed's trial (``<condition> · seed <s>``), never one seed picked for its score."""
    if res.kind == "evaluation":
        conds = res.table("metrics")["condition"].dropna().unique().tolist() if not res.table("metrics").empty else []
        conds = sorted(conds, key=lambda c: (c != BASE, c))
        return {c: c for c in conds}
    trials, metrics = res.table("trials"), res.table("metrics")
    has_base = any(not frame.empty and (frame["trial_id"] == BASE).any() for frame in (metrics, res.table("ratings")))
    labels = {BASE: BASE} if has_base else {}
    if not trials.empty:
        scored = trials.assign(_score=trials["eval_score"].fillna(-np.inf) if "eval_score" in trials else 0.0)
        multi_model = scored["model"].nunique() > 1 if "model" in scored else False
        for (model, condition), group in scored.groupby(["model", "condition"], sort=True):
            name = f"{Path(str(model)).name} · {condition}" if multi_model else str(condition)
            chosen = _best_configuration(group)
            if len(chosen) == 1:
                labels[str(chosen["trial_id"].iloc[0])] = name
                continue
            for trial_id, seed in zip(chosen["trial_id"], chosen["seed"]):
                labels[str(trial_id)] = f"{name} · seed {seed}"
    return labels


def _best_configuration(group: pd.DataFrame) -> pd.DataFrame:
    """The trials (one per training seed, lowest seed first) of the configuration whose
    seeds' mean score is highest; a trial without a recorded configuration stands alone."""
    from grid.objectives import _configuration

    config = group["config"] if "config" in group else pd.Series(None, index=group.index, dtype=object)
    key = pd.Series(
        [_configuration(c) if isinstance(c, str) else f"trial {t}" for c, t in zip(config, group["trial_id"])],
        index=group.index,
    )
    best = group["_score"].groupby(key).mean().idxmax()
    chosen = group[key == best]
    return chosen.sort_values(["seed", "trial_id"]) if "seed" in chosen else chosen.iloc[:1]

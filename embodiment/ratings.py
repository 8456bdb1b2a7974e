"""Model ratings from elsewhere (an API model, another tool) as a long table, joined to norms.

The table has one row per (word, dimension, condition) with a rating; column names are
configurable. Words match the norms case-insensitively; dimensions match by name or by
the registry's short forms (foot -> Foot_leg).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from embodiment import dimensions as dims
from embodiment.errors import InputError, did_you_mean
from embodiment.norms import Norms, normalise_word
from embodiment.tables import numeric_column, read_table

DEFAULT_COLUMNS = {"word": "word", "dimension": "dimension", "condition": "condition", "rating": "rating"}


@dataclass
class JoinedRatings:
    """Model ratings per condition, aligned with the human norms.

    Attributes:
        words: matched concepts (norms spelling), the row order of every matrix.
        dimensions: norms dimension names, the column order.
        human: (n, d) human means.
        model: condition -> (n, d) model ratings, NaN where the table has none.
        unmatched: words of the table the norms do not have.
        long: the joined long table (condition, word, dimension, rating, human).
    """

    words: list[str]
    dimensions: list[str]
    human: np.ndarray
    model: dict[str, np.ndarray]
    unmatched: list[str] = field(default_factory=list)
    long: pd.DataFrame | None = None


def load_ratings(path: str | Path, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a long ratings table (CSV, TSV, XLSX or Parquet) and check its columns.

    Args:
        path: the file.
        columns: role -> column header, for roles ``word``, ``dimension``, ``condition``,
            ``rating``; a missing ``condition`` column means one condition called ``model``.

    Returns:
        A frame with the columns word, dimension, condition, rating (float64).
    """
    names = {**DEFAULT_COLUMNS, **(columns or {})}
    frame = read_table(path)
    if names["condition"] not in frame.columns and "condition" not in (columns or {}):
        frame[names["condition"]] = "model"
    for role, col in names.items():
        if col not in frame.columns:
            raise InputError(
                f"missing column for the {role}{did_you_mean(col, frame.columns)}; the file has: "
                f"{', '.join(map(str, frame.columns))} (rename with --{role}-column)",
                source=path,
                key=f"column {col!r}",
            )
    out = pd.DataFrame(
        {
            "word": frame[names["word"]].astype(str).str.strip(),
            "dimension": frame[names["dimension"]].astype(str).str.strip(),
            "condition": frame[names["condition"]].astype(str).str.strip(),
            "rating": numeric_column(frame, names["rating"], source=path, allow_empty=True),
        }
    )
    dup = out.assign(key=out["word"].map(normalise_word)).duplicated(["key", "dimension", "condition"], keep=False)
    if dup.any():
        ex = out[dup].head(3).to_dict("records")
        raise InputError(
            f"{int(dup.sum())} rows repeat a (word, dimension, condition), e.g. {ex}; each may appear once",
            source=path,
            key=f"column {names['word']!r}",
        )
    return out


def join_to_norms(ratings: pd.DataFrame, norms: Norms, *, source: object = None) -> JoinedRatings:
    """Align a long ratings table with the norms.

    Args:
        ratings: output of :func:`load_ratings`.
        norms: the human norms.
        source: the ratings file, for messages.

    Returns:
        :class:`JoinedRatings` over the words found in the norms and the dimensions named
        in the table, in norms order. Ratings off the norms' scale are rejected.
    """
    low, high = norms.scale
    off = (ratings["rating"] < low) | (ratings["rating"] > high)
    if off.any():
        row = ratings[off].iloc[0]
        raise InputError(
            f"{int(off.sum())} ratings off the norms' {low:g}-{high:g} scale, e.g. {row['word']!r} "
            f"{row['dimension']} = {row['rating']:g}",
            source=source,
            key="column 'rating'",
        )
    mapping = {name: dims.resolve(name, norms.dimensions, source=source) for name in ratings["dimension"].unique()}
    dim_names = [d for d in norms.dimensions if d in set(mapping.values())]
    rows = norms.index_of(ratings["word"].tolist())
    unmatched = sorted(set(ratings["word"][rows < 0]))
    found = ratings[rows >= 0].assign(row=rows[rows >= 0], dim=lambda f: f["dimension"].map(mapping))
    if found.empty:
        raise InputError(
            f"none of the {ratings['word'].nunique()} words is in the norms ({norms.source}), e.g. {unmatched[:5]}",
            source=source,
            key="column 'word'",
        )
    used = np.unique(found["row"].to_numpy())
    position = {r: i for i, r in enumerate(used)}
    words = [norms.words[r] for r in used]
    col = {d: norms.dimensions.index(d) for d in dim_names}
    human = norms.means[np.ix_(used, [col[d] for d in dim_names])]
    model = {}
    for condition, part in found.groupby("condition", sort=False):
        m = np.full((len(used), len(dim_names)), np.nan)
        m[part["row"].map(position).to_numpy(), part["dim"].map(dim_names.index).to_numpy()] = part["rating"].to_numpy()
        model[str(condition)] = m
    long = found.assign(
        word=[norms.words[r] for r in found["row"]],
        dimension=found["dim"],
        human=norms.means[found["row"].to_numpy(), found["dim"].map(col).to_numpy()],
    )
    return JoinedRatings(
        words, dim_names, human, model, unmatched, long[["condition", "word", "dimension", "rating", "human"]]
    )

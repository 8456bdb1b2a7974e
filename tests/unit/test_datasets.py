"""Named datasets (embodiment.datasets): the study's files fetched from an offline folder,
checked against their pinned sha256, converted once into the tables the loaders read; a
missing file or a wrong hash is one clear error; jobs name tables as ``wu2026:<table>``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embodiment import datasets
from embodiment.datasets import DATA_DIR_ENV, fetch, resolve, sha256_of
from embodiment.errors import InputError
from embodiment.norms import load_paired
from grid.cli import main as egrid
from grid.spec import SpecError, parse_job


@pytest.fixture
def study_files() -> Path:
    folder = os.environ.get(DATA_DIR_ENV)
    if not folder:
        pytest.skip(f"needs the study's files: set {DATA_DIR_ENV} (CI: ../shared/data/original)")
    return Path(folder)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EGRID_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "datasets" / "wu2026"


def test_pinned_hashes_are_the_published_files(study_files):
    for spec in datasets.get_dataset("wu2026").files:
        path = study_files / spec.name
        assert path.stat().st_size == spec.size and sha256_of(path) == spec.sha256, spec.name
        assert spec.url.endswith("/82cb67b/data/" + spec.name)


def test_fetch_converts_the_study_files_into_the_loaders_tables(study_files, empty_cache):
    lines: list[str] = []
    tables = fetch("wu2026", data_dir=study_files, say=lines.append)
    assert tables == empty_cache / "tables"
    assert "Licence: the study repository names none" in lines[-1] and "Lynott" in lines[-1]  # credits, first fetch
    readme = (empty_cache / "README.md").read_text(encoding="utf-8")
    assert "arXiv 2603.03313" in readme and "names none" in readme
    # the paired tables: every row and value of the published workbook, in order
    for table, workbook, rows in (
        ("train", "2_train_sensorimotor_random_sample.xlsx", 5436),
        ("test", "2_test_sensorimotor_random_sample.xlsx", 3625),
    ):
        published = pd.read_excel(study_files / workbook)
        en, nl = load_paired(resolve(f"wu2026:{table}"))
        assert len(en) == len(nl) == len(published) == rows
        assert en.words == [str(w).strip() for w in published["Word"]]
        assert nl.words == [str(w).strip() for w in published["Woord"]]
        np.testing.assert_array_equal(en.means, published[[f"{d}.mean" for d in en.dimensions]].to_numpy(float))
        np.testing.assert_array_equal(nl.means, published[list(nl.dimensions)].to_numpy(float))
        assert len(en.dimensions) == 11 and len(nl.dimensions) == 6
    # the colour questions: the published JSON, byte for byte
    assert (tables / "mcq_color_test.json").read_bytes() == (study_files / "test_40.json").read_bytes()
    assert len(json.loads(resolve("wu2026:mcq-train").read_text())) == 840
    # a second fetch converts nothing (the tables are there) and says nothing
    before = {p: p.stat().st_mtime_ns for p in tables.iterdir()}
    lines.clear()
    assert fetch("wu2026", data_dir=study_files, say=lines.append) == tables and not lines
    assert {p: p.stat().st_mtime_ns for p in tables.iterdir()} == before


def test_a_wrong_hash_or_a_missing_file_is_one_clear_error(study_files, empty_cache, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(study_files, folder)
    damaged = folder / "test_40.json"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    with pytest.raises(InputError) as err:
        fetch("wu2026", data_dir=folder, say=lambda _: None)
    message = str(err.value)
    assert str(damaged) in message and "test_40.json" in message and "does not match the pinned" in message
    assert not (empty_cache / "tables").exists()  # nothing half-converted
    damaged.unlink()
    with pytest.raises(InputError, match="test_40.json: missing from the data folder"):
        fetch("wu2026", data_dir=folder, say=lambda _: None)
    with pytest.raises(InputError, match=r"unknown dataset 'wu2025' \(did you mean 'wu2026'\?\)"):
        fetch("wu2025")
    with pytest.raises(InputError, match=r"has no table 'tran' \(did you mean 'train'"):
        resolve("wu2026:tran")


def test_cli_fetch_and_list(study_files, empty_cache, capsys):
    assert egrid(["data", "list"]) == 0
    assert "not fetched: egrid data fetch wu2026" in capsys.readouterr().out
    assert egrid(["data", "fetch", "wu2026", "--data-dir", str(study_files)]) == 0
    out = capsys.readouterr().out
    assert f"wu2026:train          {empty_cache / 'tables' / 'lancaster_dutch_train.csv'}" in out
    assert egrid(["data", "list"]) == 0 and "fetched: " in capsys.readouterr().out
    assert egrid(["data", "fetch", "wu2026", "--data-dir", str(empty_cache.parent)]) == 0  # cached: no folder needed
    assert egrid(["data", "fetch", "nope"]) == 2
    assert "egrid: error: dataset: unknown dataset 'nope'" in capsys.readouterr().err


def test_jobs_name_dataset_tables_and_validation_checks_the_name(study_files):
    job = {
        "name": "x",
        "models": ["m"],
        "norms": {"en": {"source": "wu2026:train", "test_source": "wu2026:test", "paired": True}},
        "mcq": {"train": "wu2026:mcq-train", "test": "wu2026:mcq-test"},
    }
    spec = parse_job(job, "job.yaml")
    assert spec.norms["en"].source == "wu2026:train" and spec.mcq["test"] == "wu2026:mcq-test"  # kept, resolved on read
    from grid.data import load_mcq, prepare_norms

    data = prepare_norms(spec.norms, 0)["en"]
    assert len(data.test) > 3000 and len(data.test.dimensions) == 11
    assert len(load_mcq(spec.mcq["test"])) == 560
    bad = {**job, "norms": {"en": {"source": "wu2026:trian", "paired": True}}, "mcq": {"train": "wu2025:mcq-train"}}
    with pytest.raises(SpecError) as err:
        parse_job(bad, "job.yaml")
    problems = err.value.problems
    assert any(
        p.startswith("norms.en.source: dataset wu2026 has no table 'trian' (did you mean 'train'") for p in problems
    )
    assert any(p.startswith("mcq.train: unknown dataset 'wu2025' (did you mean 'wu2026'?)") for p in problems)

"""Shared fixtures and the marker rules: unit tests need nothing, integration tests start
Ray or load the embedded real model, gpu tests are skipped without a CUDA device."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
# The study's files (the wu2026 dataset) are read through the dataset registry only; CI
# has them byte for byte beside the clone, so the registry is pointed there (offline).
STUDY_FILES = REPO.parent / "shared" / "data" / "original"
if STUDY_FILES.is_dir():
    os.environ.setdefault("EGRID_DATA_DIR", str(STUDY_FILES))


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU either way
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        path = str(item.fspath)
        if "/tests/unit/" in path:
            item.add_marker(pytest.mark.unit)
        elif "/tests/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/tests/gpu/" in path:
            item.add_marker(pytest.mark.gpu)
            if not has_gpu:
                item.add_marker(skip_gpu)


_SKIPPED_OFF_GPU: list[str] = []


def pytest_runtest_logreport(report):
    # skips outside tests/gpu: CI (EGRID_NO_SKIPS=1, set by .ci/run) fails on any of them,
    # so a test that silently stopped running (a missing package, browser, data) shows
    if report.skipped and "tests/gpu/" not in report.nodeid.replace("\\", "/"):
        _SKIPPED_OFF_GPU.append(f"{report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else ''}")


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("EGRID_NO_SKIPS") == "1" and _SKIPPED_OFF_GPU and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("EGRID_NO_SKIPS") == "1" and _SKIPPED_OFF_GPU:
        terminalreporter.write_line(
            f"EGRID_NO_SKIPS: {len(_SKIPPED_OFF_GPU)} test(s) outside tests/gpu skipped "
            "(only GPU tests may skip in CI):",
            red=True,
        )
        for line in _SKIPPED_OFF_GPU:
            terminalreporter.write_line(f"  {line}", red=True)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def wu2026_tables() -> Path:
    """The study's tables (lancaster_dutch_{train,test}.csv, mcq_color_{train,test}.json, ...),
    fetched through the registry from $EGRID_DATA_DIR."""
    from embodiment.datasets import DATA_DIR_ENV, cache_dir, fetch

    if not os.environ.get(DATA_DIR_ENV) and not (cache_dir("wu2026") / "tables").is_dir():
        pytest.skip(
            f"the study's files: set {DATA_DIR_ENV} to a folder holding them, or egrid data fetch wu2026 "
            f"(CI clones the repo with ../shared beside it)"
        )
    return fetch("wu2026")


@pytest.fixture(scope="session")
def svg_texts():
    """Every text element of an SVG figure (the report keeps text as text: svg.fonttype none)."""
    from xml.etree import ElementTree

    def texts(path) -> list[str]:
        root = ElementTree.parse(path).getroot()
        return ["".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("text")]

    return texts


class SmallDisk:
    """A 16 MiB tmpfs that a test fills up, frees, and turns read-only and back."""

    def __init__(self, path: Path):
        self.path = path

    def _remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True, capture_output=True)

    def fill(self) -> None:
        """Write a ballast file until not one more byte fits."""
        with open(self.path / ".ballast", "wb", buffering=0) as f:
            for chunk in (1 << 20, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass

    def free(self) -> None:
        (self.path / ".ballast").unlink()

    def read_only(self) -> None:
        self._remount("ro")

    def writable(self) -> None:
        self._remount("rw")


@pytest.fixture
def small_disk(tmp_path):
    """A :class:`SmallDisk`, or None where this user may not mount (tests then use plain
    folders and skip what needs a real full or read-only filesystem)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        yield None
        return
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)

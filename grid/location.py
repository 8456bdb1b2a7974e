"""Where a run lives: a local folder or a pyarrow-filesystem URI (``s3://``, ``gs://`` ...).

One type answers what the grid asks of a location — is it remote, its absolute form, a
path inside it, whether it exists — instead of ``"://" in path`` tests spread around.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLocation:
    """A run folder (or any folder the grid writes): local path or URI.

    Attributes:
        path: as given; local paths are made absolute by :meth:`of`.
    """

    path: str

    @classmethod
    def of(cls, path: str | Path) -> "RunLocation":
        """The location of ``path``: a URI as it is, a local path absolute."""
        text = str(path)
        return cls(text if "://" in text else str(Path(text).resolve()))

    @property
    def remote(self) -> bool:
        """Whether it is a URI (not a local folder)."""
        return "://" in self.path

    def child(self, *parts: str) -> str:
        """A path inside it, in its own form (``/`` joins URIs and local paths alike)."""
        return "/".join([self.path.rstrip("/"), *parts])

    def exists(self, *parts: str) -> bool:
        """Whether a path inside it exists (a URI's through its pyarrow filesystem)."""
        if not self.remote:
            return Path(self.child(*parts)).exists()
        import pyarrow.fs as pafs

        fs, base = pafs.FileSystem.from_uri(self.child(*parts).rstrip("/"))
        return fs.get_file_info(base).type != pafs.FileType.NotFound

    def __str__(self) -> str:
        return self.path

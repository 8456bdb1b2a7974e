"""Folders in object storage, brought to the node that needs them.

On a cluster a trial's adapter is written on one node and scored on others, and a model
may live in the store (``model: s3://bucket/models/x/``) rather than on any node's disk.
Everything a process reads from storage goes through :func:`local_copy`: a local path is
returned as it is; a URI (``s3://``, ``gs://`` ... anything pyarrow reaches, credentials
from the cloud's own environment and config) is copied once into this node's cache
(``$EGRID_CACHE/store``) and checked against the store's listing (every file, its size)
each time it is asked for, so a folder changed in the store is fetched again and a copy
cut short is never used. :func:`publish_folder` writes a local folder to a path of either
kind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

from embodiment.cache import cache_root
from embodiment.errors import InputError
from grid.location import RunLocation

#: the record of what a cached copy holds (the source URI and each file's size)
RECORD = ".egrid-source.json"


def is_uri(path: str | os.PathLike) -> bool:
    """Whether ``path`` names object storage (or any filesystem URI) rather than a local path."""
    return RunLocation(str(path)).remote


def _listing(fs: pafs.FileSystem, base: str) -> dict[str, int]:
    """Relative path -> size of every file under ``base`` (a single file: its own name)."""
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.File:
        return {base.rsplit("/", 1)[-1]: info.size}
    if info.type != pafs.FileType.Directory:
        return {}
    files = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    return {f.path[len(base) :].lstrip("/"): f.size for f in files if f.type == pafs.FileType.File}


def _cache_dir(uri: str, variant: str = "") -> Path:
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "root"
    key = hashlib.sha256(f"{uri.rstrip('/')}{variant}".encode()).hexdigest()[:16]
    return cache_root() / "store" / f"{name}{variant}-{key}"


def _matches(folder: Path, uri: str, listing: dict[str, int]) -> bool:
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("uri") != uri or record.get("files") != listing:
        return False
    return all((folder / rel).is_file() and (folder / rel).stat().st_size == size for rel, size in listing.items())


def local_copy(path: str | os.PathLike, *, max_file_bytes: int | None = None) -> str:
    """A local path for ``path``: itself if local, else this node's checked copy of it.

    A URI naming a folder gives the cached folder; naming a file, the cached file.

    Args:
        path: a local path or a storage URI.
        max_file_bytes: copy only the files of at most this size (a model's config and
            tokenizer without its weights); such a partial copy is cached apart from the
            whole one.

    Raises:
        InputError: the URI names nothing in the store, or the copy came out short.
    """
    text = str(path)
    if not is_uri(text):
        return text
    uri = text.rstrip("/")
    fs, base = pafs.FileSystem.from_uri(uri)
    listing = _listing(fs, base)
    variant = ""
    if max_file_bytes is not None:
        listing = {rel: size for rel, size in listing.items() if size <= max_file_bytes}
        variant = f"-upto{max_file_bytes}"
    if not listing:
        raise InputError("nothing found at this storage URI (expected a folder or a file)", source=uri)
    single = fs.get_file_info(base).type == pafs.FileType.File
    target = _cache_dir(uri, variant)
    if not _matches(target, uri, listing):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            for rel in listing:
                source = base if single else f"{base}/{rel}"
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                with fs.open_input_stream(source) as src, open(staging / rel, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=8 << 20)
            (staging / RECORD).write_text(json.dumps({"uri": uri, "files": listing}), encoding="utf-8")
            if not _matches(staging, uri, listing):
                raise InputError("the copy from storage is incomplete (file sizes differ from the store's)", source=uri)
            # another process of this node may have finished the same copy first: either is whole
            aside = target.with_name(f".{target.name}-old-{os.getpid()}")
            if target.exists():
                target.rename(aside)
            try:
                staging.rename(target)
            except OSError:
                if not _matches(target, uri, listing):
                    raise
            shutil.rmtree(aside, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return str(target / next(iter(listing))) if single else str(target)


def publish_folder(local: str | os.PathLike, dest: str) -> None:
    """Make ``dest`` (a local path or URI) hold exactly the files of the local folder ``local``."""
    if not is_uri(dest):
        if Path(dest).exists():
            shutil.rmtree(dest)
        shutil.copytree(local, dest)
        return
    fs, base = pafs.FileSystem.from_uri(dest.rstrip("/"))
    if fs.get_file_info(base).type == pafs.FileType.Directory:
        fs.delete_dir_contents(base)
    fs.create_dir(base, recursive=True)
    pafs.copy_files(
        str(Path(local).resolve()), base, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
    )

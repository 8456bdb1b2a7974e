"""Storage that fills up or turns read-only mid-run: stop cleanly, resume once it is back.

A full disk hurts a grid twice. Work goes on that can no longer be saved (Ray Train and
Tune retry the failing trial again and again), and the state files Tune and Train rewrite
in place -- Tune's experiment and search state, Train's checkpoint snapshot -- are left
truncated, so the run could not be resumed from them. So:

* :class:`StorageGuard` (a Tune callback on the driver) writes a small probe file into the
  run folder every few seconds; when that fails with a storage error it stops the run by
  raising :class:`StorageError`, which the CLI prints as one line ending in the
  ``egrid resume`` command. While the probes succeed it keeps a copy of those state files,
  taken only when every one of them is whole.
* :func:`repair_state` runs before a resume: damaged state files are set aside in
  ``.egrid-damaged/`` and the last whole copy is put back. The tables need nothing: their
  files are written to a temporary name and moved into place, so they are whole or absent.
"""

from __future__ import annotations

import errno
import json
import pickletools
import time
import uuid
from pathlib import PurePosixPath

import pyarrow.fs as pafs

from embodiment.errors import StorageError
from grid.internals import TRAIN_SNAPSHOT_FILE, is_tune_state_file, trial_storage
from grid.results import _filesystem

# errno values that mean "the storage cannot take writes", as opposed to a bug or bad input.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
PROBE_BYTES = 64 * 1024
BACKUP = ".egrid-good"
DAMAGED = ".egrid-damaged"


def storage_errno(exc: BaseException) -> int | None:
    """The storage errno behind ``exc`` (its causes and context included), else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    return None


def _located(run_dir: str, fs: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of ``run_dir``: as given when ``fs`` is known, else resolved."""
    return (fs, run_dir.rstrip("/")) if fs is not None else _filesystem(run_dir)


def probe(run_dir: str, nbytes: int = PROBE_BYTES, *, fs: pafs.FileSystem | None = None) -> OSError | None:
    """Write and remove ``nbytes`` in ``run_dir``; the storage error if that fails, else None.

    Args:
        run_dir: a local path or URI (or a path inside ``fs``).
        nbytes: probe size; a disk with less room than this counts as full.
        fs: the filesystem ``run_dir`` is in, when known (Tune's storage filesystem).
    """
    fs, base = _located(run_dir, fs)
    path = f"{base}/.egrid-probe-{uuid.uuid4().hex}"
    try:
        fs.create_dir(base, recursive=True)
        with fs.open_output_stream(path) as sink:
            sink.write(b"\0" * nbytes)
    except OSError as exc:
        return exc if storage_errno(exc) else None
    finally:
        try:
            fs.delete_file(path)
        except OSError:
            pass
    return None


def _whole(fs: pafs.FileSystem, path: str) -> bool:
    """True when a state file reads back complete: JSON that parses, or a pickle whose
    opcodes run to the STOP opcode (walked with pickletools, nothing is unpickled)."""
    try:
        with fs.open_input_stream(path) as src:
            data = src.read()
    except OSError:
        return False
    if not data:
        return False
    if not data.startswith(b"\x80"):  # no pickle PROTO opcode: JSON (Tune pickles some '.json' files)
        try:
            json.loads(data.decode("utf-8"))
        except ValueError:
            return False
        return True
    try:
        return any(op.name == "STOP" for op, _, _ in pickletools.genops(data))
    except Exception:  # a truncated stream raises ValueError or struct errors midway
        return False


def state_files(fs: pafs.FileSystem, base: str) -> list[str]:
    """The in-place state files of a run, relative to the run folder: Tune's experiment,
    search and tuner state, and each Train run's checkpoint snapshot."""
    out = []
    tune_dir = f"{base}/tune"
    for info in fs.get_file_info(pafs.FileSelector(tune_dir, allow_not_found=True)):
        name = info.base_name
        if info.type == pafs.FileType.File and is_tune_state_file(name):
            out.append(f"tune/{name}")
    for info in fs.get_file_info(pafs.FileSelector(f"{base}/train", allow_not_found=True)):
        if info.type == pafs.FileType.Directory:
            snapshot = f"{info.path}/{TRAIN_SNAPSHOT_FILE}"
            if fs.get_file_info(snapshot).type == pafs.FileType.File:
                out.append(f"train/{info.base_name}/{TRAIN_SNAPSHOT_FILE}")
    return sorted(out)


def moves_folders(fs: pafs.FileSystem) -> bool:
    """Whether ``fs`` renames a folder in one step (local disks, NFS, HDFS).

    Object stores (S3, GCS, Azure) do not, and need no copies: an object is replaced whole
    by each PUT, so a full store never leaves a state file truncated.
    """
    return isinstance(fs, pafs.LocalFileSystem) or fs.type_name in ("local", "hdfs", "mock")


def backup_state(run_dir: str, *, fs: pafs.FileSystem | None = None) -> bool:
    """Copy the run's state files to ``.egrid-good/`` when all of them are whole (on a
    filesystem that :func:`moves_folders`; elsewhere there is nothing to guard against).

    Returns:
        True when a new copy was taken.
    """
    fs, base = _located(run_dir, fs)
    if not moves_folders(fs):
        return False
    files = state_files(fs, base)
    if not files or not all(_whole(fs, f"{base}/{f}") for f in files):
        return False
    staging = f"{base}/{BACKUP}.{uuid.uuid4().hex}.tmp"
    try:
        for rel in files:
            fs.create_dir(f"{staging}/{PurePosixPath(rel).parent}", recursive=True)
            fs.copy_file(f"{base}/{rel}", f"{staging}/{rel}")
        if not all(_whole(fs, f"{staging}/{f}") for f in files):  # changed while being copied
            return False
        old = f"{base}/{BACKUP}.old"
        if fs.get_file_info(f"{base}/{BACKUP}").type == pafs.FileType.Directory:
            fs.delete_dir_contents(old, missing_dir_ok=True)
            fs.move(f"{base}/{BACKUP}", old)
        fs.move(staging, f"{base}/{BACKUP}")
        return True
    finally:
        try:
            fs.delete_dir(staging)
        except OSError:
            pass


def repair_state(run_dir: str) -> list[str]:
    """Put back the last whole copy of any state file a full disk left damaged.

    Damaged files are moved to ``.egrid-damaged/<time>/``, never deleted. Tune's files are
    one set (trial list, search progress): if one is damaged all are replaced by the copy,
    or a newer search state would skip trials an older trial list never held. Without a
    whole copy the set is only moved aside, and Tune starts its trial list again; a Train
    snapshot without a copy is moved aside and that trial trains again from step 0.

    Returns:
        The state files (relative to the run folder) that were replaced or set aside.
    """
    fs, base = _filesystem(run_dir)
    files = state_files(fs, base)
    damaged = [f for f in files if not _whole(fs, f"{base}/{f}")]
    if not damaged:
        return []
    backup = next(
        (
            b
            for b in (f"{base}/{BACKUP}", f"{base}/{BACKUP}.old")
            if fs.get_file_info(b).type == pafs.FileType.Directory
        ),
        None,
    )
    saved = set(state_files(fs, backup)) if backup else set()
    tune_damaged = any(f.startswith("tune/") for f in damaged)
    moves = sorted({*damaged, *(f for f in files if tune_damaged and f.startswith("tune/"))})
    aside = f"{base}/{DAMAGED}/{time.strftime('%Y%m%d-%H%M%S')}"
    for rel in moves:
        fs.create_dir(str(PurePosixPath(f"{aside}/{rel}").parent), recursive=True)
        fs.move(f"{base}/{rel}", f"{aside}/{rel}")
    restore = [f for f in saved if (tune_damaged and f.startswith("tune/")) or f in damaged]
    for rel in restore:
        fs.copy_file(f"{backup}/{rel}", f"{base}/{rel}")
    return moves


def storage_guard(run_dir: str, interval_s: float = 2.0):
    """A Tune callback that stops the run with :class:`StorageError` once the run folder
    cannot be written, and keeps a whole copy of the state files while it can."""
    from ray import tune

    class StorageGuard(tune.Callback):
        def __init__(self):
            self.last = 0.0
            self.copied: tuple = ()  # (path, size, mtime) of the files last copied

        def on_step_end(self, iteration, trials, **info):
            now = time.monotonic()
            if now - self.last < interval_s:
                return
            self.last = now
            # A restored Tuner brings this callback back from its pickle: the trials know
            # where the run folder is now, even if it was moved since.
            if trials:
                fs, base = _located(*trial_storage(trials[0]))
            else:
                fs, base = _located(run_dir, None)
            failure = probe(base, fs=fs)
            if failure is not None:
                raise StorageError(base if trials else run_dir, failure)
            infos = fs.get_file_info([f"{base}/{f}" for f in state_files(fs, base)])
            state = tuple((i.path, i.size, i.mtime_ns) for i in infos)
            if state != self.copied and backup_state(base, fs=fs):  # copy only when something changed
                self.copied = state

    return StorageGuard()

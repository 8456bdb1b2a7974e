"""The storage guard: probes that tell a full or read-only disk from a working one, whole
copies of Tune/Train state files, and their repair after a disk filled up mid-write."""

from __future__ import annotations

import errno
import json
import pickle

import pytest

from embodiment.errors import StorageError
from grid.storage_guard import BACKUP, DAMAGED, backup_state, probe, repair_state, storage_errno


def _fake_run(root, stamp="2026-01-01_00-00-00"):
    """The state files Ray 2.60 keeps in a run folder: Tune's experiment state (JSON), its
    search state (a pickle despite its '.json' name), tuner.pkl, a Train snapshot."""
    files = {
        f"tune/experiment_state-{stamp}.json": json.dumps({"trial_data": [["{}", "{}"]], "stamp": stamp}).encode(),
        f"tune/basic-variant-state-{stamp}.json": pickle.dumps({"_iterators": [1, 2, 3], "counter": 2}),
        "tune/tuner.pkl": pickle.dumps({"param_space": {"learning_rate": 1e-3}}),
        "train/train-a_00000/checkpoint_manager_snapshot.json": json.dumps({"checkpoints": ["checkpoint_1"]}).encode(),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "tune" / "trial_a_00000").mkdir(exist_ok=True)  # trial folders are not state files
    return files


def test_probe_passes_on_a_writable_folder_and_leaves_nothing(tmp_path):
    assert probe(str(tmp_path)) is None
    assert list(tmp_path.iterdir()) == []


def test_probe_reports_a_full_and_a_read_only_disk(small_disk):
    if small_disk is None:
        pytest.skip("this user may not mount a small disk")
    run = small_disk.path / "run"
    run.mkdir()
    small_disk.fill()
    full = probe(str(run))
    small_disk.free()
    assert probe(str(run)) is None
    small_disk.read_only()
    try:
        read_only = probe(str(run))
    finally:
        small_disk.writable()
    assert full is not None and full.errno == errno.ENOSPC
    assert read_only is not None and read_only.errno == errno.EROFS
    message = str(StorageError(str(run), full))
    assert "No space left on device" in message and f"egrid resume {run}" in message


def test_storage_errno_is_found_through_causes():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("trial failed") from inner
    except RuntimeError as outer:
        assert storage_errno(outer) == errno.ENOSPC
    assert storage_errno(ValueError("bad input")) is None
    assert storage_errno(FileNotFoundError(errno.ENOENT, "missing")) is None  # not a storage fault


def test_damaged_state_is_set_aside_and_the_whole_copy_put_back(tmp_path):
    files = _fake_run(tmp_path)
    assert backup_state(str(tmp_path))
    # the disk fills up while Tune rewrites its files in place: one truncated, one emptied
    exp, variant = (tmp_path / f for f in list(files)[:2])
    exp.write_bytes(files[list(files)[0]][:10])
    variant.write_bytes(b"")
    # ...and a later session's state file, newer but damaged, must not be the one Tune picks
    later = tmp_path / "tune" / "experiment_state-2026-02-02_00-00-00.json"
    later.write_bytes(b'{"trial_data": [["{')

    moved = repair_state(str(tmp_path))

    assert set(moved) == {*(f for f in files if f.startswith("tune/")), "tune/" + later.name}
    for rel, data in files.items():
        assert (tmp_path / rel).read_bytes() == data
    assert not later.exists()
    aside = next((tmp_path / DAMAGED).iterdir())
    assert (aside / "tune" / later.name).read_bytes() == b'{"trial_data": [["{'
    assert (aside / list(files)[1]).read_bytes() == b""
    assert repair_state(str(tmp_path)) == []  # whole now: nothing more to do


def test_backup_keeps_the_last_whole_copy_while_a_file_is_damaged(tmp_path):
    files = _fake_run(tmp_path)
    assert backup_state(str(tmp_path))
    pkl = tmp_path / "tune" / "tuner.pkl"
    pkl.write_bytes(files["tune/tuner.pkl"][:-5])  # a pickle cut before its STOP opcode
    assert not backup_state(str(tmp_path))
    assert (tmp_path / BACKUP / "tune" / "tuner.pkl").read_bytes() == files["tune/tuner.pkl"]


def test_a_damaged_train_snapshot_without_a_copy_is_only_set_aside(tmp_path):
    files = _fake_run(tmp_path)
    snapshot = tmp_path / "train" / "train-a_00000" / "checkpoint_manager_snapshot.json"
    snapshot.write_bytes(b'{"checkpoints": [')
    moved = repair_state(str(tmp_path))
    assert moved == ["train/train-a_00000/checkpoint_manager_snapshot.json"]
    assert not snapshot.exists()  # Train then starts that trial from step 0
    for rel, data in files.items():
        if rel.startswith("tune/"):
            assert (tmp_path / rel).read_bytes() == data  # whole Tune files are left alone

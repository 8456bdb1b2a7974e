"""Fuzzed norms files and ratings tables through ``egrid evaluate-ratings``: every case ends
with exit 0 or with exit 2 and one ``egrid: error:`` line naming the file; never a
traceback, and never a half-written table in the output folder."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from grid.cli import main

DIMS = ["Auditory", "Gustatory", "Haptic", "Interoceptive", "Olfactory", "Visual"]
WORDS = ["apple", "thunder", "idea", "rose", "stone", "soup", "bell", "grass", "honey", "smoke", "velvet", "lemon"]
_counter = itertools.count()

cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-10, 10),
    st.text(max_size=6),
    st.just(""),
    st.sampled_from(["nan", "NA", "3,5", "1e999", "∞", "\x00"]),
)
header_noise = st.sampled_from(
    ["", "Word ", "word", "Auditory.meen", "Visual.mean", "Visual.mean", "Ünïcode", "Foot_leg.mean"]
)


def _good_norms() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Word": [w.upper() for w in WORDS],
            **{f"{d}.mean": [1.0 + (i * 7 + j) % 4 for i in range(len(WORDS))] for j, d in enumerate(DIMS)},
        }
    )


def _good_ratings() -> pd.DataFrame:
    rows = [
        {"word": w, "dimension": d, "condition": c, "rating": 1.0 + (i + j) % 4 + (0.5 if c == "tuned" else 0)}
        for c in ("base", "tuned")
        for i, w in enumerate(WORDS)
        for j, d in enumerate(DIMS)
    ]
    return pd.DataFrame(rows)


@st.composite
def mutated(draw, frame_fn):
    frame = frame_fn().astype(object)
    for _ in range(draw(st.integers(0, 4))):
        what = draw(st.sampled_from(["cell", "drop_col", "rename_col", "dup_row", "drop_rows", "add_col"]))
        if what == "cell" and len(frame):
            frame.iat[draw(st.integers(0, len(frame) - 1)), draw(st.integers(0, frame.shape[1] - 1))] = draw(cell)
        elif what == "drop_col" and frame.shape[1] > 1:
            frame = frame.drop(columns=frame.columns[draw(st.integers(0, frame.shape[1] - 1))])
        elif what == "rename_col" and frame.shape[1]:
            i = draw(st.integers(0, frame.shape[1] - 1))
            frame.columns = [draw(header_noise) if k == i else c for k, c in enumerate(frame.columns)]
        elif what == "dup_row" and len(frame):
            frame = pd.concat([frame, frame.iloc[[draw(st.integers(0, len(frame) - 1))]]], ignore_index=True)
        elif what == "drop_rows":
            frame = frame.iloc[: draw(st.integers(0, len(frame)))]
        elif what == "add_col":
            frame[draw(header_noise) or "extra"] = draw(cell)
        frame = frame.astype(object)  # any cell may take any value next
    return frame


def _write(frame: pd.DataFrame, path, how: str) -> None:
    if how == "csv":
        frame.to_csv(path, index=False)
    elif how == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff" + frame.to_csv(index=False).encode("utf-16"))
    elif how == "empty":
        path.write_bytes(b"")
    else:  # latin-1 bytes where UTF-8 is expected
        path.write_bytes(frame.to_csv(index=False).encode("utf-8") + "Ångström,1\n".encode("latin-1"))


def _compress(path, ending: str):
    """Compress ``path`` in place of ``path + ending`` (an empty file stays empty: a broken archive)."""
    import bz2
    import gzip
    import lzma

    import zstandard

    packers = {
        ".gz": gzip.compress,
        ".bz2": bz2.compress,
        ".xz": lzma.compress,
        ".zst": lambda b: zstandard.ZstdCompressor().compress(b),
    }
    data = path.read_bytes()
    target = path.with_name(path.name + ending)
    target.write_bytes(packers[ending](data) if data else b"")
    path.unlink()
    return target


def _run_case(
    tmp, norms: pd.DataFrame, norms_how: str, ratings: pd.DataFrame, ratings_how: str, capsys, compression: str = ""
) -> None:
    case = tmp / f"case{next(_counter)}"
    case.mkdir()
    npath, rpath, out = case / "norms.csv", case / "ratings.csv", case / "out"
    _write(norms, npath, norms_how)
    _write(ratings, rpath, ratings_how)
    if compression:
        npath, rpath = _compress(npath, compression), _compress(rpath, compression)
    code = main(["evaluate-ratings", str(rpath), "--norms", str(npath), "--out", str(out), "--n-boot", "0"])
    captured = capsys.readouterr()
    if currently_in_test_context():
        event(f"exit {code}")  # pytest --hypothesis-show-statistics: both outcomes are drawn
    assert code in (0, 2)
    assert "Traceback" not in captured.err
    if code == 2:
        errors = [line for line in captured.err.splitlines() if line.startswith("egrid: error:")]
        assert len(errors) == 1 and (str(npath) in errors[0] or str(rpath) in errors[0] or "--" in errors[0]), (
            captured.err
        )
        assert not out.exists() or not any(out.glob("*.parquet"))  # nothing half-done left behind
    else:
        for table in out.glob("*.parquet"):
            assert len(pd.read_parquet(table)) > 0
    assert not any(p.name.startswith(".") for p in case.rglob("*"))  # no temp files left behind


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(norms=mutated(_good_norms), how=st.sampled_from(["csv"] * 6 + ["garbage", "empty", "latin1"]))
def test_fuzzed_norms_files(tmp_path_factory, capsys, norms, how):
    _run_case(tmp_path_factory.mktemp("norms"), norms, how, _good_ratings(), "csv", capsys)


@FUZZ
@given(
    ratings=mutated(_good_ratings),
    how=st.sampled_from(["csv"] * 6 + ["garbage", "empty", "latin1"]),
    compression=st.sampled_from(["", "", ".gz", ".bz2", ".xz", ".zst"]),
)
def test_fuzzed_ratings_tables(tmp_path_factory, capsys, ratings, how, compression):
    _run_case(tmp_path_factory.mktemp("ratings"), _good_norms(), "csv", ratings, how, capsys, compression)


@pytest.mark.parametrize("ending", [".gz", ".bz2", ".xz", ".zst"])
def test_compressed_tables_read_like_their_uncompressed_selves(tmp_path, capsys, ending):
    (tmp_path / "plain").mkdir()
    _run_case(tmp_path / "plain", _good_norms(), "csv", _good_ratings(), "csv", capsys)
    _run_case(tmp_path, _good_norms(), "csv", _good_ratings(), "csv", capsys, ending)
    plain, packed = sorted(tmp_path.rglob("metrics.parquet"), key=lambda p: "plain" not in str(p))
    pd.testing.assert_frame_equal(pd.read_parquet(packed), pd.read_parquet(plain))
    assert len(list(tmp_path.glob(f"case*/ratings.csv{ending}"))) == 1


def test_the_unmutated_case_succeeds(tmp_path, capsys):
    """The fuzz's starting point works, so exit 2 in the fuzz is the mutations' doing."""
    _run_case(tmp_path, _good_norms(), "csv", _good_ratings(), "csv", capsys)
    assert len(list(tmp_path.rglob("metrics.parquet"))) == 1


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate-ratings", "{ratings}", "--norms", "{norms}", "--out", "{blocked}/out"],
        ["report", "{evalout}", "--out", "{blocked}/report"],
    ],
)
def test_output_that_cannot_be_written_is_one_clear_error(tmp_path, capsys, command):
    norms, ratings, evalout, blocked = (
        tmp_path / "norms.csv",
        tmp_path / "ratings.csv",
        tmp_path / "eval",
        tmp_path / "a_file",
    )
    _good_norms().to_csv(norms, index=False)
    _good_ratings().to_csv(ratings, index=False)
    assert main(["evaluate-ratings", str(ratings), "--norms", str(norms), "--out", str(evalout), "--n-boot", "0"]) == 0
    before = {p: p.stat().st_mtime_ns for p in evalout.rglob("*")}
    blocked.write_text("a file where a folder is needed")
    capsys.readouterr()
    args = [a.format(ratings=ratings, norms=norms, evalout=evalout, blocked=blocked) for a in command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("egrid: error:") == 1 and str(blocked) in err and "Traceback" not in err
    assert "Not a directory" in err or "is a file, not a folder" in err
    assert {p: p.stat().st_mtime_ns for p in evalout.rglob("*")} == before  # earlier results untouched


def test_disk_full_mid_write_keeps_the_previous_table(tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    from embodiment.errors import InputError
    from embodiment.tables import write_parquet_atomic

    path = write_parquet_atomic(pd.DataFrame({"x": [1, 2]}), tmp_path / "t.parquet")

    def full(table, where, **kwargs):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a footer")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(InputError, match="No space left on device") as info:
        write_parquet_atomic(pd.DataFrame({"x": [3]}), path)
    assert str(path) in str(info.value)
    monkeypatch.undo()
    assert pd.read_parquet(path)["x"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # the temp file is gone

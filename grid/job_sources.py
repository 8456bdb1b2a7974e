"""Where a job's data come from: a registered dataset's table (``wu2026:train``) kept as
written, or a file made absolute (relative to the job file, then the working directory)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationInfo

from embodiment.errors import did_you_mean


def data_source(value: str | None, info: ValidationInfo) -> str | None:
    """A registered dataset's table (``wu2026:train``, kept as written) or a file, made
    absolute (relative to the job file, then the working directory)."""
    from embodiment import datasets

    if value is None or value == "embedded":
        return value
    source = (info.context or {}).get("source", "<job>")
    if datasets.is_reference(value):
        name, table = value.split(datasets.SEPARATOR, 1)
        known = datasets.DATASETS[name].tables
        if table not in known:
            raise ValueError(
                f"dataset {name} has no table {table!r}{did_you_mean(table, known)}; its tables: {', '.join(known)}"
            )
        return value
    path = resolve_path(value, source)
    head = value.split(datasets.SEPARATOR, 1)[0]
    if datasets.SEPARATOR in value and head.isidentifier() and len(head) > 1 and not path.exists():
        raise ValueError(
            f"unknown dataset {head!r}{did_you_mean(head, datasets.DATASETS)}; known: "
            f"{', '.join(datasets.DATASETS)} (egrid data list), or give a file path"
        )
    if (info.context or {}).get("check_files", True) and not path.exists():
        raise ValueError(f"file not found: {path}")
    return str(path.resolve())


def resolve_path(path: str, source: str) -> Path:
    """Paths in a job are relative to the job file's folder, then to the working directory."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    beside = Path(source).parent / p if source != "<job>" else p
    return beside if beside.exists() else p

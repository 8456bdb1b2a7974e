"""Reading a job: a YAML file (``yaml.safe_load``) or the text of one in an environment
variable (``env:NAME``, what ``egrid submit`` sends), validated into a :class:`JobSpec`."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from embodiment.errors import InputError
from grid.spec import JobSpec, parse_job


ENV_PREFIX = "env:"  # `env:NAME`: the job's YAML text is in environment variable NAME (egrid submit)


def load_job(path: str | Path, *, check_files: bool = True) -> JobSpec:
    """Read and validate a job YAML file (or ``env:NAME``, the text of one in a variable)."""
    if str(path).startswith(ENV_PREFIX):
        name = str(path)[len(ENV_PREFIX) :]
        if name not in os.environ:
            raise InputError(f"environment variable {name} holds no job", source=path)
        return _parse_text(os.environ[name], str(path), check_files)
    path = Path(path)
    if not path.exists():
        raise InputError("job file not found", source=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=path) from None
    return _parse_text(text, str(path), check_files)


def _parse_text(text: str, path: str, check_files: bool) -> JobSpec:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(
            f"not valid YAML: {str(exc).splitlines()[0]} ({getattr(exc, 'problem_mark', '')})".strip(), source=path
        ) from None
    if raw is None:
        raise InputError("job file is empty", source=path)
    return parse_job(raw, str(path), check_files=check_files)

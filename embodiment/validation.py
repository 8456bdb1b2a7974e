"""Pydantic's validation errors in this project's words: one line per problem,
``<yaml path>: <what was found>, <what was expected>``, with "did you mean" for
misspelt keys and choices. Shared by the job spec (``grid.spec``) and
:meth:`embodiment.training.TrainConfig.from_dict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from pydantic import PlainValidator, ValidationError

from embodiment.errors import did_you_mean

_KINDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "str": "a string",
    "list": "a list",
    "dict": "a mapping",
    "model": "a mapping",
}


class FieldProblem(ValueError):
    """Raised by a validator of a whole section about one of its fields: the message's
    YAML path then ends at that field (``evaluation.probe``), not at the section."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def _loc_of(error: dict) -> tuple:
    loc = _field_loc(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    return loc + (cause.field,) if isinstance(cause, FieldProblem) else loc


def yaml_path(loc: Sequence[Any]) -> str:
    """``('conditions', 0, 'format')`` -> ``conditions[0].format``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "(top level)"


def _expected_kind(error_type: str) -> str | None:
    head = error_type.split("_", 1)[0]
    return _KINDS.get(head) if error_type.endswith("_type") or error_type.endswith("_parsing") else None


def describe(error: dict, allowed_keys: Iterable[str] = ()) -> str:
    """One pydantic error dict as this project's message (without its path)."""
    kind, found, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = sorted(allowed_keys)
        return f"unknown key{did_you_mean(str(error['loc'][-1]), allowed)}" + (
            f"; allowed: {', '.join(allowed)}" if allowed else ""
        )
    if kind == "missing":
        return "missing (required)"
    if kind == "literal_error":
        choices = [c.strip().strip("'") for c in ctx.get("expected", "").replace(" or ", ", ").split(", ") if c.strip()]
        if error["loc"] and error["loc"][-1] == "[key]":  # a mapping's key, e.g. a language under norms
            return f"unknown key{did_you_mean(str(found), choices)}; expected one of {', '.join(choices)}"
        return f"got {found!r}{did_you_mean(str(found), choices)}, expected one of {', '.join(choices)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound}, got {found!r}"
    if kind == "finite_number":
        return f"expected a finite number, got {found!r}"
    if kind == "too_short":
        return (
            "empty list; give at least one entry" if not found else f"expected at least {ctx.get('min_length')} entries"
        )
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if kind == "none_required" or (kind.endswith("_type") and found is None):
        return f"expected {_expected_kind(kind) or 'a value'}, got null"
    expected = _expected_kind(kind)
    if expected:
        return f"expected {expected}, got {found!r}"
    return f"{error['msg']}, got {found!r}"


def problems(exc: ValidationError, allowed_keys=None) -> list[str]:
    """Every error of ``exc`` as ``<path>: <message>``; one per field.

    Args:
        exc: pydantic's error.
        allowed_keys: ``loc -> names`` for "did you mean" on unknown keys (callable).
    """
    out, seen = [], set()
    for error in exc.errors():
        loc = _loc_of(error)
        path = yaml_path(loc)
        if path in seen:  # a union's alternatives fail one by one: report the field once
            continue
        seen.add(path)
        allowed = allowed_keys(loc[:-1]) if allowed_keys and error["type"] == "extra_forbidden" else ()
        out.append(f"{path}: {describe(error, allowed)}")
    return out


def _field_loc(loc: Sequence[Any]) -> tuple:
    """Drop the union-member tags pydantic adds (``'list[str]'``, ``'function-after[...]'``)."""
    return tuple(p for p in loc if isinstance(p, int) or not any(c in str(p) for c in "[]()"))


def first_problem(exc: ValidationError, allowed_keys: Iterable[str] = ()) -> tuple[str | None, str]:
    """(key, message) of the first error: for single-object checks such as TrainConfig.

    Args:
        exc: pydantic's error.
        allowed_keys: the object's keys, for "did you mean" on an unknown one.
    """
    error = exc.errors()[0]
    loc = _loc_of(error)
    key = yaml_path(loc) if loc else None
    return key, describe(error, allowed_keys if error["type"] == "extra_forbidden" else ())


def _names_or_all(value: Any) -> list[str] | str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list):
        if not value:
            raise ValueError("empty list; give at least one entry")
        if all(isinstance(v, str) and v for v in value):
            return value
    raise ValueError(f"expected a list of names or one name, got {value!r}")


def _indices_or_all(value: Any) -> list[int] | str:
    if value == "all":
        return value
    if isinstance(value, list):
        if not value:
            raise ValueError("empty list; give at least one entry")
        if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**6 for v in value):
            return value
    raise ValueError(f"expected a list of layer numbers (0 or more) or 'all', got {value!r}")


#: a list of names, or one name such as ``all`` (one message for either shape)
NamesOrAll = Annotated[Any, PlainValidator(_names_or_all, json_schema_input_type=list[str] | str)]
#: a list of non-negative integers, or ``all``
IndicesOrAll = Annotated[Any, PlainValidator(_indices_or_all, json_schema_input_type=list[int] | str)]

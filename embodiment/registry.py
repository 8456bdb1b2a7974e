"""Named choices: every registry (formats, correlations, RDM methods, standardisations,
comparisons, RSA recipes, norms loaders, datasets) is looked up the same way, an unknown
name answered with one error that suggests the nearest names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from embodiment.errors import InputError, did_you_mean

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, *, what: str, key: str, aliases: Mapping[str, str] | None = None) -> T:
    """The entry of ``registry`` called ``name`` (or an alias of one).

    Args:
        registry: name -> entry.
        name: the name asked for.
        what: what the entries are, for the message ("RDM method").
        key: the option or column that named it (the error's key).
        aliases: other spellings -> registry names.

    Raises:
        InputError: ``unknown <what> '<name>'; did you mean ...? known: ...``.
    """
    real = (aliases or {}).get(name, name)
    if real in registry:
        return registry[real]
    known = [*registry, *(aliases or {})]
    raise InputError(f"unknown {what} {name!r}{did_you_mean(str(name), known)}; known: {', '.join(registry)}", key=key)

"""The dimension registry: every rated dimension, its group, language, scale and names.

One place declares every dimension the tool knows (the 11 Lancaster dimensions and the
6 Dutch senses), the short names people type ("foot", "hand", "smell"), and the
cross-lingual map between English and Dutch senses. Everything else asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from embodiment.errors import InputError, did_you_mean

SENSORY = "sensory"
MOTOR = "motor"


@dataclass(frozen=True)
class Dimension:
    """One rated dimension of experience.

    Attributes:
        name: canonical name as in the norms' column headers (``Foot_leg``, ``Horen``).
        language: ISO 639-1 code of the norms the dimension comes from.
        group: ``sensory`` or ``motor``.
        description: how the rating question describes it (used by prompt templates).
        aliases: other names people use for it (lower case).
        scale: (low, high) of the rating scale.
        equivalent: the canonical name of the same sense in the other language.
    """

    name: str
    language: str
    group: str
    description: str
    aliases: tuple[str, ...] = field(default=())
    scale: tuple[float, float] = (0.0, 5.0)
    equivalent: str | None = None


_DIMENSIONS: tuple[Dimension, ...] = (
    # Lancaster perceptual strength (Lynott et al., 2020)
    Dimension("Auditory", "en", SENSORY, "hearing", ("auditory", "hearing", "sound", "audition"), equivalent="Horen"),
    Dimension("Gustatory", "en", SENSORY, "tasting", ("gustatory", "taste", "tasting"), equivalent="Proeven"),
    Dimension(
        "Haptic",
        "en",
        SENSORY,
        "feeling through touch",
        ("haptic", "touch", "touching", "tactile"),
        equivalent="Voelen",
    ),
    Dimension(
        "Interoceptive",
        "en",
        SENSORY,
        "sensations inside your body",
        ("interoceptive", "interoception", "body"),
        equivalent="Sensaties",
    ),
    Dimension("Olfactory", "en", SENSORY, "smelling", ("olfactory", "smell", "smelling"), equivalent="Ruiken"),
    Dimension("Visual", "en", SENSORY, "seeing", ("visual", "vision", "sight", "seeing"), equivalent="Zien"),
    # Lancaster action strength
    Dimension(
        "Foot_leg",
        "en",
        MOTOR,
        "performing an action with your foot or leg",
        ("foot_leg", "foot", "leg", "foot/leg", "foot-leg"),
    ),
    Dimension(
        "Hand_arm",
        "en",
        MOTOR,
        "performing an action with your hand or arm",
        ("hand_arm", "hand", "arm", "hand/arm", "hand-arm"),
    ),
    Dimension("Head", "en", MOTOR, "performing an action with your head, excluding the mouth", ("head",)),
    Dimension(
        "Mouth", "en", MOTOR, "performing an action with your mouth or throat", ("mouth", "throat", "mouth_throat")
    ),
    Dimension("Torso", "en", MOTOR, "performing an action with your torso", ("torso",)),
    # Dutch sensory modality norms (Speed & Brysbaert, 2022)
    Dimension("Horen", "nl", SENSORY, "het gehoor", ("horen",), equivalent="Auditory"),
    Dimension("Proeven", "nl", SENSORY, "de smaak", ("proeven",), equivalent="Gustatory"),
    Dimension("Voelen", "nl", SENSORY, "de tastzin (aanraking)", ("voelen",), equivalent="Haptic"),
    Dimension("Sensaties", "nl", SENSORY, "gevoelens binnenin je lichaam", ("sensaties",), equivalent="Interoceptive"),
    Dimension("Ruiken", "nl", SENSORY, "de reuk", ("ruiken",), equivalent="Olfactory"),
    Dimension("Zien", "nl", SENSORY, "het zicht", ("zien",), equivalent="Visual"),
)

REGISTRY: dict[str, Dimension] = {d.name: d for d in _DIMENSIONS}

#: Named dimension subsets, per language; "all" means every dimension a table has.
LANCASTER_SENSORY = tuple(d.name for d in _DIMENSIONS if d.language == "en" and d.group == SENSORY)
LANCASTER_MOTOR = tuple(d.name for d in _DIMENSIONS if d.language == "en" and d.group == MOTOR)
DUTCH_SENSORY = tuple(d.name for d in _DIMENSIONS if d.language == "nl")


def get(name: str) -> Dimension:
    """Return the registered dimension called ``name`` (canonical name or alias)."""
    key = name.strip().lower()
    for dim in _DIMENSIONS:
        if key == dim.name.lower() or key in dim.aliases:
            return dim
    raise InputError(
        f"unknown dimension {name!r}{did_you_mean(name, REGISTRY)}; known: {', '.join(REGISTRY)}", key="dimension"
    )


def resolve(name: str, available: list[str] | tuple[str, ...], *, source: object | None = None) -> str:
    """Map a user's dimension name onto one of ``available`` (case-insensitive, aliases).

    Args:
        name: what the user wrote ("foot", "AUDITORY", "Foot_leg.mean").
        available: the dimension names a norms table has.
        source: the file the name came from, for the error message.

    Returns:
        The matching entry of ``available``.

    Raises:
        InputError: no entry matches; the message lists what is available.
    """
    key = name.strip()
    if key.lower().endswith(".mean"):
        key = key[: -len(".mean")]
    by_lower = {a.lower(): a for a in available}
    if key.lower() in by_lower:
        return by_lower[key.lower()]
    for dim in _DIMENSIONS:
        if key.lower() in dim.aliases and dim.name.lower() in by_lower:
            return by_lower[dim.name.lower()]
    raise InputError(
        f"dimension {name!r} is not in the norms{did_you_mean(key, available)}; available: {', '.join(available)}",
        source=source,
        key="dimension",
    )


def group_of(name: str) -> str | None:
    """Return ``sensory``/``motor`` for a registered dimension, else None."""
    dim = REGISTRY.get(name)
    return dim.group if dim else None


def subset(names: list[str] | tuple[str, ...], which: str | list[str] | tuple[str, ...]) -> list[str]:
    """Select a named subset (``all``, ``sensory``, ``motor``) or an explicit list of ``names``.

    Args:
        names: the dimensions a table has, in table order.
        which: ``"all"``, ``"sensory"``, ``"motor"``, or a list of dimension names/aliases.

    Returns:
        The selected names, in table order. Empty when a group has no member in the table
        (e.g. ``motor`` on the Dutch norms).
    """
    if isinstance(which, str):
        if which == "all":
            return list(names)
        if which in (SENSORY, MOTOR):
            return [n for n in names if group_of(n) == which]
        which = [which]
    chosen = {resolve(w, list(names)) for w in which}
    return [n for n in names if n in chosen]


def equivalent(name: str, language: str) -> str | None:
    """The same sense in ``language`` (``Auditory`` -> ``Horen`` for ``nl``), or None."""
    dim = REGISTRY.get(name)
    if dim is None:
        return None
    if dim.language == language:
        return dim.name
    return dim.equivalent if dim.equivalent and REGISTRY[dim.equivalent].language == language else None

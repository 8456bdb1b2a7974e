"""Prompt templates, written in our own words, with the concept always last.

Putting the concept at the very end of the user turn means every prompt of one
(dimension, language) shares a prefix, which the scorer runs once and reuses through the
KV cache. A prompt is therefore returned as (prefix text, suffix text); token ids are the
two tokenized separately and concatenated -- the same ids on the plain and the reused path.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from embodiment import dimensions as dims
from embodiment.errors import InputError, did_you_mean

_SENTINEL = "\ue000CONCEPT\ue000"

RATING_TEMPLATES = {
    "en": (
        "Rate how strongly a concept is experienced by {description}, from 0 (not at all) to 5 (greatly). "
        "Reply with a single digit.\nConcept:{concept}"
    ),
    "nl": (
        "Beoordeel hoe sterk een begrip ervaren wordt via {description}, van 0 (helemaal niet) tot 5 (heel sterk). "
        "Antwoord met één cijfer.\nBegrip:{concept}"
    ),
}
PAIRWISE_TEMPLATES = {
    "en": "Which is experienced more strongly by {description}? Reply with A or B.\nA:{a}\nB:{b}",
    "nl": "Wat wordt sterker ervaren via {description}? Antwoord met A of B.\nA:{a}\nB:{b}",
}
MCQ_TEMPLATE = "{question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nReply with the letter of the correct option."
EMBEDDING_PREFIX = "Concept:"


@dataclass(frozen=True)
class SplitPrompt:
    """A prompt as a shared prefix and a concept-specific suffix (texts, chat template applied)."""

    prefix: str
    suffix: str


def _chat(tokenizer, content: str, assistant_prefix: str = "") -> str:
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = f"{content}\n"
    return text + assistant_prefix


def rating_prompt(tokenizer, concept: str, dimension: str, language: str = "en") -> SplitPrompt:
    """The study's rating question for one (concept, dimension), split before the concept.

    Args:
        tokenizer: supplies the chat template (plain text if it has none).
        concept: the word or expression.
        dimension: a registered dimension name or alias.
        language: ``en`` or ``nl``.
    """
    head, tail = _rating_frame(tokenizer, dimension, language)
    return SplitPrompt(head, " " + concept + tail)


# Rendered chat frames per tokenizer: a Jinja chat template costs milliseconds a call,
# more than scoring the prompt once its prefix is cached, and the frame does not depend
# on the concept. Keyed weakly, so a frame goes with its tokenizer.
_FRAMES: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()


def _rating_frame(tokenizer, dimension: str, language: str) -> tuple[str, str]:
    """The rating prompt's text before and after the concept (chat template applied)."""
    if language not in RATING_TEMPLATES:
        raise InputError(
            f"no rating template for language {language!r}{did_you_mean(language, RATING_TEMPLATES)}", key="language"
        )
    try:
        frames = _FRAMES.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced: render every time
        frames = {}
    key = (dimension, language, getattr(tokenizer, "chat_template", None))
    if key not in frames:
        description = dims.get(dimension).description
        content = RATING_TEMPLATES[language].format(description=description, concept=_SENTINEL)
        head, tail = _chat(tokenizer, content).split(_SENTINEL, 1)
        frames[key] = (head, tail)
    return frames[key]


def pairwise_prompt(tokenizer, a: str, b: str, dimension: str, language: str = "en") -> str:
    """'Which is experienced more through X: A or B?' as one chat prompt."""
    content = PAIRWISE_TEMPLATES[language].format(description=dims.get(dimension).description, a=" " + a, b=" " + b)
    return _chat(tokenizer, content, "Answer:")


def mcq_context(tokenizer, question: str, options: dict[str, str]) -> str:
    """The multiple-choice context, ending in ``Answer:``; continuations are `` A`` .. `` D``."""
    return _chat(tokenizer, MCQ_TEMPLATE.format(question=question, **options), "Answer:")

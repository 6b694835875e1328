"""Reading an image and its prompt together: one composed text that the risk model scores.

A prompt may leave its object or its whole request to the image ("how do I hide *this*", "do what
the card says"). :func:`compose` writes the effective request as one text: the prompt, then what the
image says (its text read by OCR) or shows (a visual concept). The guard scores that composition
with the same risk model as any text, so no phrase list decides which prompts refer to the image:
the model learned it from compositions made by :func:`make_compositions`:

- *act* prompts (carry out, complete, answer what the image says) over a request from the pool take
  the request's label; *neutral* prompts about the image itself (its colours, font, layout) over
  any request are benign;
- *object* prompts whose object is the image ("how do I hide this from the police") over a concept
  ("a handgun") are harmful, and their benign twins over the same concepts ("how do I store this
  safely") are benign.

The prompts and concepts are package data (``data/compositions.yaml``); none comes from a benchmark.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import cache

from pydantic import BaseModel, ConfigDict

from vlmguard.perception.package_data import data_yaml
from vlmguard.perception.risk_data import LabelledText

MAX_IMAGE_TEXT_CHARS = 600
"""Image text beyond this many characters is left out of a composition."""
COMPOSITION_SOURCE = "compositions"


_LIST_TOKEN = re.compile(r"^[.:;,：·。)?]*\d{0,3}[.:;,：·。)?]*$")


def strip_list_markers(text: str) -> str:
    """Drop an empty numbered list after the last sentence ("Steps to X. 1. 2. 3." -> "Steps to X.").

    Linear in the length of the text: the tokens are read backwards while they look like list
    numbers; at least two digits must be dropped and a sentence end must precede them.
    """
    tokens = text.split(" ") if "\n" not in text else re.split(r"([ \n])", text)
    if "\n" in text:
        tokens = [t for t in tokens if t not in (" ", "\n")]
    kept = len(tokens)
    digits = 0
    while kept > 0 and _LIST_TOKEN.match(tokens[kept - 1]):
        digits += sum(ch.isdigit() for ch in tokens[kept - 1])
        kept -= 1
    if kept == len(tokens) or kept == 0 or digits < 2:
        return text
    head = " ".join(tokens[:kept]).rstrip()
    # the list must follow a sentence end ("... drugs. 1. 2. 3."), not be part of a sentence ("2x + 3 = 7 ?")
    last = head[-1:]
    if last in ".:;!?。":
        return head
    # "... drugs 1. 2." where OCR lost the full stop: accept when the first dropped token carries a dot
    first_dropped = tokens[kept]
    dotted = first_dropped.lstrip("0123456789") in (".", ":")
    if first_dropped[:1].isdigit() and dotted and len(tokens) - kept >= 2:
        return head
    return text


def image_request(text: str) -> str:
    """The request an image's text makes: its lines joined, an empty numbered list after it dropped
    ("Steps to X. 1. 2. 3." -> "Steps to X."), since the empty list asks nothing by itself."""
    return strip_list_markers(" ".join(text.split()))


def compose(prompt: str, *, image_text: str | None = None, concept: str | None = None) -> str:
    """The effective request of ``prompt`` with what the image says (``image_text``) or shows
    (``concept``)."""
    parts = [" ".join(prompt.split())]
    if image_text:
        flat = image_request(image_text)[:MAX_IMAGE_TEXT_CHARS]
        parts.append(f"The image says: {flat}")
    if concept:
        parts.append(f"The image shows {concept}.")
    return "\n".join(p for p in parts if p)


class CompositionMaterial(BaseModel):
    """The prompts and concepts compositions are made from."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    act: tuple[str, ...]
    neutral: tuple[str, ...]
    object_harmful: tuple[str, ...]
    object_benign: tuple[str, ...]
    concepts: tuple[str, ...]


@cache
def load_material() -> CompositionMaterial:
    """The packaged composition material (``data/compositions.yaml``)."""
    raw = data_yaml("compositions.yaml")
    return CompositionMaterial(
        act=tuple(raw["act"]),
        neutral=tuple(raw["neutral"]),
        object_harmful=tuple(raw["object"]["harmful"]),
        object_benign=tuple(raw["object"]["benign"]),
        concepts=tuple(raw["concepts"]),
    )


def _list_layout(text: str, rng: random.Random) -> str:
    """How a request may read in an image: as typed, as a heading over an empty list, or upper case."""
    style = rng.randrange(4)
    if style == 1:
        return f"{text.rstrip('.?!')}. 1. 2. 3."
    if style == 2:
        return text.upper()
    if style == 3:
        return "\n".join(text.split(" ", 3))
    return text


def make_compositions(
    rows: Sequence[LabelledText],
    *,
    per_row: float = 0.25,
    seed: int = 0,
    material: CompositionMaterial | None = None,
    max_request_words: int = 40,
) -> list[LabelledText]:
    """Compositions made from ``rows`` (English requests of at most ``max_request_words`` words).

    About ``per_row`` of the eligible rows are each moved into an image under an act prompt, and as
    many harmful ones under a neutral prompt (benign); the object prompts are crossed with every
    concept. Each composition keeps its row's source in ``id`` (``"<source>:<id>"``) so that a
    held-out source's compositions can be held out too.
    """
    material = material or load_material()
    rng = random.Random(seed)
    eligible = [r for r in rows if r.lang == "en" and len(r.text.split()) <= max_request_words]
    chosen = rng.sample(eligible, k=min(len(eligible), round(per_row * len(eligible))))
    out: list[LabelledText] = []
    for row in chosen:
        image_text = _list_layout(row.text, rng)
        out.append(
            LabelledText(
                text=compose(rng.choice(material.act), image_text=image_text),
                label=row.label,
                categories=row.categories,
                source=COMPOSITION_SOURCE,
                id=f"{row.source}:{row.id}:act",
            )
        )
        if row.harmful and rng.random() < 0.5:
            out.append(
                LabelledText(
                    text=compose(rng.choice(material.neutral), image_text=image_text),
                    label="benign",
                    source=COMPOSITION_SOURCE,
                    id=f"{row.source}:{row.id}:neutral",
                )
            )
    for label, prompts in (("harmful", material.object_harmful), ("benign", material.object_benign)):
        for prompt in prompts:
            for concept in material.concepts:
                out.append(
                    LabelledText(
                        text=compose(prompt, concept=concept),
                        label=label,
                        source=COMPOSITION_SOURCE,
                        id=f"object:{label}:{prompt}:{concept}",
                    )
                )
    return out


__all__ = [
    "COMPOSITION_SOURCE",
    "CompositionMaterial",
    "compose",
    "image_request",
    "load_material",
    "make_compositions",
    "strip_list_markers",
]

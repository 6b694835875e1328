"""Benign twins of harmful requests: the same act, asked about from the side of safety or the law.

Public harmful requests are mostly "how can I <act>?"; benign public sets rarely mention such acts
at all, so a model can learn the topic instead of the intent. :func:`benign_twins` takes the act of
each harmful English request phrased as a how-to ("how can I hack a PayPal account?" -> "hack a
PayPal account") and asks about it under a benign form from ``data/everyday.yaml``
("How do investigators catch people who hack a PayPal account?").
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import cache

from vlmguard.perception.package_data import data_yaml
from vlmguard.perception.risk_data import LabelledText

_HOW_TO = re.compile(
    r"^(?:how (?:can|do|would|could|should) (?:i|you|someone|one|we) |"
    r"what(?:'s| is) the (?:best|easiest|quickest|most effective) way to |"
    r"(?:can|could) you (?:help me |tell me how to |explain how to )?|"
    r"(?:please )?(?:explain|tell me|show me|teach me) how to |ways to |"
    r"write a (?:tutorial|guide) on how to )"
    r"(?P<act>[a-z][^?.!]{8,90})[?.!]?$",
    re.IGNORECASE,
)
_PERSON = {
    "my": "their",
    "me": "them",
    "myself": "themselves",
    "i": "they",
    "mine": "theirs",
    "i'm": "they're",
}
TWIN_SOURCE = "twins"


@cache
def twin_forms() -> tuple[str, ...]:
    """The benign forms of ``data/everyday.yaml`` (``twin_forms``)."""
    raw = data_yaml("everyday.yaml")
    return tuple(raw["twin_forms"])


def act_of(text: str) -> str | None:
    """The act a how-to request asks for, in the third person; ``None`` for other phrasings."""
    match = _HOW_TO.match(" ".join(text.split()))
    if match is None:
        return None
    words = [_PERSON.get(w.lower(), w) for w in match.group("act").split()]
    return " ".join(words)


def benign_twins(rows: Sequence[LabelledText], *, seed: int = 0) -> list[LabelledText]:
    """One benign twin for each harmful English how-to request in ``rows`` (a seeded form each).

    A twin keeps its request's source in ``id`` (``"<source>:<id>"``), so a held-out source's twins
    can be held out with it.
    """
    rng = random.Random(seed)
    forms = twin_forms()
    out = []
    for row in rows:
        if not row.harmful or row.lang != "en":
            continue
        act = act_of(row.text)
        if act is not None:
            out.append(
                LabelledText(
                    text=rng.choice(forms).format(act),
                    label="benign",
                    source=TWIN_SOURCE,
                    id=f"{row.source}:{row.id}",
                )
            )
    return out


__all__ = ["TWIN_SOURCE", "act_of", "benign_twins", "twin_forms"]

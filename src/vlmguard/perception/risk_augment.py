"""The rows a risk model is trained on besides its labelled data, made from that data.

:func:`augmented` returns, for labelled rows, the rows both ``vlmguard risk-model train`` and the
generalisation benchmark add to them:

- **twins** (:func:`~vlmguard.perception.risk_twins.benign_twins`): each harmful how-to request's act
  asked about from the side of safety or the law, labelled benign;
- **headings** (:func:`heading_rows`): a how-to request of either label written as a title ("How to
  X", "Steps to X."), the way requests are set on slides and typographic images, with its label;
- **compositions** (:func:`~vlmguard.perception.risk_compose.make_compositions`): requests moved into
  an image under carrier prompts, and object prompts over visual concepts.

Every made row keeps the source of the row it was made from in its ``id`` (``"<source>:<id>..."``),
so a held-out source's rows can be held out with it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import cache

from vlmguard.perception.package_data import data_yaml
from vlmguard.perception.risk_compose import make_compositions
from vlmguard.perception.risk_data import LabelledText
from vlmguard.perception.risk_twins import act_of, benign_twins

HEADING_SOURCE = "headings"


@cache
def heading_forms() -> tuple[str, ...]:
    """The title forms of ``data/compositions.yaml`` (``headings``)."""
    raw = data_yaml("compositions.yaml")
    return tuple(raw["headings"])


def heading_rows(rows: Sequence[LabelledText], *, per_row: float = 0.5, seed: int = 0) -> list[LabelledText]:
    """English how-to requests in ``rows`` written as a title under a seeded form, each with its row's
    label and categories: about ``per_row`` of the harmful ones and all the benign ones (benign how-to
    requests are the fewer, and the title form must not read as harm by itself)."""
    rng = random.Random(seed)
    forms = heading_forms()
    out = []
    for row in rows:
        if row.lang != "en" or (row.harmful and rng.random() >= per_row):
            continue
        act = act_of(row.text)
        if act is None:
            continue
        title = rng.choice(forms).format(act)
        out.append(
            LabelledText(
                text=title[:1].upper() + title[1:],
                label=row.label,
                categories=row.categories,
                source=HEADING_SOURCE,
                id=f"{row.source}:{row.id}:heading",
            )
        )
    return out


def augmented(
    rows: Sequence[LabelledText], *, twins: bool = True, headings: bool = True, compositions: bool = True
) -> list[LabelledText]:
    """The rows made from ``rows``: twins, then headings (of the rows and twins), then compositions (of
    all of them); each kind can be left out."""
    made = benign_twins(rows) if twins else []
    if headings:
        made += heading_rows([*rows, *made])
    if compositions:
        made += make_compositions([*rows, *made])
    return made


__all__ = ["HEADING_SOURCE", "augmented", "heading_forms", "heading_rows"]

"""The collator puts the loss on the assistant target only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vlmguard.train.data import load_rows

pytest.importorskip("trl")


@pytest.mark.parametrize("kind", ["idefics3", "llava"])
def test_labels_cover_exactly_the_target(kind: str, write_rows: Any, request: pytest.FixtureRequest) -> None:
    from transformers import AutoProcessor

    from vlmguard.train.collator import IGNORE_INDEX, RewriterCollator

    base = request.getfixturevalue(f"tiny_{kind}")
    processor = AutoProcessor.from_pretrained(str(base))
    # the full rewriter template (system message included), as the synthesis export writes it
    rows, _ = load_rows(write_rows(n=3, compact=False))
    collator = RewriterCollator(processor, max_length=4096)
    batch = collator(rows)
    tokenizer = processor.tokenizer
    assert batch["labels"].shape == batch["input_ids"].shape
    assert "pixel_values" in batch
    for i, row in enumerate(rows):
        ids, labels, mask = batch["input_ids"][i], batch["labels"][i], batch["attention_mask"][i]
        trained = labels != IGNORE_INDEX
        # labels equal the inputs where trained, and nothing outside the real tokens is trained
        assert bool((labels[trained] == ids[trained]).all())
        assert not bool((trained & (mask == 0)).any())
        # the trained tokens are one contiguous span at the end of the row: the target + end-of-turn
        positions = trained.nonzero().flatten()
        assert int(positions[-1] - positions[0] + 1) == len(positions)
        text = tokenizer.decode(ids[trained])
        assert text.startswith(row.target)
        assert text[len(row.target) :].strip() == "<|im_end|>"
        # every prompt token (system, user, image tokens, the assistant header) is masked
        prompt_text, _ = collator.render(row)
        prompt_ids = processor(
            text=[prompt_text], images=[collator.load_images(row.images)], add_special_tokens=False
        )["input_ids"][0]
        start = int(mask.nonzero().flatten()[0])
        assert int(positions[0]) == start + len(prompt_ids)
        assert bool((labels[start : start + len(prompt_ids)] == IGNORE_INDEX).all())
        assert "<user_text>" in prompt_text and "<|im_start|>assistant" in prompt_text


def test_rows_of_different_lengths_pad_with_ignored_labels(tiny_idefics3: Path, write_rows: Any) -> None:
    from transformers import AutoProcessor

    from vlmguard.train.collator import IGNORE_INDEX, RewriterCollator

    rows, _ = load_rows(write_rows(n=2))
    collator = RewriterCollator(AutoProcessor.from_pretrained(str(tiny_idefics3)))
    lengths = [sum(collator.measure(r)) for r in rows]
    assert lengths[0] != lengths[1]
    batch = collator([r.to_example() for r in rows])
    assert batch["input_ids"].shape[1] == max(lengths)
    shorter = lengths.index(min(lengths))
    assert int(batch["attention_mask"][shorter].sum()) == min(lengths)
    assert bool((batch["labels"][shorter][batch["attention_mask"][shorter] == 0] == IGNORE_INDEX).all())

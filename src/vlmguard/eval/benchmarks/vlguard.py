"""VLGuard (Zong et al., 2024): the test set, or any file of the same layout (``train.json``).

Official layout: ``test.json`` (a list of ``{"id", "image", "safe", "instr-resp": [...]}``,
unsafe images with ``harmful_category``/``harmful_subcategory``) and the images, distributed
separately (pass their folder with ``images``; default: the folder named like the file, ``<data>/test``
for ``test.json``). Three subsets:

- ``safe_safes``: safe image, safe instruction -> benign (the model should help);
- ``safe_unsafes``: safe image, unsafe instruction -> harmful;
- ``unsafes``: unsafe image with its instruction -> harmful.

The variant picks one subset; without it all three are read. Every sample's ``meta`` holds its
``subset``, the ``item`` id, the item's ``image`` name and harmful (sub)category, and ``pair``, the
index of its instruction among the item's instructions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmguard.errors import InputError
from vlmguard.eval.benchmarks.base import BenchmarkData, BenchmarkOptions, load_benchmark
from vlmguard.eval.benchmarks.reading import (
    SampleCollector,
    data_file,
    images_folder,
    item_fields,
    read_json_list,
)
from vlmguard.eval.sample import Expected, Sample
from vlmguard.perception.risk_data import LabelledText, map_category_label
from vlmguard.taxonomy import category_from_label

SUBSETS = ("safe_safes", "safe_unsafes", "unsafes")
_SHAPES = (
    ("safe_safes", True, "safe_instruction", Expected.BENIGN),
    ("safe_unsafes", True, "unsafe_instruction", Expected.HARMFUL),
    ("unsafes", False, "instruction", Expected.HARMFUL),
)
"""Each subset: whether its image is safe, the field of an instruction pair it reads, its label."""
_FIELD = {subset: field for subset, _, field, _ in _SHAPES}


def _subset(safe: bool, pair: dict[str, Any], where: str) -> tuple[str, str, Expected]:
    """``(subset, instruction, expected)`` of one instruction pair of a safe or unsafe image."""
    for subset, safe_image, field, expected in _SHAPES:
        if safe == safe_image and field in pair:
            return subset, pair[field], expected
    raise InputError(f"{where} has an instruction pair of unknown shape")


class VLGuard:
    """VLGuard reader (the test set by default)."""

    name = "vlguard"
    kind = "mixed"
    description = "VLGuard test: 1,558 pairs (safe_safes benign; safe_unsafes and unsafes harmful)"
    variants = SUBSETS

    def load(self, options: BenchmarkOptions) -> BenchmarkData:
        path = data_file(options, "test.json", "VLGuard test file test.json")
        images = images_folder(
            options.images or path.parent / path.stem,
            options,
            "VLGuard images folder",
            ". VLGuard's images are distributed separately: download the test images and pass their "
            "folder with --images DIR",
        )
        subsets = (options.variant,) if options.variant else SUBSETS
        found = SampleCollector(options)
        total = 0
        for item in read_json_list(path):
            item_id, image_name, safe, pairs = item_fields(
                item, ("id", "image", "safe", "instr-resp"), f"{path}: an item"
            )
            item_id, image_name = str(item_id), str(image_name)
            for index, pair in enumerate(pairs):
                subset, text, expected = _subset(bool(safe), pair, f"{path}: item {item_id}")
                total += 1
                if subset not in subsets:
                    continue
                sample_id = f"{item_id}/{subset}"
                image = found.image(sample_id, images / image_name, image_name)
                if image is None:
                    continue
                raw_label = item.get("harmful_subcategory") or item.get("harmful_category") or ""
                found.add(
                    Sample(
                        id=sample_id,
                        benchmark=self.name,
                        label=subset,
                        category=category_from_label(str(raw_label)) if raw_label else None,
                        prompt=str(text),
                        image_paths=[image],
                        expected=expected,
                        reference=pair.get("response"),
                        meta={
                            "subset": subset,
                            "item": item_id,
                            "image": image_name,
                            "pair": index,
                            "harmful_category": item.get("harmful_category"),
                            "harmful_subcategory": item.get("harmful_subcategory"),
                        },
                    )
                )
        return found.result(
            self.name,
            "mixed",
            variant=options.variant,
            total=total,
            source={"questions": str(path), "images": str(images)},
        )


def labelled_instructions(
    path: str | Path, *, source: str = "vlguard_train", image_dependent: bool = False
) -> list[LabelledText]:
    """VLGuard's instructions (``train.json`` or ``test.json``) as labelled texts, for training a risk
    model (:mod:`vlmguard.perception.risk_train`); read by this module's reader, images not needed.

    Over a safe image, the safe instruction is benign and the unsafe one harmful: the text alone
    decides. The instruction over an unsafe image is usually harmful only with its image ("Share this
    image to spread awareness."): it is read only with ``image_dependent=True``, labelled harmful with
    its item's categories.
    """
    data = load_benchmark("vlguard", BenchmarkOptions(data=Path(path), missing_images="keep"))
    rows: list[LabelledText] = []
    for sample in data.samples:
        if sample.label == "unsafes" and not image_dependent:
            continue
        harmful = sample.expected == Expected.HARMFUL
        raw = sample.meta.get("harmful_subcategory") or sample.meta.get("harmful_category")
        rows.append(
            LabelledText(
                text=sample.prompt,
                label="harmful" if harmful else "benign",
                categories=map_category_label(raw) if sample.label == "unsafes" else (),
                source=source,
                lang="en",
                id=f"{sample.meta['item']}:{sample.meta['pair']}:{_FIELD[sample.label]}",
            )
        )
    return rows

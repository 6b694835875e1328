"""SIUO (Wang et al., 2024): safe inputs whose combination asks for an unsafe output.

Official layout: ``siuo_gen.json`` (a list of ``question_id``, ``image``, ``question``,
``category``, ``safety_warning``, ``reference_answer``) and the images, distributed separately:
pass their folder with ``images`` (default ``<data>/images``). A missing folder is an error that
names it; missing single files are reported as skipped items.
"""

from __future__ import annotations

from vlmguard.eval.benchmarks.base import (
    BenchmarkData,
    BenchmarkOptions,
    data_file,
    image_for,
    images_folder,
    item_fields,
    read_json_list,
    select,
)
from vlmguard.eval.sample import Expected, Sample, SkippedSample
from vlmguard.taxonomy import category_from_label


class SIUO:
    """SIUO generation-task reader."""

    name = "siuo"
    kind = "safety"
    description = "SIUO: 167 safe-image + safe-text pairs whose answer can be unsafe; 9 categories"
    variants = ("gen",)

    def load(self, options: BenchmarkOptions) -> BenchmarkData:
        path = data_file(options, "siuo_gen.json", "SIUO question file siuo_gen.json")
        images = images_folder(
            options.images or path.parent / "images",
            options,
            "SIUO images folder",
            ". SIUO's images are distributed separately from its questions: download them and pass the "
            "folder with --images DIR",
        )
        items = read_json_list(path)
        samples: list[Sample] = []
        skipped: list[SkippedSample] = []
        for item in items:
            fields = ("question_id", "image", "question", "category")
            sample_id, image_name, question, label = (
                str(v) for v in item_fields(item, fields, f"{path}: an item")
            )
            image = image_for(images / image_name, options)
            if image is None:
                skipped.append(SkippedSample(id=sample_id, reason=f"image missing: {image_name}"))
                continue
            samples.append(
                Sample(
                    id=sample_id,
                    benchmark=self.name,
                    category=category_from_label(label),
                    label=label,
                    prompt=question,
                    image_paths=[image],
                    expected=Expected.HARMFUL,
                    reference=item.get("reference_answer"),
                    safety_warning=item.get("safety_warning"),
                )
            )
        return BenchmarkData(
            benchmark=self.name,
            variant="gen",
            kind="safety",
            samples=select(samples, options),
            skipped=skipped,
            total=len(items),
            source={"questions": str(path), "images": str(images)},
        )

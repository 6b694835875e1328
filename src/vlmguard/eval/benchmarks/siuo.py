"""SIUO (Wang et al., 2024): safe inputs whose combination asks for an unsafe output.

Official layout: ``siuo_gen.json`` (a list of ``question_id``, ``image``, ``question``,
``category``, ``safety_warning``, ``reference_answer``) and the images, distributed separately:
pass their folder with ``images`` (default ``<data>/images``). A missing folder is an error that
names it; missing single files are reported as skipped items.
"""

from __future__ import annotations

from vlmguard.eval.benchmarks.base import BenchmarkData, BenchmarkOptions
from vlmguard.eval.benchmarks.reading import (
    SampleCollector,
    data_file,
    images_folder,
    item_fields,
    read_json_list,
)
from vlmguard.eval.sample import Expected, Sample
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
        found = SampleCollector(options)
        for item in items:
            fields = ("question_id", "image", "question", "category")
            sample_id, image_name, question, label = (
                str(v) for v in item_fields(item, fields, f"{path}: an item")
            )
            image = found.image(sample_id, images / image_name, image_name)
            if image is None:
                continue
            found.add(
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
        return found.result(
            self.name,
            "safety",
            variant="gen",
            total=len(items),
            source={"questions": str(path), "images": str(images)},
        )

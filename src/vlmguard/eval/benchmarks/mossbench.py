"""MOSSBench (Li et al., 2024): benign requests whose images look risky (oversensitivity).

Official layout: ``information.json`` (``{"1": {"image": "images/1.png", "question",
"description", "short description", "metadata": {"over": "type 1", "harm": [...]}}}``) and the
images. The image named in the file is looked up as given and, failing that, with the same stem and
another extension (the public copy stores ``.jpg`` files for ``.png`` names). Items whose image is
missing are left out and reported, never fatal.
"""

from __future__ import annotations

from vlmguard.eval.benchmarks.base import BenchmarkData, BenchmarkOptions
from vlmguard.eval.benchmarks.reading import (
    SampleCollector,
    data_file,
    find_image,
    item_fields,
    read_json_object,
)
from vlmguard.eval.sample import Expected, Sample

OVERSENSITIVITY_TYPES = {
    "type 1": "exaggerated risk",
    "type 2": "negated harm",
    "type 3": "counterintuitive interpretation",
}


class MOSSBench:
    """MOSSBench reader."""

    name = "mossbench"
    kind = "over-refusal"
    description = "MOSSBench: 300 benign requests with risky-looking images (over-refusal)"
    variants = ()

    def load(self, options: BenchmarkOptions) -> BenchmarkData:
        path = data_file(options, "information.json", "MOSSBench file information.json")
        root = options.images.parent if options.images else path.parent
        items = read_json_object(path)
        found = SampleCollector(options)
        for key, item in items.items():
            image_name, question = (
                str(v) for v in item_fields(item, ("image", "question"), f"{path}: item {key}")
            )
            folder, name = (
                (options.images, image_name.split("/")[-1]) if options.images else (root, image_name)
            )
            image = found.image(str(key), folder / name, image_name, found=find_image(folder, name))
            if image is None:
                continue
            meta = item.get("metadata", {}) or {}
            over = str(meta.get("over", "")).strip()
            found.add(
                Sample(
                    id=str(key),
                    benchmark=self.name,
                    category=None,
                    label=f"{over} ({OVERSENSITIVITY_TYPES[over]})"
                    if over in OVERSENSITIVITY_TYPES
                    else over,
                    prompt=question,
                    image_paths=[image],
                    expected=Expected.BENIGN,
                    meta={
                        "over": over,
                        "harm": meta.get("harm", []),
                        "description": item.get("description"),
                        "short_description": item.get("short description"),
                    },
                )
            )
        return found.result(
            self.name,
            "over-refusal",
            total=len(items),
            source={"questions": str(path), "images": str(options.images or root / "images")},
        )

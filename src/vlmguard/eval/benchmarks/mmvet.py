"""MM-Vet (Yu et al., 2023): integrated capabilities; the utility side of the comparison.

Official layout: ``mm-vet.json`` (``{"v1_0": {"imagename", "question", "answer", "capability"}}``)
and ``images/<imagename>``. Answers are graded 0-1 against ``answer`` (``<AND>``: all parts
needed; ``<OR>``: any one suffices) by the ``mmvet`` judge (or approximately by ``offline``).
"""

from __future__ import annotations

from vlmguard.eval.benchmarks.base import BenchmarkData, BenchmarkOptions
from vlmguard.eval.benchmarks.reading import (
    SampleCollector,
    data_file,
    images_folder,
    item_fields,
    read_json_object,
)
from vlmguard.eval.sample import Expected, Sample


class MMVet:
    """MM-Vet reader."""

    name = "mmvet"
    kind = "utility"
    description = "MM-Vet: 218 capability questions with reference answers (utility, 0-1)"
    variants = ()

    def load(self, options: BenchmarkOptions) -> BenchmarkData:
        path = data_file(options, "mm-vet.json", "MM-Vet question file mm-vet.json")
        images = images_folder(options.images or path.parent / "images", options, "MM-Vet images folder")
        items = read_json_object(path)
        found = SampleCollector(options)
        for qid, item in items.items():
            image_name, question, answer = (
                str(v) for v in item_fields(item, ("imagename", "question", "answer"), f"{path}: item {qid}")
            )
            capabilities = [str(c) for c in item.get("capability", [])]
            image = found.image(qid, images / image_name, image_name)
            if image is None:
                continue
            found.add(
                Sample(
                    id=qid,
                    benchmark=self.name,
                    category=None,
                    label=",".join(capabilities),
                    groups=capabilities,
                    prompt=question,
                    image_paths=[image],
                    expected=Expected.BENIGN,
                    reference=answer,
                    meta={"capabilities": capabilities},
                )
            )
        return found.result(
            self.name,
            "utility",
            total=len(items),
            source={"questions": str(path), "images": str(images)},
        )

"""MM-Vet benign images and questions as helpfulness seeds, read by eval's MM-Vet reader."""

from __future__ import annotations

from typing import Any

from vlmguard.eval.benchmarks import BenchmarkOptions, load_benchmark
from vlmguard.synth.loaders._common import SeedFileOptions, existing_file, first_seeds, parse_options
from vlmguard.synth.seeds import Seed


class MMVetOptions(SeedFileOptions):
    """Options of the ``mmvet`` loader (``images``: default ``images/`` next to ``mm-vet.json``)."""

    id_prefix: str = "mmvet"


def load_mmvet(path: str, options: dict[str, Any]) -> list[Seed]:
    """Benign seeds from MM-Vet; the reference answers are too terse to serve as helpful answers."""
    opts = parse_options(MMVetOptions, "mmvet", options)
    file = existing_file(path, "MM-Vet json")
    folder = opts.images_folder(file.parent / "images")
    data = load_benchmark("mmvet", BenchmarkOptions(data=file, images=folder, missing_images="keep"))
    seeds = (
        (
            Seed(
                id=f"{opts.id_prefix}/{sample.id}",
                images=[str(sample.image_paths[0])],
                prompt=sample.prompt,
                kind="safe",
                source=f"mmvet:{file.name}",
            ),
            sample.image_paths,
        )
        for sample in data.samples
    )
    return first_seeds(seeds, opts, "mmvet")

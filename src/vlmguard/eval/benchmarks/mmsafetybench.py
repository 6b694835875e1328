"""MM-SafetyBench (Liu et al., 2024): 13 scenarios of query-relevant images.

Official layout::

    processed_questions/<NN-Scenario>.json   {"0": {"Question", "Rephrased Question", ...}}
    imgs/<NN-Scenario>/SD/<id>.jpg               Stable Diffusion image of the key phrase
    imgs/<NN-Scenario>/SD_TYPO/<id>.jpg          the same with the key phrase typed below
    imgs/<NN-Scenario>/TYPO/<id>.jpg             the key phrase typed only

Each image type has its own text prompt: ``SD`` -> ``Rephrased Question(SD)``; ``SD_TYPO`` and
``TYPO`` -> ``Rephrased Question``; the ``text`` variant sends ``Question`` without an image.
The default variant is ``SD_TYPO`` (the benchmark's headline setting).
"""

from __future__ import annotations

from vlmguard.errors import InputError
from vlmguard.eval.benchmarks.base import BenchmarkData, BenchmarkOptions
from vlmguard.eval.benchmarks.reading import SampleCollector, images_folder, read_json_object, require_dir
from vlmguard.eval.sample import Expected, Sample
from vlmguard.taxonomy import RiskCategory

SCENARIOS: dict[str, RiskCategory] = {
    "01-Illegal_Activitiy": RiskCategory.ILLEGAL_ACTIVITY,
    "02-HateSpeech": RiskCategory.HATE_DISCRIMINATION,
    "03-Malware_Generation": RiskCategory.MALWARE,
    "04-Physical_Harm": RiskCategory.VIOLENCE_WEAPONS,
    "05-EconomicHarm": RiskCategory.LEGAL_FINANCIAL_ADVICE,
    "06-Fraud": RiskCategory.FRAUD_DECEPTION,
    "07-Sex": RiskCategory.SEXUAL_CONTENT,
    "08-Political_Lobbying": RiskCategory.POLITICAL,
    "09-Privacy_Violence": RiskCategory.PRIVACY,
    "10-Legal_Opinion": RiskCategory.LEGAL_FINANCIAL_ADVICE,
    "11-Financial_Advice": RiskCategory.LEGAL_FINANCIAL_ADVICE,
    "12-Health_Consultation": RiskCategory.HEALTH_ADVICE,
    "13-Gov_Decision": RiskCategory.POLITICAL,
}
"""The 13 scenarios (folder names as the benchmark spells them) and their taxonomy category."""

PROMPT_FIELD = {
    "SD": "Rephrased Question(SD)",
    "SD_TYPO": "Rephrased Question",
    "TYPO": "Rephrased Question",
    "text": "Question",
}
"""The question field that belongs to each image type."""


class MMSafetyBench:
    """MM-SafetyBench reader."""

    name = "mmsafetybench"
    kind = "safety"
    description = "MM-SafetyBench: 1,680 harmful questions in 13 scenarios, SD / SD_TYPO / TYPO images"
    variants = ("SD_TYPO", "SD", "TYPO", "text")

    def load(self, options: BenchmarkOptions) -> BenchmarkData:
        variant = options.variant or "SD_TYPO"
        field = PROMPT_FIELD[variant]
        questions = require_dir(options.data / "processed_questions", "MM-SafetyBench questions folder")
        images_root = options.images or options.data / "imgs"
        if variant != "text":
            images_folder(images_root, options, "MM-SafetyBench images folder")
        files = sorted(questions.glob("*.json"))
        if not files:
            raise InputError(f"no scenario files (*.json) in {questions}")
        found = SampleCollector(options)
        total = 0
        for file in files:
            scenario = file.stem
            category = SCENARIOS.get(scenario)
            if category is None:
                raise InputError(
                    f"{file.name} is not one of MM-SafetyBench's 13 scenarios ({', '.join(SCENARIOS)})"
                )
            for qid, fields in read_json_object(file).items():
                total += 1
                sample_id = f"{scenario}/{qid}"
                if not isinstance(fields, dict) or field not in fields:
                    raise InputError(f"{file}: item {qid} lacks the field {field!r}")
                common = dict(
                    id=sample_id,
                    benchmark=self.name,
                    category=category,
                    label=scenario,
                    expected=Expected.HARMFUL,
                    prompt=str(fields[field]),
                    question=str(fields.get("Question", "")) or None,
                    meta={"variant": variant, "key_phrase": fields.get("Key Phrase")},
                )
                if variant == "text":
                    found.add(Sample(**common))  # type: ignore[arg-type]
                    continue
                name = f"{scenario}/{variant}/{qid}.jpg"
                image = found.image(sample_id, images_root / name, name)
                if image is not None:
                    found.add(Sample(image_paths=[image], **common))  # type: ignore[arg-type]
        return found.result(
            self.name,
            "safety",
            variant=variant,
            total=total,
            source={"questions": str(questions), "images": str(images_root)},
        )

"""The shared risk taxonomy used by reports, perception, benchmarks, synthesis and metrics."""

from __future__ import annotations

import re
from enum import Enum


class RiskCategory(str, Enum):
    """Risk categories. Every component speaks in these names."""

    ILLEGAL_ACTIVITY = "illegal_activity"
    VIOLENCE_WEAPONS = "violence_weapons"
    SELF_HARM = "self_harm"
    SEXUAL_CONTENT = "sexual_content"
    HATE_DISCRIMINATION = "hate_discrimination"
    PRIVACY = "privacy"
    FRAUD_DECEPTION = "fraud_deception"
    DRUGS = "drugs"
    DANGEROUS_BEHAVIOR = "dangerous_behavior"
    MALWARE = "malware"
    HEALTH_ADVICE = "health_advice"
    LEGAL_FINANCIAL_ADVICE = "legal_financial_advice"
    POLITICAL = "political"
    PROMPT_INJECTION = "prompt_injection"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


# Labels used by public benchmarks and datasets, normalised (lower case, non-alphanumerics -> space).
_ALIASES: dict[str, RiskCategory] = {
    # FigStep SafeBench
    "illegal activity": RiskCategory.ILLEGAL_ACTIVITY,
    "illegal activitiy": RiskCategory.ILLEGAL_ACTIVITY,
    "hate speech": RiskCategory.HATE_DISCRIMINATION,
    "malware generation": RiskCategory.MALWARE,
    "physical harm": RiskCategory.VIOLENCE_WEAPONS,
    "fraud": RiskCategory.FRAUD_DECEPTION,
    "adult content": RiskCategory.SEXUAL_CONTENT,
    "privacy violation": RiskCategory.PRIVACY,
    "legal opinion": RiskCategory.LEGAL_FINANCIAL_ADVICE,
    "financial advice": RiskCategory.LEGAL_FINANCIAL_ADVICE,
    "health consultation": RiskCategory.HEALTH_ADVICE,
    # MM-SafetyBench scenarios
    "illegal activitiy scenario": RiskCategory.ILLEGAL_ACTIVITY,
    "malware generation scenario": RiskCategory.MALWARE,
    "economic harm": RiskCategory.LEGAL_FINANCIAL_ADVICE,
    "pornography": RiskCategory.SEXUAL_CONTENT,
    "political lobbying": RiskCategory.POLITICAL,
    "legal opinion scenario": RiskCategory.LEGAL_FINANCIAL_ADVICE,
    "gov decision": RiskCategory.POLITICAL,
    "government decision": RiskCategory.POLITICAL,
    # SIUO
    "self harm": RiskCategory.SELF_HARM,
    "dangerous behavior": RiskCategory.DANGEROUS_BEHAVIOR,
    "morality": RiskCategory.OTHER,
    "illegal activities and crime": RiskCategory.ILLEGAL_ACTIVITY,
    "controversial topics politics": RiskCategory.POLITICAL,
    "discrimination stereotyping": RiskCategory.HATE_DISCRIMINATION,
    "information misinterpretation": RiskCategory.FRAUD_DECEPTION,
    "religion beliefs": RiskCategory.HATE_DISCRIMINATION,
    "privacy violation ": RiskCategory.PRIVACY,
    # VLGuard
    "privacy": RiskCategory.PRIVACY,
    "risky behavior": RiskCategory.DANGEROUS_BEHAVIOR,
    "deception": RiskCategory.FRAUD_DECEPTION,
    "hateful speech": RiskCategory.HATE_DISCRIMINATION,
    "sexually explicit": RiskCategory.SEXUAL_CONTENT,
    "violence": RiskCategory.VIOLENCE_WEAPONS,
    "disinformation": RiskCategory.FRAUD_DECEPTION,
    "discrimination": RiskCategory.HATE_DISCRIMINATION,
    "political": RiskCategory.POLITICAL,
    "professional advice": RiskCategory.HEALTH_ADVICE,
    "sex": RiskCategory.SEXUAL_CONTENT,
    "drugs": RiskCategory.DRUGS,
    "drug": RiskCategory.DRUGS,
    "weapons": RiskCategory.VIOLENCE_WEAPONS,
    "self injury": RiskCategory.SELF_HARM,
    "suicide": RiskCategory.SELF_HARM,
    "injection": RiskCategory.PROMPT_INJECTION,
    "jailbreak": RiskCategory.PROMPT_INJECTION,
}


def _norm(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", label.lower()).strip()


def category_from_label(label: str) -> RiskCategory:
    """Map a category label (taxonomy name or a benchmark's own label) to a :class:`RiskCategory`.

    Labels such as ``"01-Illegal_Activitiy"`` or ``"Illegal Activity"`` are understood; unknown
    labels map to :attr:`RiskCategory.OTHER`.
    """
    norm = _norm(label)
    norm = re.sub(r"^\d+\s+", "", norm)  # "01 illegal activitiy" -> "illegal activitiy"
    for category in RiskCategory:
        if norm == _norm(category.value):
            return category
    if norm in _ALIASES:
        return _ALIASES[norm]
    for alias, category in _ALIASES.items():
        if alias and (norm.startswith(alias) or alias.startswith(norm)) and len(norm) >= 4:
            return category
    return RiskCategory.OTHER

"""The refusal message the guard writes itself when it does not call the target (names the risks found)."""

from __future__ import annotations

from vlmguard.types import RiskReport

_CATEGORY_WORDS = {
    "illegal_activity": "illegal activity",
    "violence_weapons": "violence or weapons",
    "self_harm": "self-harm",
    "sexual_content": "sexual content",
    "hate_discrimination": "hate or discrimination",
    "privacy": "privacy violations",
    "fraud_deception": "fraud or deception",
    "drugs": "illegal drugs",
    "dangerous_behavior": "dangerous behaviour",
    "malware": "malicious software or hacking",
    "health_advice": "medical decisions",
    "legal_financial_advice": "high-stakes legal or financial decisions",
    "political": "political manipulation",
    "prompt_injection": "instructions that try to bypass safety rules",
    "other": "potential harm",
}


def refusal_message(report: RiskReport) -> str:
    """A short refusal that names the risks found, with a pointer to safer help."""
    words = [_CATEGORY_WORDS.get(c.value, c.value) for c in report.categories] or ["potential harm"]
    risk = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    text = f"I can't help with this request because it involves {risk}."
    if any(c.value == "self_harm" for c in report.categories):
        text += (" If you are thinking about hurting yourself, please reach out to someone you trust"
                 " or a local"
                 " crisis line right now; you deserve support.")
    else:
        text += " If you have a related question that doesn't involve this harm, I'm glad to help with that."
    return text

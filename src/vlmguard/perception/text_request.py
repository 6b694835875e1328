"""The request structure of a text: whether it asks for something to be done, what, and whether it
points at (or asks to carry out) what an image shows. Regular expressions only; no model needed."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict


class RequestStructure(BaseModel):
    """Whether a text asks for something to be done, and what."""

    model_config = ConfigDict(frozen=True)
    is_request: bool = False
    """An imperative, a how-to question or a procedural heading ("Steps to ...", "List of methods ...")."""
    procedural: bool = False
    """The request asks for a procedure: steps, methods, ways, instructions, how to."""
    pattern: str | None = None
    """The phrase that made it a request (e.g. "steps to")."""
    act: str | None = None
    """What is asked for: the words after the request phrase (e.g. "manufacture illegal drugs")."""
    refers_to_image: bool = False
    """The text points at an image ("this image", "the list in the picture", "shown here")."""
    acts_on_image: bool = False
    """The text asks to complete, follow or carry out what an image shows (the typographic-attack pattern)."""


_REQUEST_PROCEDURAL = re.compile(
    r"\b(?P<pat>(?:detailed |step[- ]by[- ]step |specific |effective |best |easiest |quickest |simple )?"
    r"(?:steps?|ways?|methods?|instructions?|guide|guidelines|tutorial|tips?|techniques?|procedures?|"
    r"strateg(?:y|ies)|recipes?|plans?|tactics|tricks)\s*[:;,]?\s*(?:s\s+)?s?(?:to|for|on|of)|"
    r"how\s+(?:to|do|does|can|could|should|would|"
    r"might|did)|(?:best|easiest|fastest|quickest|cheapest|most effective|safest)\s+(?:way|method|place)s?"
    r"(?:\s+to)?|list\s*[:;,]?\s*(?:s\s+)?s?of(?:\s+(?:ways|methods|steps|tips|techniques))?|"
    r"what\s+(?:are|is)\s+the\s+"
    r"(?:steps|ways|methods|best practices?)|"
    r"where\s+(?:can|do|could)\s+(?:i|you|someone|one)\s+(?:buy|get|find))"
    r"\b\s*(?P<act>[^.?!\n]{0,160})",
    re.IGNORECASE,
)
_REQUEST_IMPERATIVE = re.compile(
    r"(?:^|[.!?\n]\s*|\b(?:please|now|then)\s+)"
    r"(?P<pat>write|create|make|build|generate|give|tell|show|explain|describe|"
    r"provide|list|help|teach|draft|design|develop|code|find|produce|compose|suggest|recommend|plan|outline|"
    r"detail|elaborate|complete|fill|continue|follow|answer|solve|read|translate|summari[sz]e|do|perform|"
    r"carry out)\b\s*(?P<act>[^.?!\n]{0,160})",
    re.IGNORECASE,
)
_REQUEST_INTENT = re.compile(
    r"\b(?P<pat>(?:can|could|would|will)\s+you|i\s+(?:want|need|plan|intend|am going|'m going)\s+to|"
    r"help\s+me|"
    r"teach\s+me|show\s+me)\b\s*(?P<act>[^.?!\n]{0,160})",
    re.IGNORECASE,
)
_IMAGE_REF = re.compile(
    r"\b(?:this|the|that|these|attached|above|following)\s+(?:image|picture|photo|photograph|figure|screenshot|"
    r"illustration|list|items?|text|steps|instructions|poster|sign|page|document|note)s?\b|\b(?:shown|depicted|"
    r"pictured|written|displayed)\s+(?:here|above|in|on)\b|\bin\s+the\s+(?:image|picture|photo)\b|"
    r"\b(?:this|that|it)\s*[.?!]?\s*$",
    re.IGNORECASE,
)
_ACTS_ON_IMAGE = re.compile(
    r"\b(?:generate|write|provide|give|fill(?:\s+in)?|complete|continue|finish|expand|elaborate(?:\s+on)?|answer|"
    r"follow|do|carry\s+out|execute|perform|implement|achieve|accomplish|achieving|doing|make|create|"
    r"explain how to|tell me how to|teach me|show me how)\b[^.?!\n]{0,80}?"
    r"\b(?:each|every|all|the|these|this|those|"
    r"that|it|its)\b[^.?!\n]{0,40}?\b(?:items?|list|steps|points|instructions?|text|question|request|task|image|"
    r"picture|photo|content|entries|blanks?|this|it|what)\b|\bitems?\s+(?:are|is)\s+empty\b|\bnumbered\s+1\b|"
    r"\b(?:do|doing|achieve|achieving|make|making|perform|performing|carry\s+out|accomplish|build|get|"
    r"getting)\s+(?:this|that|it|what\s+(?:is|it)\s+"
    r"(?:shown|says|written|depicted))\b",
    re.IGNORECASE,
)


_ABOUT_THE_ANSWER = re.compile(
    r"^(?:(?:it|this|that|them|the|a|an|your|its|and|or|then|also|with|of|to|for|in|on|give|provide|explain|"
    r"show|state|include|add|briefly|short|brief|concise|clear|detailed|rationale|reasons?|reasoning|"
    r"explanation|answers?|questions?|why|work|step[- ]by[- ]step|thinking|thoughts?|choices?|options?|"
    r"letter|correct|final|only|one|single|word|sentence|phrase|number)\b[\s,]*)+$",
    re.IGNORECASE,
)
"""An act that only asks for the answer to the question already asked ("answer it and give the
rationale", "explain your answer briefly"): it adds a request form but nothing to the request."""


_ANSWER_WORD = re.compile(
    r"\b(?:answers?|rationale|reasons?|reasoning|explanation|why|work|thinking|thoughts?)\b", re.IGNORECASE
)


def _asks_for_something(match: re.Match[str]) -> bool:
    """False for a request form that only asks for the answer ("answer it", "explain your reasoning")."""
    act = match.group("act").strip(" ,:;-")
    about_answer = match.group("pat").lower() == "answer" or _ANSWER_WORD.search(act) is not None
    return not (act and about_answer and _ABOUT_THE_ANSWER.match(act))


def request_structure(text: str) -> RequestStructure:
    """Detect the request structure of ``text`` (no model needed).

    An imperative that only asks for the answer to the text's own question ("Why are they wearing
    black? Answer it and give the rationale.") does not make the text a request for something; the
    question itself is judged as a question.
    """
    match = _REQUEST_PROCEDURAL.search(text)
    procedural = match is not None
    if match is None:
        # imperatives first, then intents ("can you ..."), as before answer-only forms were skipped
        candidates = [*_REQUEST_IMPERATIVE.finditer(text), *_REQUEST_INTENT.finditer(text)]
        match = next((m for m in candidates if _asks_for_something(m)), None)
        answer_request = match is None and bool(candidates)
    else:
        answer_request = False
    refers = _IMAGE_REF.search(text) is not None
    acts = _ACTS_ON_IMAGE.search(text) is not None
    if match is None:
        is_question = text.rstrip().endswith("?") or answer_request
        return RequestStructure(is_request=is_question, refers_to_image=refers, acts_on_image=acts and refers)
    act = re.sub(r"\s+", " ", match.group("act")).strip(" ,:;-") or None
    return RequestStructure(
        is_request=True,
        procedural=procedural,
        pattern=re.sub(r"\s+", " ", match.group("pat").lower()).strip(),
        act=act,
        refers_to_image=refers,
        acts_on_image=acts and refers,
    )


def phrased_as_request(structure: RequestStructure) -> bool:
    """A request phrased as an imperative, a how-to or a procedural heading (a plain question is not)."""
    return structure.pattern is not None

"""Data that crosses a boundary: messages, generation config, completions, risk reports, rewrites.

All models are pydantic and validated. Image bytes never appear in ``repr`` or logs: an
:class:`ImageData` shows only its format, size and content hash.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from vlmguard.taxonomy import RiskCategory


class ImageData(BaseModel):
    """A decoded and validated image: raw bytes plus metadata.

    Build it with :func:`vlmguard.images.load_image`.
    """

    model_config = ConfigDict(frozen=True)

    data: bytes = Field(repr=False)
    mime: str
    width: int
    height: int
    sha256: str
    frames: int = 1

    @field_serializer("data")
    def _ser_data(self, data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    @field_validator("data", mode="before")
    @classmethod
    def _val_data(cls, value: Any) -> Any:
        if isinstance(value, str):
            return base64.b64decode(value)
        return value

    def data_uri(self) -> str:
        """The image as a ``data:`` URI, as OpenAI-compatible servers accept it."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def to_pil(self) -> Any:
        """Decode to an RGB ``PIL.Image`` (first frame, transparency composited on white)."""
        from vlmguard.images import to_pil

        return to_pil(self)

    def __str__(self) -> str:
        return f"<image {self.mime} {self.width}x{self.height} sha256:{self.sha256[:12]}>"


class TextPart(BaseModel):
    """A piece of text in a message."""

    model_config = ConfigDict(frozen=True)
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image in a message."""

    model_config = ConfigDict(frozen=True)
    type: Literal["image"] = "image"
    image: ImageData


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]
Role = Literal["system", "user", "assistant"]


class Turn(BaseModel):
    """An earlier turn of a conversation, as a guard reads it: untrusted content, never instructions."""

    model_config = ConfigDict(frozen=True)
    role: Literal["user", "assistant"]
    text: str
    images: tuple[ImageData, ...] = ()
    index: int = Field(ge=0)
    """The turn's position in the conversation (0-based, over its user and assistant messages)."""


class Message(BaseModel):
    """One chat message: a role and an ordered list of text and image parts."""

    model_config = ConfigDict(frozen=True)
    role: Role
    content: list[Part]

    @classmethod
    def user(cls, text: str, *images: ImageData) -> Message:
        """A user message with the images first, then the text (the order VLM chat templates expect)."""
        parts: list[TextPart | ImagePart] = [ImagePart(image=img) for img in images]
        parts.append(TextPart(text=text))
        return cls(role="user", content=parts)

    @classmethod
    def system(cls, text: str) -> Message:
        return cls(role="system", content=[TextPart(text=text)])

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls(role="assistant", content=[TextPart(text=text)])

    @property
    def text(self) -> str:
        """All text parts joined by blank lines."""
        return "\n\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImageData]:
        return [p.image for p in self.content if isinstance(p, ImagePart)]

    def with_text(self, text: str) -> Message:
        """A copy with every text part replaced by one text part ``text``, images kept in place."""
        parts: list[TextPart | ImagePart] = [p for p in self.content if isinstance(p, ImagePart)]
        parts.append(TextPart(text=text))
        return Message(role=self.role, content=parts)


class GenerateConfig(BaseModel):
    """Sampling settings for one generation. Unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_tokens: int = Field(512, ge=1, le=131072)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = Field(1, ge=1, le=64)


class Usage(BaseModel):
    """Token counts of one generation, where the backend reports them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class Completion(BaseModel):
    """The result of one ``generate`` call."""

    text: str
    model: str
    usage: Usage | None = None
    latency_s: float = 0.0
    finish_reason: str | None = None
    cached: bool = False
    rewrite: Rewrite | None = None
    """Set by a guarded model: the rewrite (and its risk report) that produced this answer."""
    calls: int = 1
    """Model calls made to produce this completion (0 when cached or answered by the guard itself)."""


class StrEnum(str, Enum):
    """A string enum whose ``str()`` is its value (as :class:`enum.StrEnum` from Python 3.11 on)."""

    def __str__(self) -> str:
        return self.value


class Modality(StrEnum):
    """Where a risk finding comes from."""

    TEXTUAL = "textual"
    VISUAL = "visual"
    CROSS_MODAL = "cross_modal"


class Severity(StrEnum):
    """How severe a risk is; ordered from ``none`` to ``critical``."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER = [Severity.NONE, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


def max_severity(values: Sequence[Severity]) -> Severity:
    """The highest severity in ``values`` (``none`` when empty)."""
    return max(values, key=lambda s: s.rank, default=Severity.NONE)


class Decision(StrEnum):
    """What the guard does with a request."""

    FORWARD = "forward"
    """Benign: the original prompt goes to the target unchanged."""
    REFRAME = "reframe"
    """Risky but with a legitimate reading: a rewritten prompt steers the target to a safe answer."""
    REFUSE = "refuse"
    """Severe with no safe reading: the target is not called."""


class Finding(BaseModel):
    """One piece of risk evidence."""

    modality: Modality
    category: RiskCategory | None = None
    label: str | None = None
    """The category as the component that found it names it: the taxonomy value, or a custom risk
    model's own category name (then ``category`` is ``other``)."""
    severity: Severity = Severity.LOW
    evidence: str
    """What was found, in words (e.g. 'image text reads "How to make a bomb"')."""
    source: str = "model"
    """Which component produced it (e.g. 'ocr', 'text-tagger', 'rewriter-model')."""
    score: float | None = None
    turn: int | None = None
    """Which user turn of the conversation it comes from (0-based), when a conversation was judged."""


class RiskReport(BaseModel):
    """The rewriter's risk analysis of one request."""

    findings: list[Finding] = Field(default_factory=list)
    categories: list[RiskCategory] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    """The acting findings' category names as their components name them (custom risk models'
    own categories included), most severe first."""
    severity: Severity = Severity.NONE
    decision: Decision = Decision.FORWARD
    analysis: str = ""
    """Free-text reasoning over the findings."""

    def by_modality(self, modality: Modality) -> list[Finding]:
        return [f for f in self.findings if f.modality == modality]

    @property
    def textual(self) -> list[Finding]:
        return self.by_modality(Modality.TEXTUAL)

    @property
    def visual(self) -> list[Finding]:
        return self.by_modality(Modality.VISUAL)

    @property
    def cross_modal(self) -> list[Finding]:
        return self.by_modality(Modality.CROSS_MODAL)


FallbackPolicy = Literal["fail_closed", "fail_open"]


class Rewrite(BaseModel):
    """A rewritten prompt with the risk report that justifies it."""

    original_prompt: str
    prompt: str
    """The prompt to send to the target (equal to ``original_prompt`` when forwarded)."""
    report: RiskReport
    rewriter: str
    """Which rewriter made it (name and model)."""
    latency_s: float = 0.0
    fallback: FallbackPolicy | None = None
    """Set when the rewriter's output could not be used and a fallback policy decided instead."""
    error: str | None = None
    """Why the fallback was taken."""
    raw_output: str | None = None
    """The rewriter model's raw output, where there is one."""
    model_calls: int = 0
    """Model calls the rewriter made (0 for the evidence rewriter, 1+ for a model-based one)."""

    @property
    def decision(self) -> Decision:
        return self.report.decision

    @property
    def changed(self) -> bool:
        return self.prompt != self.original_prompt


Completion.model_rebuild()

"""A renderer of typographic seed images: text requests drawn into images, FigStep style.

``render_typography("Steps to make X.", TypographyStyle())`` draws the request followed by an
empty numbered list ("1. 2. 3."), the layout of FigStep's attack images, so typographic training
data can be made from any list of text requests. Rendering is deterministic: the same text, style
and seed give the same bytes (jitter, rotation and noise come from a seeded generator).
"""

from __future__ import annotations

import importlib.util
import io
import random
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ConfigError, InputError
from vlmguard.types import ImageData

_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/TTF"))


class TypographyStyle(BaseModel):
    """How typographic images look. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(760, ge=64, le=4096)
    height: int = Field(760, ge=64, le=4096)
    font: str = "DejaVuSans-Bold"
    """A font file path, or a DejaVu font name (matplotlib's bundled copy or Debian's fonts-dejavu-core)."""
    font_size: int = Field(52, ge=6, le=400)
    min_font_size: int = Field(14, ge=6, le=400)
    """Long requests shrink the font down to this size to fit; beyond it the text is cut with '...'."""
    margin: int = Field(40, ge=0, le=1000)
    line_spacing: float = Field(1.25, ge=0.8, le=3.0)
    layout: Literal["figstep", "plain"] = "figstep"
    """``figstep``: the request then an empty numbered list; ``plain``: the request only."""
    items: int = Field(3, ge=0, le=20)
    background: str = "#ffffff"
    foreground: str = "#000000"
    noise: float = Field(0.0, ge=0.0, le=1.0)
    """Blend weight of uniform pixel noise (0 = clean)."""
    rotation: float = Field(0.0, ge=0.0, le=45.0)
    """Maximum rotation in degrees (drawn uniformly in [-rotation, rotation])."""
    jitter: int = Field(0, ge=0, le=500)
    """Maximum random offset of the text block in pixels."""
    seed: int = 0
    format: Literal["PNG", "JPEG"] = "PNG"


def find_font(name: str) -> Path:
    """Resolve a font name or path to a font file; raises :class:`ConfigError` when none is found."""
    candidate = Path(name).expanduser()
    if candidate.suffix.lower() in (".ttf", ".otf"):
        if candidate.is_file():
            return candidate
        raise ConfigError(f"font file not found: {candidate}")
    filename = name if name.lower().endswith((".ttf", ".otf")) else f"{name}.ttf"
    for folder in _font_dirs():
        path = folder / filename
        if path.is_file():
            return path
    raise ConfigError(
        f"font {name!r} not found in {', '.join(str(d) for d in _font_dirs()) or 'any font folder'}; "
        "install matplotlib or fonts-dejavu-core, or give a .ttf path"
    )


def _font_dirs() -> list[Path]:
    dirs: list[Path] = []
    spec = importlib.util.find_spec("matplotlib")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            dirs.append(Path(loc) / "mpl-data" / "fonts" / "ttf")
    dirs.extend(_FONT_DIRS)
    return [d for d in dirs if d.is_dir()]


@lru_cache(maxsize=64)
def _load_font(path: str, size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


def _wrap(draw: Any, text: str, font: Any, max_width: int) -> list[str]:
    """Greedy word wrap; a word longer than a line is split by characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            trial = f"{current} {word}".strip()
            if draw.textlength(trial, font=font) <= max_width:
                current = trial
                continue
            if current:
                lines.append(current)
            current = word
            while draw.textlength(current, font=font) > max_width and len(current) > 1:
                cut = len(current) - 1
                while cut > 1 and draw.textlength(current[:cut], font=font) > max_width:
                    cut -= 1
                lines.append(current[:cut])
                current = current[cut:]
        lines.append(current)
    return lines


def _layout(draw: Any, text: str, style: TypographyStyle, font_path: str) -> tuple[Any, list[str], int]:
    """Pick the largest font size at which the text fits; returns (font, lines, line height)."""
    max_w = style.width - 2 * style.margin
    max_h = style.height - 2 * style.margin
    list_lines = [f"{i}." for i in range(1, style.items + 1)] if style.layout == "figstep" else []
    size = style.font_size
    while True:
        font = _load_font(font_path, size)
        line_h = max(1, int(size * style.line_spacing))
        lines = _wrap(draw, text, font, max_w) + list_lines
        if len(lines) * line_h <= max_h or size <= style.min_font_size:
            break
        size = max(style.min_font_size, int(size * 0.9))
    fits = max(1, max_h // line_h)
    if len(lines) > fits:  # still too long at the smallest size: keep the list, cut the request
        keep = max(1, fits - len(list_lines))
        lines = [*lines[: keep - 1], lines[keep - 1].rstrip() + "...", *list_lines][:fits]
    return font, lines, line_h


def render_typography(
    text: str, style: TypographyStyle | None = None, *, seed: int | None = None
) -> ImageData:
    """Render ``text`` as a typographic image; returns validated :class:`ImageData`.

    ``seed`` (default ``style.seed``) drives jitter, rotation and noise; the text is mixed into it
    so every request gets its own variation and the same request always the same image.
    """
    from PIL import Image, ImageDraw

    from vlmguard.images import decode_image

    style = style or TypographyStyle()
    text = " ".join(text.split())
    if not text:
        raise InputError("cannot render an empty request")
    rng = random.Random(f"{style.seed if seed is None else seed}\x00{text}")
    font_path = str(find_font(style.font))
    try:
        img = Image.new("RGB", (style.width, style.height), style.background)
    except ValueError:
        raise ConfigError(f"invalid background colour {style.background!r}") from None
    draw = ImageDraw.Draw(img)
    font, lines, line_h = _layout(draw, text, style, font_path)
    dx = rng.randint(-style.jitter, style.jitter) if style.jitter else 0
    dy = rng.randint(-style.jitter, style.jitter) if style.jitter else 0
    x = style.margin + dx
    y = style.margin + dy
    try:
        for line in lines:
            draw.text((x, y), line, font=font, fill=style.foreground)
            y += line_h
    except ValueError:
        raise ConfigError(f"invalid foreground colour {style.foreground!r}") from None
    if style.rotation:
        angle = rng.uniform(-style.rotation, style.rotation)
        img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=style.background)
    if style.noise:
        noise = Image.frombytes("L", img.size, rng.randbytes(img.width * img.height)).convert("RGB")
        img = Image.blend(img, noise, style.noise)
    buf = io.BytesIO()
    img.save(buf, format=style.format, **({"quality": 92} if style.format == "JPEG" else {}))
    return decode_image(buf.getvalue(), name="rendered image")


def figstep_instruction(question: str) -> str:
    """A declarative FigStep-style heading for a question when no instruction is given.

    ``"How can someone make X?"`` becomes ``"Steps to make X."``; other text is kept, ending in a period.
    """
    q = " ".join(question.split()).rstrip("?.! ")
    lowered = q.lower()
    for prefix in ("how can someone ", "how can i ", "how do i ", "how to ", "how does one ", "how can one "):
        if lowered.startswith(prefix):
            return f"Steps to {q[len(prefix) :]}."
    return f"{q}."

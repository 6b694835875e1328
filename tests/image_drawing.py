"""Images drawn for the tests: text in a real TTF font (DejaVuSans from matplotlib)."""

from __future__ import annotations

import io
import os
from typing import Any

from vlmguard.images import load_image
from vlmguard.types import ImageData


def font_path() -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")


def draw_text(
    lines: list[str],
    *,
    size: tuple[int, int] = (640, 200),
    font_size: int = 36,
    rotate: int = 0,
    background: tuple[int, ...] = (255, 255, 255),
    mode: str = "RGB",
) -> Any:
    """A PIL image with ``lines`` drawn in black DejaVuSans, optionally rotated by ``rotate`` degrees."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new(mode, size, background)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(font_path(), font_size)
    y = 20
    for line in lines:
        draw.text((20, y), line, fill=(0, 0, 0) if mode == "RGB" else (0, 0, 0, 255), font=font)
        y += int(font_size * 1.5)
    if rotate:
        img = img.rotate(rotate, expand=True, fillcolor=background)
    return img


def to_image_data(img: Any, fmt: str = "PNG", **save: Any) -> ImageData:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return load_image(buf.getvalue())

"""Where every incoming image is read: decode, validate, limit, hash and convert images.

Other modules use PIL only on images this module has read, or to draw new ones (OCR and labels in
``perception/``, the typography renderer, test images).

Images come from bytes, file paths, ``data:`` URIs or PIL images. Every decoded image is
checked against :class:`ImageLimits` *before* its pixels are decoded, so decompression bombs
are refused cheaply, and a data URI whose declared type disagrees with its content is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlmguard.errors import ImageError
from vlmguard.types import ImageData

SUPPORTED_FORMATS: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
_TOO_LARGE = "image_too_large"
"""The :class:`ImageError` code of an image over a size or pixel limit (others are ``invalid_image``)."""
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I
)


class ImageLimits(BaseModel):
    """Limits every image must meet."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    max_pixels: int = Field(40_000_000, ge=1)
    """Width x height of the largest frame. Larger images are refused as potential decompression bombs."""
    min_side: int = Field(1, ge=1)


DEFAULT_LIMITS = ImageLimits()


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes,
    *,
    limits: ImageLimits = DEFAULT_LIMITS,
    declared_mime: str | None = None,
    name: str = "image",
) -> ImageData:
    """Validate ``data`` as an image and return an :class:`ImageData`.

    Raises :class:`ImageError` for empty, oversized, corrupt or unsupported data, for images over
    ``limits.max_pixels`` (checked from the header before any pixel is decoded), and when
    ``declared_mime`` disagrees with the content.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"{name} is {_human(len(data))}, over the limit of {_human(limits.max_bytes)}", code=_TOO_LARGE
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or ""
            width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name} refused as a decompression bomb: {exc}", code=_TOO_LARGE) from None
    except UnidentifiedImageError:
        supported = ", ".join(SUPPORTED_FORMATS)
        raise ImageError(f"{name} is not a recognised image (supported: {supported})") from None
    except Exception as exc:
        raise ImageError(f"{name} could not be read: {exc}") from None
    if fmt not in SUPPORTED_FORMATS:
        supported = ", ".join(SUPPORTED_FORMATS)
        raise ImageError(f"{name} has unsupported format {fmt or 'unknown'} (supported: {supported})")
    mime = SUPPORTED_FORMATS[fmt]
    if declared_mime is not None:
        declared = _MIME_ALIASES.get(declared_mime.lower(), declared_mime.lower())
        if declared != mime:
            raise ImageError(f"{name} is declared as {declared_mime} but its content is {mime}")
    if width * height > limits.max_pixels:
        raise ImageError(
            f"{name} is {width}x{height} = {width * height:,} pixels, "
            f"over the limit of {limits.max_pixels:,} "
            "(refused as a potential decompression bomb)",
            code=_TOO_LARGE,
        )
    if min(width, height) < limits.min_side:
        raise ImageError(f"{name} is {width}x{height}, smaller than {limits.min_side} px on a side")
    frames = int(getattr(img, "n_frames", 1) or 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()  # decodes the first frame fully: catches truncated and corrupt data
    except Exception as exc:
        raise ImageError(f"{name} is corrupt or truncated: {exc}") from None
    finally:
        img.close()
    return ImageData(
        data=data, mime=mime, width=width, height=height, sha256=sha256_bytes(data), frames=frames
    )


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of the image in ``data``, read from its header (no pixel is decoded).

    Raises :class:`ImageError` when ``data`` is not a recognised image.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image refused as a decompression bomb: {exc}", code=_TOO_LARGE) from None
    except Exception:
        supported = ", ".join(SUPPORTED_FORMATS)
        raise ImageError(f"image is not a recognised image (supported: {supported})") from None
    return int(width), int(height)


def parse_data_uri(uri: str) -> tuple[str | None, bytes]:
    """Split a ``data:`` URI into its declared MIME type and decoded bytes."""
    match = _DATA_URI.match(uri)
    if not match:
        raise ImageError("not a valid data URI (expected data:image/<type>;base64,<data>)")
    payload = uri[match.end() :]
    if not match.group("b64"):
        raise ImageError("data URI must be base64-encoded")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("data URI holds invalid base64") from None
    return match.group("mime"), data


def load_image(
    source: ImageData | bytes | str | Path | Any, *, limits: ImageLimits = DEFAULT_LIMITS
) -> ImageData:
    """Load and validate an image from bytes, a path, a ``data:`` URI or a PIL image.

    Remote URLs are not fetched here: that is the caller's decision (see the server's fetcher).
    """
    if isinstance(source, ImageData):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        return decode_image(bytes(source), limits=limits)
    if isinstance(source, str) and source.startswith("data:"):
        mime, data = parse_data_uri(source)
        return decode_image(data, limits=limits, declared_mime=mime, name="data URI image")
    if isinstance(source, str) and re.match(r"^https?://", source):
        raise ImageError("remote image URLs are not fetched here; download the image or pass a data URI")
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        if not path.exists():
            raise ImageError(f"image file not found: {path}")
        if not path.is_file():
            raise ImageError(f"not a file: {path}")
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise ImageError(
                f"{path} is {_human(size)}, over the limit of {_human(limits.max_bytes)}", code=_TOO_LARGE
            )
        return decode_image(path.read_bytes(), limits=limits, name=str(path))
    if hasattr(source, "save") and hasattr(source, "size"):  # a PIL image
        buf = io.BytesIO()
        img = source
        if img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            img = img.convert("RGB")
        img.save(buf, format="PNG")
        return decode_image(buf.getvalue(), limits=limits)
    raise ImageError(f"cannot load an image from {type(source).__name__}")


def to_pil(image: ImageData) -> Any:
    """Decode ``image`` to an RGB PIL image: first frame, transparency composited on white."""
    from PIL import Image

    img = Image.open(io.BytesIO(image.data))
    img.seek(0)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return img.convert("RGB")


def resize_max_side(image: ImageData, max_side: int) -> ImageData:
    """A copy of ``image`` whose longer side is at most ``max_side`` (unchanged when already smaller)."""
    from PIL import Image

    if max(image.width, image.height) <= max_side:
        return image
    img = to_pil(image)
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return decode_image(buf.getvalue())

"""Loading the images of one chat request within the limits of one image and of the whole request.

Every image's bytes are read (``data:`` URIs; remote URLs only through the :class:`ImageFetcher`)
and their sizes taken from the headers *before* any pixel is decoded: a request whose images hold
more than ``max_request_pixels`` in all is refused (400 ``image_budget_exceeded``) at the cost of
reading headers. The images are then decoded one at a time, so a request holds one decoded image
in memory at once, whatever its number of images.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from vlmguard.errors import ImageError
from vlmguard.images import ImageLimits, decode_image, image_size, parse_data_uri
from vlmguard.server.errors import ProxyError, proxy_error
from vlmguard.server.fetch import ImageFetcher
from vlmguard.server.wire import ChatCompletionRequest, ImageContentPart, OtherContentPart
from vlmguard.types import ImageData

_THREAD_DECODE_BYTES = 256 * 1024


@dataclass(frozen=True)
class ImageRef:
    """One ``image_url`` part: its message and part index and its URL."""

    message: int
    part: int
    url: str

    @property
    def param(self) -> str:
        return f"messages.{self.message}.content.{self.part}.image_url"


def image_refs(request: ChatCompletionRequest) -> list[ImageRef]:
    """The request's image parts in order; a 400 for a part type the guard cannot read in a user turn."""
    found: list[ImageRef] = []
    for mi, message in enumerate(request.messages):
        if not isinstance(message.content, list):
            continue
        for pi, part in enumerate(message.content):
            if isinstance(part, ImageContentPart):
                found.append(ImageRef(mi, pi, part.image_url.url))
            elif isinstance(part, OtherContentPart) and message.role == "user":
                raise ProxyError(
                    400,
                    f"content part type {part.type!r} is not supported by the guard (text and image_url are)",
                    code="unsupported_content",
                    param=f"messages.{mi}.content.{pi}.type",
                )
    return found


def _image_error(exc: ImageError, ref: ImageRef) -> ProxyError:
    return proxy_error(exc, param=ref.param)


class RequestImageLoader:
    """Reads, budgets and decodes the images of a request (see the module docstring)."""

    def __init__(
        self, fetcher: ImageFetcher, limits: ImageLimits, *, max_images: int, max_request_pixels: int
    ) -> None:
        self.fetcher = fetcher
        self.limits = limits
        self.max_images = max_images
        self.max_request_pixels = max_request_pixels

    async def load(self, refs: list[ImageRef]) -> dict[tuple[int, int], ImageData]:
        """The decoded images of ``refs`` by (message, part) index, or a 400 :class:`ProxyError`."""
        if len(refs) > self.max_images:
            raise ProxyError(
                400,
                f"{len(refs)} images, over the limit of {self.max_images}",
                code="too_many_images",
                param="messages",
            )
        raw = await asyncio.gather(*(self._read(ref) for ref in refs))
        total = 0
        for ref, (_, data) in zip(refs, raw, strict=True):
            try:
                width, height = image_size(data)
            except ImageError as exc:
                raise _image_error(exc, ref) from None
            total += width * height
        if total > self.max_request_pixels:
            raise ProxyError(
                400,
                f"the request's {len(refs)} images hold {total:,} pixels in all, over the budget of "
                f"{self.max_request_pixels:,} per request; send fewer or smaller images",
                code="image_budget_exceeded",
                param="messages",
            )
        out: dict[tuple[int, int], ImageData] = {}
        for ref, (mime, data) in zip(refs, raw, strict=True):
            try:
                out[(ref.message, ref.part)] = await self._decode(data, mime)
            except ImageError as exc:
                raise _image_error(exc, ref) from None
        return out

    async def _read(self, ref: ImageRef) -> tuple[str | None, bytes]:
        try:
            if ref.url.startswith("data:"):
                if len(ref.url) > _THREAD_DECODE_BYTES:  # base64 of a large image: off the event loop
                    mime, data = await asyncio.to_thread(parse_data_uri, ref.url)
                else:
                    mime, data = parse_data_uri(ref.url)
            elif ref.url.lower().startswith(("http://", "https://")):
                data, _ = await self.fetcher.fetch(ref.url)
                mime = None
            else:
                raise ImageError("image_url must be a data: URI or an http(s):// URL")
            if not data:
                raise ImageError("image is empty (0 bytes)")
            if len(data) > self.limits.max_bytes:
                raise ImageError(
                    f"image is {len(data):,} bytes, over the limit of {self.limits.max_bytes:,}",
                    code="image_too_large",
                )
        except ImageError as exc:
            raise _image_error(exc, ref) from None
        return mime, data

    async def _decode(self, data: bytes, mime: str | None) -> ImageData:
        if len(data) > _THREAD_DECODE_BYTES:
            return await asyncio.to_thread(
                decode_image, data, limits=self.limits, declared_mime=mime, name="image"
            )
        return decode_image(data, limits=self.limits, declared_mime=mime, name="image")

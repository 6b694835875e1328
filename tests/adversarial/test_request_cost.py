"""Cost amplification: a pixel budget per request and bounded analysis lanes (no unbounded waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from proxy_helpers import FORWARD_REPORT, chat_body, config, data_uri, tiny_png

from vlmguard.server.errors import ProxyError
from vlmguard.server.service import GuardService
from vlmguard.types import ImageData, Rewrite


class GatedRewriter:
    """Holds every rewrite until ``release`` is set; counts the rewrites started."""

    name = "gated"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def rewrite(self, prompt: str, images: Sequence[ImageData] = ()) -> Rewrite:
        self.started += 1
        await self.release.wait()
        return Rewrite(original_prompt=prompt, prompt=prompt, report=FORWARD_REPORT, rewriter=self.name)


def service(rewriter: GatedRewriter, **overrides: object) -> GuardService:
    return GuardService(config(rate_limit=None, **overrides), rewriter, None)  # type: ignore[arg-type]


IMAGE = data_uri(tiny_png(8, 8))


async def _until(predicate: object, *, steps: int = 200) -> None:
    for _ in range(steps):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_full_image_lane_answers_503_with_retry_after_and_text_is_not_held() -> None:
    rewriter = GatedRewriter()
    svc = service(rewriter, admission__image={"concurrency": 1, "max_waiting": 1})
    running = asyncio.create_task(svc.guard(chat_body("a", IMAGE), client_key="k1"))
    waiting = asyncio.create_task(svc.guard(chat_body("b", IMAGE), client_key="k2"))
    await _until(lambda: rewriter.started == 1 and svc.admission.image.waiting == 1)
    with pytest.raises(ProxyError) as full:
        await svc.guard(chat_body("c", IMAGE), client_key="k3")
    assert full.value.status == 503 and full.value.code == "analysis_queue_full"
    assert int(full.value.headers["Retry-After"]) >= 1
    text = asyncio.create_task(svc.guard(chat_body("plain text"), client_key="k3"))
    await _until(lambda: rewriter.started == 2)  # the text request got its own slot at once
    assert svc.admission.image.waiting == 1
    rewriter.release.set()
    results = await asyncio.gather(running, waiting, text)
    assert [r.rewrite.prompt for r in results] == ["a", "b", "plain text"]
    assert svc.admission.image.running == 0 and svc.admission.image.waiting == 0


async def test_one_key_cannot_fill_the_image_lane() -> None:
    rewriter = GatedRewriter()
    svc = service(rewriter, admission__image={"concurrency": 1, "max_waiting": 8, "max_pending_per_key": 1})
    first = asyncio.create_task(svc.guard(chat_body("a", IMAGE), client_key="greedy"))
    await _until(lambda: rewriter.started == 1)
    with pytest.raises(ProxyError) as more:
        await svc.guard(chat_body("b", IMAGE), client_key="greedy")
    assert more.value.status == 429 and more.value.code == "too_many_pending_requests"
    assert "Retry-After" in more.value.headers
    other = asyncio.create_task(svc.guard(chat_body("c", IMAGE), client_key="polite"))
    await _until(lambda: svc.admission.image.waiting == 1)
    rewriter.release.set()
    await asyncio.gather(first, other)


async def test_waiting_past_the_limit_is_a_503() -> None:
    rewriter = GatedRewriter()
    svc = service(rewriter, admission={"image": {"concurrency": 1, "max_waiting": 4}, "max_wait_s": 0.01})
    first = asyncio.create_task(svc.guard(chat_body("a", IMAGE)))
    await _until(lambda: rewriter.started == 1)
    with pytest.raises(ProxyError) as late:
        await svc.guard(chat_body("b", IMAGE))
    assert late.value.status == 503 and late.value.code == "analysis_queue_timeout"
    rewriter.release.set()
    await first
    assert svc.admission.image.waiting == 0


async def test_request_pixel_budget_is_checked_before_decoding() -> None:
    rewriter = GatedRewriter()
    rewriter.release.set()
    svc = service(rewriter, limits={"max_request_pixels": 10_000, "max_images": 8})
    ok = await svc.guard(chat_body("fits", data_uri(tiny_png(50, 50)), data_uri(tiny_png(50, 50))))
    assert ok.rewrite.prompt == "fits"
    # a truncated 200x200 PNG: decoding would fail (invalid_image), the budget refuses it first
    header_only = tiny_png(200, 200)[:-30]
    with pytest.raises(ProxyError) as over:
        await svc.guard(chat_body("too much", data_uri(tiny_png(50, 50)), data_uri(header_only)))
    assert over.value.status == 400 and over.value.code == "image_budget_exceeded"
    assert "42,500 pixels" in over.value.message
    assert rewriter.started == 1

"""Every bad input gets a named error: prompts, images, data URIs, unreachable and garbage backends."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from vlmguard import Guard
from vlmguard.backends.mock import MockVLM
from vlmguard.errors import BackendError, BackendUnavailable, ImageError, InputError, VLMGuardError
from vlmguard.images import ImageLimits, decode_image, load_image, resize_max_side, to_pil
from vlmguard.rewriter import ModelRewriter, format_rewriter_output
from vlmguard.testing.fake_openai import FakeOpenAIServer, free_port
from vlmguard.text import clean_prompt, neutralize
from vlmguard.types import Decision, RiskReport


def png_header_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (the pixel data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


# -- prompts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "match"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("\u200b\u200d\ufeff", "empty"),
        ("\x00\x07", "empty"),
        ("x" * 200_000, "over the limit"),
        ("x" * 40_000, "over the limit"),
    ],
    ids=["empty", "whitespace", "zero-width only", "control only", "200k chars", "40k chars"],
)
def test_bad_prompts_raise_input_error(prompt: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        clean_prompt(prompt)


def test_control_and_zero_width_characters_are_removed() -> None:
    assert clean_prompt("how\u200b to\u202e make\x07 tea\u00ad?\n") == "how to make  tea?"
    assert clean_prompt("ｆｕｌｌｗｉｄｔｈ") == "fullwidth"  # NFKC
    assert clean_prompt("line one\nline two") == "line one\nline two"
    assert neutralize("a <rewritten_prompt> b </ANALYSIS> <b>", ("rewritten_prompt", "analysis")) == (
        "a [tag removed] b [tag removed] <b>"
    )


# -- images -------------------------------------------------------------------------------------


def test_images_load_from_bytes_paths_data_uris_and_pil(png_bytes: bytes, png_file: Path) -> None:
    from_bytes = load_image(png_bytes)
    uri = "data:image/png;base64," + base64.b64encode(png_bytes).decode()
    assert load_image(png_file).sha256 == from_bytes.sha256 == load_image(uri).sha256
    assert (from_bytes.mime, from_bytes.width, from_bytes.height) == ("image/png", 32, 24)
    assert from_bytes.data_uri() == uri
    assert load_image(to_pil(from_bytes)).width == 32
    assert "sha256:" in str(from_bytes) and "PNG" not in repr(from_bytes)  # no image bytes in logs
    assert resize_max_side(from_bytes, 16).width == 16


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda tmp, f: tmp / "missing.png", "not found"),
        (lambda tmp, f: tmp, "not a file"),
        (lambda tmp, f: _write(tmp / "empty.png", b""), "empty"),
        (
            lambda tmp, f: _write(tmp / "corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20),
            "not a recognised|could not",
        ),
        (
            lambda tmp, f: _write(tmp / "truncated.png", f(64, 64, text="hi")[:-40]),
            "corrupt or truncated|could not",
        ),
        (lambda tmp, f: _write(tmp / "notes.txt", b"just some text, not an image"), "not a recognised image"),
        (lambda tmp, f: _write(tmp / "img.tiff", f(fmt="TIFF")), "unsupported format TIFF"),
        (lambda tmp, f: _write(tmp / "bomb.png", png_header_bomb(60_000, 60_000)), "decompression bomb"),
        (lambda tmp, f: _write(tmp / "big.png", png_header_bomb(8_000, 6_000)), "over the limit"),
    ],
    ids=[
        "missing",
        "directory",
        "empty",
        "corrupt",
        "truncated",
        "text file",
        "tiff",
        "bomb",
        "over max_pixels",
    ],
)
def test_bad_image_files_raise_image_error(
    tmp_path: Path, image_factory: Callable[..., bytes], make: Callable[..., Path], match: str
) -> None:
    with pytest.raises(ImageError, match=match):
        load_image(make(tmp_path, image_factory))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_size_limits(png_bytes: bytes) -> None:
    with pytest.raises(ImageError, match="over the limit of 50 B"):
        decode_image(png_bytes, limits=ImageLimits(max_bytes=50))
    with pytest.raises(ImageError, match="pixels, over the limit"):
        decode_image(png_bytes, limits=ImageLimits(max_pixels=100))
    with pytest.raises(ImageError, match="smaller than"):
        decode_image(png_bytes, limits=ImageLimits(min_side=30))


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("data:image/jpeg;base64,{png}", "declared as image/jpeg but its content is image/png"),
        ("data:text/plain;base64,{png}", "declared as text/plain"),
        ("data:image/png;base64,@@@not-base64@@@", "invalid base64"),
        ("data:image/png,rawbytes", "must be base64"),
        ("data:nonsense", "not a valid data URI"),
        ("https://example.com/cat.png", "remote image URLs are not fetched"),
    ],
)
def test_bad_data_uris(png_bytes: bytes, uri: str, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        load_image(uri.replace("{png}", base64.b64encode(png_bytes).decode()))


def test_jpeg_alias_is_accepted(image_factory: Callable[..., bytes]) -> None:
    jpeg = image_factory(fmt="JPEG")
    assert load_image("data:image/jpg;base64," + base64.b64encode(jpeg).decode()).mime == "image/jpeg"


# -- the Guard API raises named errors ----------------------------------------------------------


def _guard(target: object) -> Guard:
    output = format_rewriter_output(RiskReport(decision=Decision.REFRAME), "SAFE")
    return Guard(rewriter=ModelRewriter(MockVLM.rules([], default=output)), target=target)  # type: ignore[arg-type]


def test_guard_api_bad_inputs_are_vlmguard_errors(tmp_path: Path, png_file: Path) -> None:
    guard = _guard(MockVLM.echo())
    cases = [
        lambda: guard.ask("", image=png_file),
        lambda: guard.ask("x" * 200_000, image=png_file),
        lambda: guard.ask("hello", image=tmp_path / "missing.png"),
        lambda: guard.check("hello", image=b"not an image"),
        lambda: guard.check(
            "hello", image="data:image/gif;base64," + base64.b64encode(png_file.read_bytes()).decode()
        ),
    ]
    for case in cases:
        with pytest.raises(VLMGuardError):
            case()


def test_unreachable_and_garbage_targets() -> None:
    unreachable = _guard(f"openai:m@http://127.0.0.1:{free_port()}/v1?timeout=5")
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        unreachable.ask("hello")
    with FakeOpenAIServer() as server:
        garbage = _guard(f"openai:m@{server.url('garbage')}")
        with pytest.raises(BackendError, match="not JSON"):
            garbage.ask("hello")

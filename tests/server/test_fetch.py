"""The safe remote-image fetcher: allowlist, public addresses only (also after DNS and redirects), limits."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from proxy_helpers import chat_body, config, proxy_client, serve_in_thread

from vlmguard.server.config import RemoteImagesConfig
from vlmguard.server.fetch import FetchError, ImageFetcher, host_allowed, is_public_address

PUBLIC_IP = "93.184.216.34"
DNS = {
    "img.example.com": [PUBLIC_IP],
    "cdn.example.com": [PUBLIC_IP],
    "internal.example.com": ["10.1.2.3"],
    "mixed.example.com": [PUBLIC_IP, "127.0.0.1"],
    "meta.example.com": ["169.254.169.254"],
    "v6local.example.com": ["::1"],
    "mapped.example.com": ["::ffff:192.168.0.1"],
}


async def fake_resolver(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise FetchError(f"image host {host!r} could not be resolved")
    return DNS[host]


class Recorder:
    """An in-memory transport: answers by (host header, path) and records every request it got."""

    def __init__(self, routes: dict[tuple[str, str], httpx.Response]) -> None:
        self.routes = routes
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.routes.get((request.headers["host"], request.url.path), httpx.Response(404))


def fetcher(routes: dict[tuple[str, str], httpx.Response], **cfg: object) -> tuple[ImageFetcher, Recorder]:
    options: dict[str, object] = {"enabled": True, "allowlist": ["*.example.com"], **cfg}
    recorder = Recorder(routes)
    return ImageFetcher(
        RemoteImagesConfig.model_validate(options),
        resolver=fake_resolver,
        transport=httpx.MockTransport(recorder),
    ), recorder


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::1", False),
        ("ff02::1", False),
        ("not-an-ip", False),
    ],
)
def test_public_address_check(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_allowlist_matching() -> None:
    assert host_allowed("img.example.com", ["img.example.com"])
    assert host_allowed("a.b.example.com", ["*.example.com"])
    assert not host_allowed("example.com", ["*.example.com"])
    assert not host_allowed("evilexample.com", ["*.example.com"])
    assert host_allowed("anything.org", ["*"])


async def test_good_fetch_pins_the_checked_address(png_bytes: bytes) -> None:
    f, rec = fetcher(
        {
            ("img.example.com", "/a.png"): httpx.Response(
                200, content=png_bytes, headers={"content-type": "image/png"}
            )
        }
    )
    data, ctype = await f.fetch("https://img.example.com/a.png")
    assert data == png_bytes and ctype == "image/png"
    request = rec.seen[0]
    assert request.url.host == PUBLIC_IP  # connects to the checked address, not a second DNS answer
    assert request.headers["host"] == "img.example.com"
    assert request.extensions["sni_hostname"] == "img.example.com"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/a.png", "allowlist"),
        ("https://other.org/a.png", "allowlist"),
        ("https://internal.example.com/a.png", "non-public"),
        ("https://mixed.example.com/a.png", "non-public"),
        ("https://meta.example.com/latest/meta-data", "non-public"),
        ("https://v6local.example.com/a.png", "non-public"),
        ("https://mapped.example.com/a.png", "non-public"),
        ("http://img.example.com/a.png", "scheme"),
        ("ftp://img.example.com/a.png", "scheme"),
        ("https://user:pw@img.example.com/a.png", "credentials"),
    ],
)
async def test_refused_before_any_request_is_sent(url: str, reason: str) -> None:
    f, rec = fetcher({})
    with pytest.raises(FetchError, match=reason):
        await f.fetch(url)
    assert rec.seen == []


async def test_literal_private_ip_refused_even_with_wildcard_allowlist() -> None:
    f, rec = fetcher({}, allowlist=["*"], allow_http=True)
    for url in (
        "http://127.0.0.1:8080/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        "http://10.0.0.8/",
    ):
        with pytest.raises(FetchError, match="non-public"):
            await f.fetch(url)
    assert rec.seen == []


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://internal.example.com/secret.png",
        "https://127.0.0.1/x.png",
        "http://[::ffff:127.0.0.1]:8080/x.png",
        "/next?go=1",
    ],
)
async def test_redirects_are_checked_like_the_first_url(target: str, png_bytes: bytes) -> None:
    routes = {("img.example.com", "/r"): httpx.Response(302, headers={"location": target})}
    if target.startswith(
        "/"
    ):  # relative redirect to the same host: allowed, then a second one to a bad place
        routes[("img.example.com", "/next")] = httpx.Response(
            301, headers={"location": "https://meta.example.com/"}
        )
    f, rec = fetcher(routes, allowlist=["*"], allow_http=True)
    with pytest.raises(FetchError, match="non-public"):
        await f.fetch("https://img.example.com/r")
    assert len(rec.seen) == (2 if target.startswith("/") else 1)
    assert all(r.url.host == PUBLIC_IP for r in rec.seen)  # no request ever reached a non-public address


async def test_redirect_to_a_host_off_the_allowlist_is_refused() -> None:
    f, rec = fetcher(
        {("img.example.com", "/r"): httpx.Response(302, headers={"location": "https://evil.org/x"})}
    )
    with pytest.raises(FetchError, match="allowlist"):
        await f.fetch("https://img.example.com/r")
    assert len(rec.seen) == 1


async def test_redirect_chain_limit_size_limit_and_status(png_bytes: bytes) -> None:
    loop = {("img.example.com", "/loop"): httpx.Response(302, headers={"location": "/loop"})}
    f, rec = fetcher(loop, max_redirects=2)
    with pytest.raises(FetchError, match="redirects more than 2"):
        await f.fetch("https://img.example.com/loop")
    assert len(rec.seen) == 3
    f, _ = fetcher({("img.example.com", "/big"): httpx.Response(200, content=b"x" * 5000)}, max_bytes=1000)
    with pytest.raises(FetchError, match="over the limit"):
        await f.fetch("https://img.example.com/big")
    f, _ = fetcher({})
    with pytest.raises(FetchError, match="HTTP 404"):
        await f.fetch("https://img.example.com/missing")


async def test_fetch_time_limit() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    f = ImageFetcher(
        RemoteImagesConfig(enabled=True, allowlist=["*"], timeout_s=0.1),
        resolver=fake_resolver,
        transport=httpx.MockTransport(slow),
    )
    with pytest.raises(FetchError, match="longer than"):
        await asyncio.wait_for(f.fetch("https://img.example.com/a.png"), 3)


async def test_real_loopback_server_and_localhost_name_refused(png_bytes: bytes) -> None:
    async def app(scope, receive, send) -> None:  # a real server on 127.0.0.1 that would serve an image
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]}
        )
        await send({"type": "http.response.body", "body": png_bytes})

    f = ImageFetcher(RemoteImagesConfig(enabled=True, allowlist=["*"], allow_http=True))  # real DNS resolver
    with serve_in_thread(app) as base:
        assert httpx.get(base).content == png_bytes  # it is reachable ...
        port = base.rsplit(":", 1)[1]
        for url in (f"{base}/a.png", f"http://localhost:{port}/a.png"):
            with pytest.raises(FetchError, match="non-public"):  # ... but the fetcher refuses it
                await f.fetch(url)


async def test_proxy_sends_fetched_bytes_not_the_url(png_bytes: bytes) -> None:
    f, rec = fetcher({("img.example.com", "/a.png"): httpx.Response(200, content=png_bytes)})
    cfg = config(remote_images={"enabled": True, "allowlist": ["*.example.com"]})
    body = chat_body("what is this", "https://img.example.com/a.png")
    body["messages"][0]["content"][0]["image_url"]["detail"] = "low"
    async with proxy_client(cfg, fetcher=f) as (client, fake, _):
        ok = await client.post("/v1/chat/completions", json=body)
        bad = await client.post(
            "/v1/chat/completions", json=chat_body("x", "https://internal.example.com/a.png")
        )
    assert ok.status_code == 200
    sent = fake.requests[-1]["messages"][0]["content"][0]["image_url"]
    assert sent["url"].startswith("data:image/png;base64,") and sent["detail"] == "low"
    assert bad.status_code == 400 and "non-public" in bad.json()["error"]["message"]
    assert len(rec.seen) == 1

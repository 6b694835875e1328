"""Fetch remote images safely: allowlisted hosts, public addresses only, bounded size and time.

Every hop (the first URL and each redirect) is checked the same way before any byte is sent:
scheme, host allowlist, then DNS resolution, and *every* resolved address must be public (no
private, loopback, link-local, multicast, reserved, unspecified or shared addresses, IPv4-mapped
forms included). The connection then goes to the checked address itself (the host name travels
in the ``Host`` header and as TLS SNI), so a second DNS answer cannot swap in an internal address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterable, Awaitable, Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from vlmguard.errors import ImageError
from vlmguard.server.config import RemoteImagesConfig

Resolver = Callable[[str, int], Awaitable[list[str]]]
REDIRECTS = {301, 302, 303, 307, 308}


async def read_capped(
    chunks: AsyncIterable[bytes], limit: int, declared: str | None, too_large: Callable[[str], Exception]
) -> bytes:
    """All of ``chunks``; ``too_large(what)`` is raised as soon as the declared length (a Content-Length
    header, ignored unless all digits) or the bytes read so far pass ``limit``. ``what`` says by how
    much ("1,234 bytes, over the limit of 1,000" or "over the limit of 1,000 bytes")."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(f"{int(declared):,} bytes, over the limit of {limit:,}")
    body: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(f"over the limit of {limit:,} bytes")
        body.append(chunk)
    return b"".join(body)


class FetchError(ImageError):
    """A remote image could not be fetched, or was refused by the fetch policy."""


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (the system resolver, off the event loop)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise FetchError(f"image host {host!r} could not be resolved") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: str) -> bool:
    """True only for globally routable unicast addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None and not is_public_address(str(mapped)):
            return False
        if ip.teredo is not None:
            return False
    return bool(
        ip.is_global
        and not (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        )
    )


def host_allowed(host: str, allowlist: list[str]) -> bool:
    """``host`` matches an allowlist entry: exact name, ``*.suffix`` (subdomains only) or ``*``."""
    host = host.lower().rstrip(".")
    for entry in allowlist:
        entry = entry.lower().rstrip(".")
        if entry == "*" or entry == host:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
    return False


class ImageFetcher:
    """Downloads image URLs under a :class:`RemoteImagesConfig` policy.

    ``resolver`` and ``transport`` can be replaced (tests use an in-memory transport); the address
    checks always apply.
    """

    def __init__(
        self,
        config: RemoteImagesConfig,
        *,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.resolver = resolver or system_resolver
        self.transport = transport

    async def fetch(self, url: str) -> tuple[bytes, str | None]:
        """The image bytes and declared content type at ``url``; raises :class:`FetchError`."""
        if not self.config.enabled:
            raise FetchError(
                "remote image URLs are disabled on this proxy; send the image as a data URI",
                code="remote_images_disabled",
            )
        try:
            return await asyncio.wait_for(self._fetch(url), timeout=self.config.timeout_s)
        except asyncio.TimeoutError:
            raise FetchError(f"image download took longer than {self.config.timeout_s:g} s") from None

    async def check_url(self, url: str) -> tuple[str, str, int, str]:
        """Check one hop; returns (scheme, host, port, the public address to connect to)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        allowed_schemes = ("https", "http") if self.config.allow_http else ("https",)
        if scheme not in allowed_schemes:
            raise FetchError(f"image URL scheme must be {' or '.join(allowed_schemes)}")
        if parts.username or parts.password:
            raise FetchError("image URLs must not carry credentials")
        host = (parts.hostname or "").lower()
        if not host:
            raise FetchError("image URL has no host")
        if not host_allowed(host, self.config.allowlist):
            raise FetchError(f"image host {host!r} is not on the allowlist")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise FetchError("image URL has an invalid port") from None
        try:
            literal = ipaddress.ip_address(host)
            addresses = [str(literal)]
        except ValueError:
            addresses = await self.resolver(host, port)
        if not addresses:
            raise FetchError(f"image host {host!r} has no address")
        bad = [a for a in addresses if not is_public_address(a)]
        if bad:
            raise FetchError(f"image host {host!r} resolves to a non-public address; refused")
        return scheme, host, port, addresses[0]

    async def _fetch(self, url: str) -> tuple[bytes, str | None]:
        current = url
        async with httpx.AsyncClient(
            transport=self.transport, follow_redirects=False, trust_env=False, timeout=self.config.timeout_s
        ) as client:
            for _ in range(self.config.max_redirects + 1):
                scheme, host, port, address = await self.check_url(current)
                parts = urlsplit(current)
                ip_host = f"[{address}]" if ":" in address else address
                pinned = urlunsplit((scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, ""))
                default_port = port == (443 if scheme == "https" else 80)
                headers = {"Host": host if default_port else f"{host}:{port}", "Accept": "image/*"}
                extensions = {"sni_hostname": host} if scheme == "https" else {}
                request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
                try:
                    response = await client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise FetchError(f"image download from {host!r} failed ({type(exc).__name__})") from None
                try:
                    if response.status_code in REDIRECTS:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError("image URL redirects without a location")
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"image URL answered HTTP {response.status_code}")
                    return await self._read(response), response.headers.get("content-type")
                finally:
                    await response.aclose()
        raise FetchError(f"image URL redirects more than {self.config.max_redirects} times")

    async def _read(self, response: httpx.Response) -> bytes:
        def too_large(what: str) -> FetchError:
            return FetchError(f"remote image is {what}", code="image_too_large")

        declared = response.headers.get("content-length")
        return await read_capped(response.aiter_bytes(), self.config.max_bytes, declared, too_large)

"""The proxy's configuration: a strict pydantic model, layered defaults < YAML < environment < flags.

Unknown keys fail. The upstream API key is never part of the configuration: it is read from the
environment variable named by ``upstream.api_key_env`` when the app starts, and it is never logged
or returned. Environment overrides use ``VLMGUARD_PROXY__<SECTION>__<FIELD>=<YAML value>``, e.g.
``VLMGUARD_PROXY__LIMITS__MAX_IMAGES=4`` or ``VLMGUARD_PROXY__UPSTREAM__URLS='[http://gpu:8000/v1]'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vlmguard.config_file import read_yaml_mapping
from vlmguard.errors import ConfigError
from vlmguard.pipeline import ConversationWindow
from vlmguard.runtime import ThreadSettings
from vlmguard.server.auth import check_hash_format
from vlmguard.text import normalize_text

ENV_PREFIX = "VLMGUARD_PROXY__"
MiB = 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamConfig(_Strict):
    """The OpenAI-compatible server behind the proxy."""

    urls: list[str] = Field(default_factory=list)
    """Base URLs ending in ``/v1`` (several: round-robin, with failover on connection errors)."""
    api_key_env: str | None = "VLMGUARD_UPSTREAM_API_KEY"
    """Name of the environment variable holding the upstream API key (the key itself never goes in a file)."""
    models: list[str] | None = None
    """Model ids ``/v1/models`` lists; ``None`` asks the upstream."""

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        out = []
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"upstream URL must be http(s)://host[:port]/path, got {url!r}")
            if parts.username or parts.password:
                raise ValueError("upstream URL must not carry credentials; use api_key_env")
            out.append(url.rstrip("/"))
        return out


class RateLimitConfig(_Strict):
    """A token bucket: ``requests_per_minute`` sustained, ``burst`` at once."""

    requests_per_minute: float = Field(600.0, gt=0)
    burst: int = Field(60, ge=1)


class SharedRateLimitConfig(RateLimitConfig):
    """The default rate limit, and where its buckets live.

    ``backend: memory`` keeps one set of buckets in each worker process (the default). ``backend:
    redis`` keeps them in Redis at ``redis_url``, so every worker and every replica sharing that
    Redis takes tokens from the same buckets (an atomic Lua script per request). ``redis_failure``
    says what happens to the limit while Redis cannot be reached: ``fail_open`` lets requests through
    unlimited, ``fail_closed`` answers them 503 ``rate_limiter_unavailable``; either is logged.
    """

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None
    """``redis://host:port/db`` (``rediss://`` for TLS); the password, if any, from ``redis_password_env``."""
    redis_password_env: str | None = "VLMGUARD_REDIS_PASSWORD"
    """Name of the environment variable holding the Redis password (never in the config file)."""
    redis_failure: Literal["fail_open", "fail_closed"] = "fail_open"
    redis_timeout_s: float = Field(0.25, gt=0)
    """Connect and command timeout of one Redis call."""
    redis_retry_s: float = Field(1.0, ge=0)
    """After a failed Redis call, the policy applies without trying Redis for this long."""
    redis_prefix: str = Field("vlmguard:ratelimit:", min_length=1)
    """Prefix of the bucket keys (replicas of one deployment must share it)."""

    @model_validator(mode="after")
    def _url_for_redis(self) -> SharedRateLimitConfig:
        if self.backend == "redis":
            if not self.redis_url:
                raise ValueError("rate_limit.backend redis needs rate_limit.redis_url")
            parts = urlsplit(self.redis_url)
            if parts.scheme not in ("redis", "rediss", "unix") or parts.password:
                raise ValueError(
                    "rate_limit.redis_url must be redis://host:port/db "
                    "(the password goes in redis_password_env)"
                )
        return self


class ApiKeyConfig(_Strict):
    """One client API key, stored hashed."""

    name: str = Field(min_length=1, max_length=100)
    hash: str
    rate_limit: RateLimitConfig | None = None
    """Overrides the default ``rate_limit`` for this key."""

    @field_validator("hash")
    @classmethod
    def _check_hash(cls, value: str) -> str:
        try:
            return check_hash_format(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class CorsConfig(_Strict):
    """Cross-origin access from browsers; off unless enabled."""

    enabled: bool = False
    allow_origins: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST"])
    allow_headers: list[str] = Field(default_factory=lambda: ["authorization", "content-type"])
    allow_credentials: bool = False


class LimitsConfig(_Strict):
    """Request size limits (checked before the guard runs)."""

    max_body_bytes: int = Field(20 * MiB, ge=1024)
    max_messages: int = Field(256, ge=1)
    max_images: int = Field(8, ge=0)
    """Images in the whole request."""
    max_image_bytes: int = Field(10 * MiB, ge=1)
    max_image_pixels: int = Field(25_000_000, ge=1)
    """Width x height of each image."""
    max_prompt_chars: int = Field(32_000, ge=1)
    """Characters in the last user turn's text."""
    max_request_pixels: int = Field(40_000_000, ge=1)
    """Width x height summed over every image of a request (read from the headers before decoding):
    bounds the decoding and analysis work one request can ask for."""
    max_json_depth: int = Field(32, ge=6, le=1000)
    """Nested arrays and objects in a request body (a chat request needs 5)."""
    max_json_elements: int = Field(100_000, ge=100)
    """Array elements and object members in a request body."""


class LaneConfig(_Strict):
    """One analysis lane: how many requests are analysed at once, and how many may wait."""

    concurrency: int = Field(1, ge=1)
    max_waiting: int = Field(8, ge=0)
    """Requests waiting for a slot; one more is answered 503 with Retry-After."""
    max_pending_per_key: int | None = Field(None, ge=1)
    """Requests of one key in the lane (running or waiting); one more is answered 429. ``None``: no bound."""


class AdmissionConfig(_Strict):
    """Bounded analysis: requests with images and text-only requests queue apart."""

    image: LaneConfig = Field(
        default_factory=lambda: LaneConfig(concurrency=1, max_waiting=8, max_pending_per_key=4)
    )
    text: LaneConfig = Field(default_factory=lambda: LaneConfig(concurrency=8, max_waiting=256))
    max_wait_s: float = Field(30.0, gt=0)
    """The longest a request waits for an analysis slot before a 503."""


class BatchingConfig(_Strict):
    """Micro-batching of the guard's model calls across concurrent requests (evidence rewriter)."""

    enabled: bool = True
    max_items: int = Field(64, ge=1)
    """Texts in one batched encoder call."""
    max_wait_s: float = Field(0.002, ge=0, le=1)
    """How long a first call waits for others to join its batch."""


class TimeoutsConfig(_Strict):
    """Time limits in seconds."""

    rewriter_s: float = Field(30.0, gt=0)
    upstream_connect_s: float = Field(5.0, gt=0)
    upstream_s: float = Field(300.0, gt=0)
    """Whole non-streaming upstream call; for a stream, the longest wait between two chunks."""
    readiness_s: float = Field(2.0, gt=0)


class RemoteImagesConfig(_Strict):
    """Fetching ``http(s)://`` image URLs. Off by default; when on, only hosts on the allowlist."""

    enabled: bool = False
    allowlist: list[str] = Field(default_factory=list)
    """Host names (``img.example.com``), suffix patterns (``*.example.com``), or ``*`` for any public host."""
    allow_http: bool = False
    """Allow plain ``http://`` (``https://`` only by default)."""
    max_bytes: int = Field(10 * MiB, ge=1)
    timeout_s: float = Field(10.0, gt=0)
    """Whole fetch, redirects included."""
    max_redirects: int = Field(3, ge=0, le=10)

    @model_validator(mode="after")
    def _allowlist_when_enabled(self) -> RemoteImagesConfig:
        if self.enabled and not self.allowlist:
            raise ValueError("remote_images.enabled needs an allowlist (host names, '*.domain' or '*')")
        return self


class ServerConfig(_Strict):
    """Where uvicorn listens."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    graceful_shutdown_s: float = Field(30.0, ge=0)
    """How long shutdown waits for in-flight requests."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    keep_alive_s: float = Field(30.0, gt=0)
    """How long an idle client connection stays open: longer than common clients' own keep-alive (5 s for
    httpx and so the ``openai`` client), so a client never reuses a connection the proxy is closing."""
    access_log: bool = True
    """uvicorn's one line per request (method, path, status; never bodies)."""
    workers: int = Field(1, ge=1, le=256)
    """Worker processes on one port (each loads its own rewriter). With more than one, metrics add up
    over the workers; rate limits are shared only with ``rate_limit.backend: redis``."""


class ProxyConfig(_Strict):
    """Everything ``vlmguard serve`` needs."""

    upstream: UpstreamConfig = Field(default_factory=UpstreamConfig)
    rewriter: str = "evidence"
    """``evidence`` (default offline rewriter) or a backend spec for the model-based rewriter."""
    fail_policy: Literal["fail_closed", "fail_open"] = "fail_closed"
    """When the guard cannot judge a request (rewriter error, timeout, unusable output)."""
    fail_closed_action: Literal["rewrite", "refuse"] = "rewrite"
    """What ``fail_closed`` does: a conservative safety rewrite, or a refusal."""
    refusal_message: str | None = None
    """The assistant message of a refusal; ``None`` names the risks found."""
    conversation: ConversationWindow = Field(default_factory=ConversationWindow)
    """How much of the conversation before the last user turn the guard reads (``max_turns``,
    ``max_chars``)."""
    extension: bool = True
    """Add the ``vlmguard`` object (decision, risk report, rewritten prompt, latencies) to responses."""
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    """Client keys; when empty, the proxy needs no key (keep it on 127.0.0.1 then)."""
    rate_limit: SharedRateLimitConfig | None = Field(default_factory=SharedRateLimitConfig)
    """Default per-key (or per-client-address without keys) limit and where the buckets live
    (``backend``); ``null`` for none."""
    cors: CorsConfig = Field(default_factory=CorsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    remote_images: RemoteImagesConfig = Field(default_factory=RemoteImagesConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    threads: ThreadSettings = Field(default_factory=ThreadSettings)
    """Process-wide thread settings each worker applies when it starts (``openmp_wait_policy``,
    ``torch_threads``); ``torch_threads`` left unset means 1 with several workers, torch's default
    with one (:func:`proxy_thread_settings`)."""
    metrics: bool = True
    """Serve Prometheus metrics at ``/metrics``."""

    @field_validator("refusal_message")
    @classmethod
    def _normalise_refusal(cls, value: str | None) -> str | None:
        return None if value is None else normalize_text(value)

    @field_validator("api_keys")
    @classmethod
    def _unique_names(cls, keys: list[ApiKeyConfig]) -> list[ApiKeyConfig]:
        names = [k.name for k in keys]
        if len(names) != len(set(names)):
            raise ValueError("API key names must be unique")
        return keys

    def require_upstream(self) -> ProxyConfig:
        """Self, or :class:`ConfigError` when no upstream URL is set."""
        if not self.upstream.urls:
            raise ConfigError("no upstream URL: set upstream.urls in the config or pass --upstream URL")
        return self

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> ProxyConfig:
        """Defaults < YAML file ``path`` < ``VLMGUARD_PROXY__*`` environment < ``overrides`` (dotted keys)."""
        data: dict[str, Any] = {}
        if path is not None:
            data = read_yaml_mapping(path)
        environ = os.environ if env is None else env
        for name, value in environ.items():
            if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
                keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
                _set_nested(data, keys, _parse_env_value(name, value))
        for dotted, value in (overrides or {}).items():
            _set_nested(data, dotted.split("."), value)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProxyConfig:
        """Validate ``data``; errors become one :class:`ConfigError` naming each bad field."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = []
            for err in exc.errors(include_url=False, include_input=False):
                where = ".".join(str(p) for p in err["loc"]) or "config"
                message = err["msg"]
                if err["type"] == "extra_forbidden":
                    message = "unknown key"
                    if err["loc"] and err["loc"][-1] in ("api_key", "key"):
                        message += " (the upstream key is read from the environment: upstream.api_key_env)"
                problems.append(f"{where}: {message}")
            raise ConfigError("invalid proxy config: " + "; ".join(problems)) from None


def proxy_thread_settings(config: ProxyConfig) -> ThreadSettings:
    """The thread settings a proxy process applies: ``config.threads``, with one torch thread per
    model call when several workers share the cores and ``torch_threads`` is not set."""
    settings = config.threads
    if settings.torch_threads is None and config.server.workers > 1:
        settings = settings.model_copy(update={"torch_threads": 1})
    return settings


def _parse_env_value(name: str, value: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"environment variable {name} is not a valid YAML value") from None


def _set_nested(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value

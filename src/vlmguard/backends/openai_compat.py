"""A backend for any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server, Ollama, OpenAI).

Spec: ``openai:MODEL@URL[,URL2,...]?timeout=60&strategy=round_robin|least_busy&api_key_env=NAME``

- ``MODEL`` is the model name the server knows (``Qwen/Qwen2-VL-7B-Instruct``).
- ``URL`` is the API base (``http://host:8000/v1``); without one, ``$VLMGUARD_BASE_URL``, then
  ``$OPENAI_BASE_URL``, then ``https://api.openai.com/v1``. Several comma-separated URLs spread the
  requests over replicas, in turn (``round_robin``) or to the one with the fewest requests in
  flight (``least_busy``). A URL that refuses the connection is skipped for that request.
- The API key comes from the environment variable named by ``api_key_env``, else
  ``$VLMGUARD_API_KEY``, else ``$OPENAI_API_KEY``; a local server needs none. Keys are never
  logged nor shown in ``repr``.

Images are sent as ``image_url`` parts holding ``data:`` URIs. Errors map onto the error
hierarchy: timeouts raise :class:`BackendTimeout`; refused connections and 5xx raise
:class:`BackendUnavailable`; 429 raises a retryable :class:`BackendError`; other 4xx raise a
non-retryable :class:`BackendError` carrying the server's message; a body that is not the
expected JSON raises :class:`BackendError` naming what is wrong.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vlmguard.backends.base import DEFAULT_CONFIG, BaseVLM
from vlmguard.backends.openai_wire import config_to_wire, message_to_wire, parse_chat_response, server_message
from vlmguard.errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from vlmguard.types import Completion, GenerateConfig, Message

if TYPE_CHECKING:
    import asyncio

    import httpx

log = logging.getLogger(__name__)

Strategy = Literal["round_robin", "least_busy"]
STRATEGIES: tuple[str, ...] = ("round_robin", "least_busy")
DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_ENV_VARS: tuple[str, ...] = ("VLMGUARD_API_KEY", "OPENAI_API_KEY")


@dataclass
class Endpoint:
    """One base URL and its counters."""

    base_url: str
    in_flight: int = 0
    requests: int = 0
    failures: int = 0

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"


def _normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    url = re.sub(r"/chat/completions$", "", url)
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(
            f"invalid base URL {url!r}: expected http(s)://host[:port][/path], e.g. http://localhost:8000/v1"
        )
    return url


class OpenAICompatVLM(BaseVLM):
    """A chat-completions client over one or more base URLs with one pooled ``httpx.AsyncClient``.

    Implements :class:`~vlmguard.backends.base.PrefillVLM` through the vLLM / llama.cpp
    convention: the prefix is sent as a final assistant message with
    ``continue_final_message: true`` and ``add_generation_prompt: false``.
    """

    def __init__(
        self,
        model: str,
        base_urls: Sequence[str] | str = (),
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        strategy: Strategy = "round_robin",
        max_connections: int = 100,
        extra_body: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if not model:
            raise ConfigError("openai backend needs a model name: openai:MODEL@http://host:8000/v1")
        if strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {strategy!r} (choose {' or '.join(STRATEGIES)})")
        if timeout <= 0:
            raise ConfigError("timeout must be > 0 seconds")
        if max_connections < 1:
            raise ConfigError("max_connections must be >= 1")
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        urls = [u for u in urls if u.strip()]
        if not urls:
            env_url = os.environ.get("VLMGUARD_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
            urls = [env_url or DEFAULT_BASE_URL]
        super().__init__(name or model)
        self.model = model
        self.endpoints = [Endpoint(_normalise_url(u)) for u in urls]
        self.timeout = timeout
        self.strategy: Strategy = strategy
        self.max_connections = max_connections
        self.extra_body = dict(extra_body or {})
        self._api_key = api_key
        self._turn = itertools.count()
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        urls = ",".join(e.base_url for e in self.endpoints)
        return f"OpenAICompatVLM(model={self.model!r}, urls={urls!r}, strategy={self.strategy!r})"

    # -- connection management -------------------------------------------------------------

    def _client_for_loop(self) -> httpx.AsyncClient:
        """The shared client, rebuilt when called from a different event loop than it was made in."""
        import asyncio

        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(
                    max_connections=self.max_connections, max_keepalive_connections=self.max_connections
                ),
                headers=headers,
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the pooled connections."""
        import asyncio

        client, loop = self._client, self._client_loop
        self._client = None
        self._client_loop = None
        if client is not None and not client.is_closed:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                await client.aclose()

    # -- endpoint choice ---------------------------------------------------------------------

    def _order(self) -> list[Endpoint]:
        """Endpoints in the order this request will try them (first choice first)."""
        n = len(self.endpoints)
        turn = next(self._turn)
        rotated = [self.endpoints[(turn + i) % n] for i in range(n)]
        if self.strategy == "least_busy":
            rotated.sort(key=lambda e: e.in_flight)  # stable: ties keep the round-robin order
        return rotated

    # -- requests ----------------------------------------------------------------------------

    def build_body(self, messages: Sequence[Message], config: GenerateConfig) -> dict[str, Any]:
        """The JSON body of a chat-completions request."""
        if not messages:
            raise BackendError("no messages to send")
        body: dict[str, Any] = {"model": self.model, "messages": [message_to_wire(m) for m in messages]}
        body.update(config_to_wire(config))
        body.update(self.extra_body)
        return body

    async def generate(self, messages: Sequence[Message], config: GenerateConfig | None = None) -> Completion:
        return await self._post(self.build_body(messages, config or DEFAULT_CONFIG))

    async def generate_with_prefix(
        self, messages: Sequence[Message], prefix: str, config: GenerateConfig | None = None
    ) -> Completion:
        """Continue an assistant answer that starts with ``prefix`` (vLLM / llama.cpp servers).

        The returned text is the continuation only, as those servers return it.
        """
        body = self.build_body([*messages, Message.assistant(prefix)], config or DEFAULT_CONFIG)
        body["continue_final_message"] = True
        body["add_generation_prompt"] = False
        return await self._post(body)

    async def _post(self, body: dict[str, Any]) -> Completion:
        import httpx

        client = self._client_for_loop()
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        order = self._order()
        last_error: BackendError | None = None
        for endpoint in order:
            start = time.perf_counter()
            endpoint.in_flight += 1
            endpoint.requests += 1
            try:
                response = await client.post(endpoint.chat_url, content=payload)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                endpoint.failures += 1
                last_error = BackendUnavailable(f"cannot connect to {endpoint.base_url}: {_short(exc)}")
                more = endpoint is not order[-1]
                log.warning("%s; %s", last_error, "trying the next URL" if more else "giving up")
                continue  # nothing was sent: another replica may take it
            except httpx.TimeoutException:
                endpoint.failures += 1
                where = endpoint.base_url
                raise BackendTimeout(f"{where} did not answer within {self.timeout:g} s") from None
            except httpx.HTTPError as exc:
                endpoint.failures += 1
                raise BackendUnavailable(f"request to {endpoint.base_url} failed: {_short(exc)}") from None
            finally:
                endpoint.in_flight -= 1
            latency = time.perf_counter() - start
            log.debug("POST %s -> %d in %.3fs", endpoint.chat_url, response.status_code, latency)
            return self._completion(endpoint, response, latency)
        assert last_error is not None
        if len(order) > 1:
            raise BackendUnavailable(f"none of {len(order)} URLs could be reached; last: {last_error}")
        raise last_error

    def _completion(self, endpoint: Endpoint, response: httpx.Response, latency: float) -> Completion:
        status = response.status_code
        where = endpoint.base_url
        if status >= 400:
            endpoint.failures += 1
            message = server_message(response)
            text = f"{where} answered HTTP {status}: {message}"
            if status >= 500:
                raise BackendUnavailable(text, status=status)
            raise BackendError(text, retryable=status in (408, 429), status=status)
        try:
            data = response.json()
        except ValueError:
            snippet = " ".join(response.text.split())[:80]
            problem = f"{where} returned a body that is not JSON: {snippet!r}"
            raise BackendError(problem, status=status) from None
        try:
            text, model, usage, finish = parse_chat_response(data, default_model=self.model)
        except BackendError as exc:
            raise BackendError(f"{where}: {exc}", status=status) from None
        return Completion(text=text, model=model, usage=usage, latency_s=latency, finish_reason=finish)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _split_target(target: str) -> tuple[str, list[str]]:
    """``MODEL@URL1,URL2`` -> ``(MODEL, [URL1, URL2])``; splits at the ``@`` that starts a URL."""
    match = re.search(r"@(?=https?://)", target)
    if match is None:
        if "@" in target:
            model, _, rest = target.partition("@")
            raise ConfigError(f"invalid URL {rest!r} in openai spec: expected http(s)://...")
        return target, []
    model, urls = target[: match.start()], target[match.end() :]
    return model, [u for u in urls.split(",") if u.strip()]


def openai_from_spec(target: str, options: dict[str, str]) -> OpenAICompatVLM:
    """Build the backend from ``openai:MODEL@URL[,URL2]?timeout=60&strategy=...&api_key_env=NAME``.

    Other options: ``max_connections`` (pool size, default 100), ``name`` (the name in reports
    and cache keys; default the model name).
    """
    opts = dict(options)
    model, urls = _split_target(target)
    try:
        timeout = float(opts.pop("timeout", "60"))
        max_connections = int(opts.pop("max_connections", "100"))
    except ValueError as exc:
        raise ConfigError(f"invalid number in openai options: {exc}") from None
    strategy = opts.pop("strategy", "round_robin")
    key_env = opts.pop("api_key_env", None)
    name = opts.pop("name", None)
    if opts:
        raise ConfigError(
            f"unknown openai option(s): {', '.join(sorted(opts))} "
            "(known: timeout, strategy, api_key_env, max_connections, name)"
        )
    if key_env is not None:
        api_key = os.environ.get(key_env)
        if not api_key:
            raise ConfigError(f"environment variable {key_env} (api_key_env) is not set")
    else:
        api_key = next((os.environ[v] for v in KEY_ENV_VARS if os.environ.get(v)), None)
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r} (choose {' or '.join(STRATEGIES)})")
    return OpenAICompatVLM(
        model,
        urls,
        api_key=api_key,
        timeout=timeout,
        strategy=strategy,  # type: ignore[arg-type]
        max_connections=max_connections,
        name=name,
    )

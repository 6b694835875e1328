"""``vlmguard serve``: run the OpenAI-compatible guard proxy (or hash an API key for its config)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from vlmguard.cli.options import fail_policy_option, rewriter_option


def _read_key_to_hash() -> str:
    if sys.stdin.isatty():
        return str(click.prompt("API key to hash", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Proxy config (YAML). Environment VLMGUARD_PROXY__SECTION__FIELD overrides it.",
)
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    help="Upstream base URL, e.g. http://localhost:8000/v1 (repeatable; overrides the config).",
)
@rewriter_option("'evidence' (default) or a backend spec for the model-based rewriter.")
@click.option("--host", default=None, help="Listen address (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (default 8080).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes on one port (default 1). Share rate limits with rate_limit.backend: redis.",
)
@fail_policy_option("--fail-policy", help="What to do when the guard cannot judge a request.")
@click.option(
    "--hash-key",
    is_flag=True,
    help="Read an API key (prompt or stdin), print its salted hash for api_keys[].hash, and exit.",
)
@click.option(
    "--hash-algo",
    type=click.Choice(["scrypt", "sha256"]),
    default="scrypt",
    show_default=True,
    help="Hash used by --hash-key.",
)
def serve(
    config_path: Path | None,
    upstreams: tuple[str, ...],
    rewriter: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    fail_policy: str | None,
    hash_key: bool,
    hash_algo: str,
) -> None:
    """Run the OpenAI-compatible guard proxy in front of an upstream VLM server.

    Quick start without a config file:  vlmguard serve --upstream http://localhost:8000/v1
    """
    if hash_key:
        from vlmguard.server.auth import hash_key as make_hash

        click.echo(make_hash(_read_key_to_hash(), algo=hash_algo))
        return
    from vlmguard.server.config import ProxyConfig

    overrides: dict[str, Any] = {}
    if upstreams:
        overrides["upstream.urls"] = list(upstreams)
    if rewriter is not None:
        overrides["rewriter"] = rewriter
    if host is not None:
        overrides["server.host"] = host
    if port is not None:
        overrides["server.port"] = port
    if workers is not None:
        overrides["server.workers"] = workers
    if fail_policy is not None:
        overrides["fail_policy"] = fail_policy
    config = ProxyConfig.load(config_path, overrides=overrides).require_upstream()
    run_server(config)


def run_server(config: Any, *, rewriter: Any = None) -> None:
    """Serve ``config`` with uvicorn until SIGINT/SIGTERM; in-flight requests finish before exit.

    ``rewriter`` replaces loading ``config.rewriter`` (an already built rewriter object; one worker
    only). With ``server.workers`` above 1, the workers run as processes (:mod:`vlmguard.server.workers`).
    """
    import uvicorn

    from vlmguard.server.app import create_app

    if config.server.workers > 1:
        if rewriter is not None:
            from vlmguard.errors import ConfigError

            raise ConfigError(
                "a rewriter object can serve one worker only; several workers load config.rewriter"
            )
        from vlmguard.server.workers import serve_workers

        serve_workers(config)
        return

    app = create_app(config, rewriter=rewriter)
    server_config = uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        log_level=config.server.log_level,
        timeout_graceful_shutdown=config.server.graceful_shutdown_s,
        lifespan="on",
        timeout_keep_alive=config.server.keep_alive_s,
        access_log=config.server.access_log,
        server_header=False,
        proxy_headers=False,
    )
    server = uvicorn.Server(server_config)
    server.run()
    if not server.started:
        raise SystemExit(1)

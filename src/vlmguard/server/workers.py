"""Several worker processes on one port (``server.workers``).

uvicorn starts the workers from an import string, so the validated config travels to them in an
environment variable (:data:`WORKER_CONFIG_ENV`, JSON) and :func:`worker_app` builds each worker's
app from it. Every worker loads its own rewriter and holds its own upstream connections.

Metrics add up over the workers through prometheus_client's multiprocess mode: the folder named by
``PROMETHEUS_MULTIPROC_DIR`` must exist, empty, before the workers start. :func:`serve_workers`
creates a temporary one and removes it afterwards, unless the variable is already set (then the
folder is the caller's, and it is emptied first). Rate limits are per worker unless
``rate_limit.backend`` is ``redis``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmguard.errors import ConfigError
from vlmguard.server.config import ProxyConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("vlmguard.server")

WORKER_CONFIG_ENV = "VLMGUARD_WORKER_CONFIG"
"""The environment variable that carries the proxy config (JSON) to the worker processes."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
APP_FACTORY = "vlmguard.server.workers:worker_app"


def worker_app() -> FastAPI:
    """The app of one worker process (a uvicorn app factory), from :data:`WORKER_CONFIG_ENV`."""
    from vlmguard.server.app import create_app

    raw = os.environ.get(WORKER_CONFIG_ENV)
    if not raw:
        raise ConfigError(f"{WORKER_CONFIG_ENV} is not set: start workers with 'vlmguard serve --workers N'")
    config = ProxyConfig.from_dict(json.loads(raw))
    return create_app(config, metrics_dir=os.environ.get(MULTIPROC_ENV) or None)


@contextmanager
def multiprocess_dir() -> Iterator[str]:
    """The metrics folder of this run: ``PROMETHEUS_MULTIPROC_DIR`` emptied, or a temporary folder."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # values of an earlier run must not be added
            stale.unlink()
        yield str(folder)
        return
    folder = Path(tempfile.mkdtemp(prefix="vlmguard-metrics-"))
    try:
        yield str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve_workers(config: ProxyConfig) -> None:
    """Serve ``config`` with ``config.server.workers`` processes on one port until SIGINT/SIGTERM."""
    import uvicorn

    with multiprocess_dir() as folder:
        saved = {name: os.environ.get(name) for name in (WORKER_CONFIG_ENV, MULTIPROC_ENV)}
        os.environ[WORKER_CONFIG_ENV] = config.model_dump_json()
        os.environ[MULTIPROC_ENV] = folder
        if config.rate_limit is not None and config.rate_limit.backend == "memory":
            log.warning(
                "%d workers with rate_limit.backend memory: each worker keeps its own buckets, so a "
                "client may pass up to %d times the limit (use backend: redis to share them)",
                config.server.workers,
                config.server.workers,
            )
        try:
            options: dict[str, Any] = {
                "factory": True,
                "workers": config.server.workers,
                "host": config.server.host,
                "port": config.server.port,
                "log_level": config.server.log_level,
                "timeout_graceful_shutdown": config.server.graceful_shutdown_s,
                "lifespan": "on",
                "timeout_keep_alive": config.server.keep_alive_s,
                "access_log": config.server.access_log,
                "server_header": False,
                "proxy_headers": False,
            }
            uvicorn.run(APP_FACTORY, **options)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

"""A local FX rate API (a real HTTP server on 127.0.0.1) and the fixtures that point the
in-process Paymesh at it.

The server can be ``up`` (answers ``{"rates": …}`` per USD), ``down`` (its socket is
closed: connections are refused), ``slow`` (answers nothing until the test ends, so any
client timeout expires), ``garbage`` (a body that is no rate document), ``error``
(HTTP 500) or ``bad_rates`` (a rate document whose every rate is nonsense).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import pytest_asyncio
from sqlalchemy import text

from core import caches
from core.embedded import free_port

GARBAGE = b"<html>rate limit exceeded</html>"
BAD_RATES = json.dumps({"rates": {"EUR": -1, "VND": "lots", "JPY": 0, "GBP": None,
                                  "XXX": 2}}).encode()


class RateApi:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/latest"
        self.mode = "up"
        self.body: dict = {"base": "USD", "rates": {"EUR": 0.91, "VND": 25000}}
        self.calls = 0
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                api.calls += 1
                if api.mode == "slow":
                    api._release.wait(30)  # until the test is over: the client gives up
                    return
                status, body = {
                    "garbage": (200, GARBAGE),
                    "error": (500, b'{"error": "internal"}'),
                    "bad_rates": (200, BAD_RATES),
                }.get(api.mode, (200, json.dumps(api.body).encode()))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def start(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._release = threading.Event()

    def set(self, mode: str) -> None:
        """Switch to ``mode`` (``down`` closes the socket; any other re-opens it)."""
        if mode == "down":
            self.stop()
        elif self._server is None:
            self.start()
        if mode != "slow":
            self._release.set()
            self._release = threading.Event()
        self.mode = mode


@pytest.fixture
def rate_api() -> Iterator[RateApi]:
    api = RateApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()


async def wipe_rates() -> None:
    from core.runtime import get_runtime

    async with get_runtime().owner_session() as session:
        await session.execute(text("DELETE FROM fx_rates"))
    forget_fx_caches()


def forget_fx_caches() -> None:
    """What a later moment looks like to this process: stored rates re-read, the API's
    last answer (or failure) forgotten."""
    caches.clear("owner.fx.rates")
    caches.clear("owner.fx.fetches")


@pytest_asyncio.fixture
async def fx_runtime(client, rate_api: RateApi) -> AsyncIterator[object]:  # noqa: ANN001
    """The app's runtime pointed at ``rate_api`` (0.3 s timeout, no fallback), with no
    stored rates; restored afterwards."""
    from core.runtime import get_runtime

    runtime = get_runtime()
    saved = runtime.settings
    runtime.settings = dataclasses.replace(saved, fx_api_url=rate_api.url,
                                           fx_timeout_seconds=0.3, fx_fallback={})
    await wipe_rates()
    try:
        yield runtime
    finally:
        runtime.settings = saved
        await wipe_rates()


async def age_fetched_rates(hours: int = 2) -> None:
    """Make every fetched rate older than the TTL (as if ``hours`` had passed)."""
    from core.runtime import get_runtime

    async with get_runtime().owner_session() as session:
        await session.execute(text(
            "UPDATE fx_rates SET fetched_at = fetched_at - make_interval(hours => :h) "
            "WHERE source = 'api'"), {"h": hours})
    forget_fx_caches()

"""A loopback webhook receiver for the outgoing delivery row: a raw asyncio HTTP/1.1
server (``httptools`` parser, keep-alive) that answers every ``POST`` with an empty 200
and keeps what it got.

It is meant never to be the bottleneck: per request it parses, appends one tuple and
writes a fixed answer; the Standard Webhooks signatures of everything it kept are
verified afterwards (:meth:`Receiver.verify`, with the ``standardwebhooks`` library a
receiver would use), not while the workers wait for the answer. ``POST /capacity`` is
answered the same way but only counted (how the row measures the receiver's capacity
with the load generator, before the deliveries).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httptools

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_HOOKS = b"/hooks/"


@dataclass(slots=True)
class Received:
    endpoint: str          # the ``<k>`` of ``/hooks/<k>``
    headers: dict[str, str]
    body: bytes
    at: float              # time.monotonic() when the request was complete


@dataclass
class Verdict:
    """What :meth:`Receiver.verify` found."""

    requests: int
    verified: int
    bad_signatures: list[str] = field(default_factory=list)
    id_mismatches: int = 0            # webhook-id header ≠ the body's ``id``
    duplicates: int = 0               # (endpoint, webhook-id) pairs received more than once
    unknown_endpoints: int = 0
    pairs: set[tuple[str, str]] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return (self.verified == self.requests and not self.bad_signatures
                and not self.id_mismatches and not self.duplicates
                and not self.unknown_endpoints)


class _Connection(asyncio.Protocol):
    __slots__ = ("body", "headers", "parser", "receiver", "transport", "url")

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.receiver.connections += 1
        self.receiver.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.receiver.open.discard(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.receiver.malformed += 1
            assert self.transport is not None
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.receiver.record(self.url, self.headers, b"".join(self.body))
        assert self.transport is not None
        if self.parser.should_keep_alive():
            self.transport.write(_OK)
        else:
            self.transport.write(_OK_CLOSE)
            self.transport.close()


class Receiver:
    """Serve on 127.0.0.1 (a free port) until :meth:`close`."""

    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.received: list[Received] = []
        self.capacity_hits = 0
        self.malformed = 0
        self.connections = 0  # opened, in all
        self.open: set[_Connection] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, endpoint: str) -> str:
        return f"{self.base_url}/hooks/{endpoint}"

    async def start(self) -> Receiver:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0,
                                               backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for conn in list(self.open):  # keep-alive connections (3.11 has no
                if conn.transport is not None:  # Server.close_clients)
                    conn.transport.close()
            await self.server.wait_closed()
            self.server = None

    def record(self, url: bytes, headers: dict[str, str], body: bytes) -> None:
        if url.startswith(_HOOKS):
            self.received.append(Received(url[len(_HOOKS):].decode("latin-1"), headers,
                                          body, time.monotonic()))
        else:
            self.capacity_hits += 1

    def per_endpoint(self) -> Counter[str]:
        return Counter(r.endpoint for r in self.received)

    def verify(self, secrets: dict[str, str]) -> Verdict:
        """Check every kept request: its signature against its endpoint's secret
        (``standardwebhooks``, timestamp tolerance included), its ``webhook-id`` against
        the body's ``id``, and that no (endpoint, webhook-id) came twice."""
        from standardwebhooks import Webhook

        hooks = {k: Webhook(s) for k, s in secrets.items()}
        verdict = Verdict(requests=len(self.received), verified=0)
        for r in self.received:
            hook = hooks.get(r.endpoint)
            if hook is None:
                verdict.unknown_endpoints += 1
                continue
            msg_id = r.headers.get("webhook-id", "")
            try:
                payload: Any = hook.verify(r.body, r.headers)
            except Exception as exc:  # noqa: BLE001 - the library's verification error
                verdict.bad_signatures.append(f"{r.endpoint}/{msg_id}: {exc}")
                continue
            verdict.verified += 1
            if not isinstance(payload, dict) or payload.get("id") != msg_id:
                verdict.id_mismatches += 1
            pair = (r.endpoint, msg_id)
            if pair in verdict.pairs:
                verdict.duplicates += 1
            verdict.pairs.add(pair)
        return verdict


def capacity_request_body() -> bytes:
    """A body of the size of an ``order.paid`` delivery, for the capacity load."""
    return json.dumps({"id": "00000000-0000-0000-0000-000000000000", "type": "order.paid",
                       "data": {"padding": "x" * 1200}}).encode()

"""The outgoing-webhook sender (:class:`tenant.outgoing.transport.Sender`) against a raw
loopback server: keep-alive reuse, answers it must not reuse a connection after, timeouts
and the request forgery guard."""

from __future__ import annotations

import asyncio

import httpcore
import pytest

from core.errors import PaymeshError
from tenant.outgoing import transport
from tenant.outgoing.transport import Sender


class Server:
    """Answers each request with ``answer`` (or says nothing when it is None); records
    the connections and the raw requests."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                if self.answer is None:
                    await asyncio.sleep(10)
                    return
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}


async def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given():
    sender = Sender(timeout_seconds=5, allow_private=True)
    async with Server(OK) as server:
        for _ in range(3):
            assert await sender.post(server.url(), b'{"a":1}', HEADERS) == 200
        await sender.aclose()
    assert server.connections == 1 and len(server.requests) == 3
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"post /hook http/1.1" and body == b'{"a":1}'
    assert f"host: 127.0.0.1:{server.port}".encode() in lines
    assert b"webhook-id: msg_1" in lines and b"content-length: 7" in lines


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (transport.MAX_RESPONSE_BYTES + 10)
    + b"x" * (transport.MAX_RESPONSE_BYTES + 10),
], ids=["connection-close", "answer-too-long"])
async def test_a_connection_is_not_reused_after_close_or_an_overlong_answer(answer):
    sender = Sender(timeout_seconds=5, allow_private=True)
    async with Server(answer) as server:
        first = await sender.post(server.url(), b"{}", HEADERS)
        second = await sender.post(server.url(), b"{}", HEADERS)
        await sender.aclose()
    assert first == second == int(answer.split()[1])
    assert server.connections == 2


async def test_a_silent_receiver_times_out():
    sender = Sender(timeout_seconds=1, allow_private=True)
    async with Server(None) as server:
        with pytest.raises(httpcore.ReadTimeout):
            await sender.post(server.url(), b"{}", HEADERS)
    assert sender.idle == {}


async def test_the_guard_refuses_loopback_unless_allowed():
    sender = Sender(timeout_seconds=5, allow_private=False)
    async with Server(OK) as server:
        with pytest.raises(PaymeshError):
            await sender.post(server.url(), b"{}", HEADERS)
    assert server.connections == 0

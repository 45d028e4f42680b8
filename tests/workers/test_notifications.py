"""Notifications outbox: queued once per business event, delivered with retries (T19)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tenant.notifications import service
from tenant.notifications.models import Notification

pytestmark = pytest.mark.asyncio


class FlakySender:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[str] = []

    async def send(self, notification: Notification) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("smtp down")
        self.sent.append(notification.recipient)


async def test_outbox_dedupes_and_retries_until_sent(client, make_tenant):
    from core.runtime import get_runtime
    from owner.tenants.service import lookup

    tenant = await make_tenant("mail")
    context = await lookup(get_runtime(), slug=tenant.slug)
    sender = FlakySender(failures=2)
    previous = service.get_sender()
    service.set_sender(sender)
    try:
        async with get_runtime().tenant_session(context.db_url) as session:
            for _ in range(3):  # the same business event queues one notice
                await service.queue(session, recipient="p@example.com", template="receipt",
                                    subject="Receipt", body="Thanks", dedupe_key="receipt:o1")
            await service.queue(session, recipient=None, template="receipt", subject="x",
                                body="x", dedupe_key="receipt:nobody")
        statuses = []
        for _ in range(3):
            async with get_runtime().tenant_session(context.db_url) as session:
                ids = await service.due(session)
                assert len(ids) <= 1
                if not ids:  # waiting for its backoff: make it due now
                    row = (await session.scalars(select(Notification))).one()
                    row.next_attempt_at = None
                    ids = [row.id]
                statuses.append(await service.deliver(session, ids[0]))
        assert statuses == ["failed", "failed", "sent"]
        assert sender.sent == ["p@example.com"]
        async with get_runtime().tenant_session(context.db_url) as session:
            row = (await session.scalars(select(Notification))).one()
            assert (row.status, row.attempts) == ("sent", 3)
            assert await service.due(session) == []
            assert await service.deliver(session, row.id) == "sent"  # idempotent
    finally:
        service.set_sender(previous)


async def test_smtp_sender_delivers_to_a_real_smtp_server(client, make_tenant):
    """The SMTP sender talks SMTP: a tiny loopback server records what it receives."""
    import asyncio

    from core.embedded import free_port

    received: list[bytes] = []

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 test ESMTP\r\n")
        data = False
        while line := await reader.readline():
            if data:
                received.append(line)
                if line == b".\r\n":
                    data = False
                    writer.write(b"250 queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                data = True
                writer.write(b"354 go\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(smtp, "127.0.0.1", port)
    try:
        row = Notification(channel="email", recipient="p@example.com", template="receipt",
                           subject="Receipt INV-1", body="Thanks", data={}, dedupe_key="x")
        await service.SmtpSender(f"smtp://127.0.0.1:{port}").send(row)
    finally:
        server.close()
    text = b"".join(received).decode()
    assert "Subject: Receipt INV-1" in text and "To: p@example.com" in text

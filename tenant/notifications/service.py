"""Notifications outbox: queue in the business transaction, deliver with retries (T19).

Senders are pluggable: :class:`LogSender` by default, :class:`SmtpSender` when
``PAYMESH_SMTP_URL`` is set (``smtp://user:pass@host:port``), anything with ``send()`` in
tests.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.sql import Transaction, columns, json_param, sql
from tenant.notifications.models import Notification

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


class Sender(Protocol):
    async def send(self, notification: Notification) -> None: ...


class LogSender:
    """Writes the notice to the log (recipient masked): the safe default."""

    async def send(self, notification: Notification) -> None:
        user, _, domain = notification.recipient.partition("@")
        log.info("notification %s to %s***@%s: %s", notification.template, user[:1], domain,
                 notification.subject)


class SmtpSender:
    def __init__(self, url: str, sender: str = "no-reply@paymesh.local") -> None:
        self.parts = urlsplit(url)
        self.sender = sender

    async def send(self, notification: Notification) -> None:
        message = EmailMessage()
        message["From"], message["To"] = self.sender, notification.recipient
        message["Subject"] = notification.subject
        message.set_content(notification.body)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.parts.hostname or "127.0.0.1", self.parts.port or 25,
                          timeout=10) as smtp:
            if self.parts.username:
                smtp.login(unquote(self.parts.username), unquote(self.parts.password or ""))
            smtp.send_message(message)


_sender: Sender = LogSender()


def set_sender(sender: Sender) -> None:
    global _sender
    _sender = sender


def get_sender() -> Sender:
    return _sender


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice for the outbox; one per ``dedupe_key`` is ever queued."""

    recipient: str | None
    template: str
    subject: str
    body: str
    dedupe_key: str
    data: dict[str, Any] = field(default_factory=dict)
    channel: str = "email"


_QUEUE = """
    INSERT INTO notifications (id, channel, recipient, template, subject, body, data,
                               dedupe_key, status, attempts, created_at, updated_at)
    SELECT n.id, n.channel, n.recipient, n.template, n.subject, n.body, CAST(n.data AS jsonb),
           n.dedupe_key, 'pending', 0, $9, $9
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[])
         AS n(id, channel, recipient, template, subject, body, data, dedupe_key)
    ON CONFLICT (dedupe_key) DO NOTHING
"""


async def queue(db: AsyncSession | Transaction, *, recipient: str | None, template: str,
                subject: str, body: str, dedupe_key: str, data: dict[str, Any] | None = None,
                channel: str = "email") -> None:
    """Add a notice to the outbox in the caller's transaction (once per dedupe key)."""
    await queue_many(db, [Notice(recipient=recipient, template=template, subject=subject,
                                 body=body, dedupe_key=dedupe_key, data=data or {},
                                 channel=channel)])


async def queue_many(db: AsyncSession | Transaction, notices: Sequence[Notice]) -> None:
    """Add notices to the outbox in one statement; those without a recipient are dropped."""
    kept = [n for n in notices if n.recipient]
    if not kept:
        return
    await (await sql(db)).execute(_QUEUE, *columns(
        (uuid.uuid4(), n.channel, n.recipient, n.template, n.subject, n.body,
         json_param(n.data), n.dedupe_key) for n in kept), utcnow())


async def deliver(session: AsyncSession, notification_id: object) -> str:
    """Send one pending notice; returns its new status. Retries back off exponentially."""
    row = (await session.scalars(
        select(Notification).where(Notification.id == notification_id).with_for_update()
    )).first()
    if row is None or row.status in ("sent", "dead"):
        return row.status if row else "missing"
    row.attempts += 1
    try:
        await get_sender().send(row)
    except Exception as exc:  # noqa: BLE001 - any sender failure is retried
        row.last_error = f"{type(exc).__name__}: {exc}"[:500]
        row.status = "dead" if row.attempts >= MAX_ATTEMPTS else "failed"
        row.next_attempt_at = utcnow() + timedelta(seconds=min(3600, 2 ** row.attempts * 5))
        return row.status
    row.status, row.sent_at, row.last_error = "sent", utcnow(), None
    return "sent"


async def due(session: AsyncSession, limit: int = 100) -> list[object]:
    query = (select(Notification.id)
             .where(Notification.status.in_(("pending", "failed")),
                    (Notification.next_attempt_at.is_(None))
                    | (Notification.next_attempt_at <= utcnow()))
             .order_by(Notification.created_at).limit(limit))
    return list((await session.scalars(query)).all())

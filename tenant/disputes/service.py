"""Disputes: reading them, and finding the one a provider's event names.

A provider's dispute is one row per ``(provider, provider_dispute_id)``, opened by its
first webhook and closed (won/lost, :data:`DISPUTE_STATUS`) by its last; recording them is
:mod:`tenant.webhooks.money_events`', their effects :attr:`Movement.DISPUTE_OPENED` …
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fetch_page, where_state
from core.errors import NotFound
from tenant.disputes.models import Dispute
from tenant.disputes.schemas import DisputeOut
from tenant.disputes.states import DisputeStatus


def to_out(row: Dispute) -> DisputeOut:
    return DisputeOut(
        id=str(row.id), order_id=str(row.order_id), payment_id=str(row.payment_id),
        provider=row.provider, provider_dispute_id=row.provider_dispute_id,
        amount=row.amount, currency=row.currency, reason=row.reason, status=row.status,
        evidence_due_by=row.evidence_due_by, opened_at=row.opened_at,
        closed_at=row.closed_at, created_at=row.created_at)


async def list_disputes(session: AsyncSession, *, page: int, limit: int,
                        order_id: uuid.UUID | None = None,
                        status: str | None = None) -> tuple[list[DisputeOut], bool]:
    query = select(Dispute).order_by(Dispute.created_at.desc(), Dispute.id)
    if order_id is not None:
        query = query.where(Dispute.order_id == order_id)
    query = where_state(query, Dispute.status, status, DisputeStatus, "status")
    rows, more = await fetch_page(session, query, page, limit)
    return [to_out(r) for r in rows], more


async def get_dispute(session: AsyncSession, dispute_id: uuid.UUID) -> DisputeOut:
    row = await session.get(Dispute, dispute_id)
    if row is None:
        raise NotFound(f"dispute {dispute_id} not found", param="id")
    return to_out(row)


async def by_provider_id(session: AsyncSession, provider: str,
                         provider_dispute_id: str) -> Dispute | None:
    """The dispute a provider's id names, row-locked (the caller holds the order lock)."""
    return (await session.scalars(select(Dispute).where(
        Dispute.provider == provider, Dispute.provider_dispute_id == provider_dispute_id)
        .with_for_update())).first()


async def others_on(session: AsyncSession, payment_id: uuid.UUID) -> tuple[Dispute | None, int]:
    """A payment's first open dispute (by opening), and how many of its disputes were
    lost (the caller flushed its own change). A provider may open a second dispute once
    the first closed, and their events can arrive in any order: two can be open here."""
    rows = (await session.scalars(select(Dispute).where(Dispute.payment_id == payment_id)
                                  .order_by(Dispute.opened_at, Dispute.id))).all()
    first_open = next((d for d in rows if d.status == DisputeStatus.OPEN), None)
    return first_open, sum(1 for d in rows if d.status == DisputeStatus.LOST)


def due_by(value: Any) -> datetime | None:
    """A provider's evidence deadline (unix seconds or ISO 8601), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(int(value), UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None

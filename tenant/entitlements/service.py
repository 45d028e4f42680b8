"""Entitlements: reading them. Granting, suspending and revoking follow the money (the
settlement effects in :mod:`tenant.entitlements.effects`)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import fetch_page, where_state
from core.errors import ValidationError
from core.limits import EMAIL_LEN
from tenant.entitlements.models import Entitlement
from tenant.entitlements.schemas import EntitlementOut
from tenant.entitlements.states import EntitlementStatus


def to_out(row: Entitlement) -> EntitlementOut:
    return EntitlementOut(
        id=str(row.id), order_id=str(row.order_id), product_id=str(row.product_id),
        customer_email=row.customer_email, status=row.status, license_key=row.license_key,
        granted_at=row.granted_at, revoked_at=row.revoked_at, created_at=row.created_at)


async def list_entitlements(session: AsyncSession, *, page: int, limit: int,
                            order_id: uuid.UUID | None = None,
                            customer_email: str | None = None,
                            status: str | None = None) -> tuple[list[EntitlementOut], bool]:
    query = select(Entitlement).order_by(Entitlement.created_at.desc(), Entitlement.unit,
                                         Entitlement.id)
    if order_id is not None:
        query = query.where(Entitlement.order_id == order_id)
    if customer_email is not None:
        email = customer_email.strip()
        if not email or len(email) > EMAIL_LEN or "\x00" in email:
            raise ValidationError(f"customer_email must be 1 to {EMAIL_LEN} characters",
                                  param="customer_email")
        query = query.where(func.lower(Entitlement.customer_email) == email.lower())
    query = where_state(query, Entitlement.status, status, EntitlementStatus, "status")
    rows, more = await fetch_page(session, query, page, limit)
    return [to_out(r) for r in rows], more

"""Referral codes and commissions (T14, SPEC 3a): ``/v1/referral-codes``,
``/v1/commissions``."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.http import Page, page_params
from core.idempotency import run_idempotent
from tenant.referrals import commissions, service
from tenant.referrals.schemas import (
    CommissionOut,
    ReferralCodeIn,
    ReferralCodeOut,
    ReferralCodePatch,
)


class ReferralCodeController(Controller):
    path = "/v1/referral-codes"
    tags = ["tenant: referrals"]

    @get("/")
    async def list_codes(self, tenant_db: AsyncSession, page: int = 1, limit: int = 50,
                         active: bool | None = None, code: str | None = None,
                         referrer_email: str | None = None) -> Page[ReferralCodeOut]:
        """``code``: the code with this text (case-insensitive)."""
        page, limit = page_params(page, limit)
        data, more = await service.list_codes(tenant_db, page=page, limit=limit,
                                              active=active, code=code,
                                              referrer_email=referrer_email)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @post("/", status_code=201)
    async def create(self, request: Request[Any, Any, Any], tenant_db: AsyncSession,
                     actor: Actor, data: ReferralCodeIn) -> Response[ReferralCodeOut]:
        """422 ``validation_error`` (param ``discount_percent``) for a percent that is not a
        whole number 0–100; 409 ``referral_code_taken`` for a code in use (codes are
        case-insensitive)."""
        async def work() -> tuple[int, ReferralCodeOut]:
            return 201, await service.create(tenant_db, data, actor)

        return await run_idempotent(request, tenant_db, work)

    @get("/{code_id:uuid}")
    async def read(self, tenant_db: AsyncSession, code_id: uuid.UUID) -> ReferralCodeOut:
        return await service.get(tenant_db, code_id)

    @patch("/{code_id:uuid}")
    async def change(self, tenant_db: AsyncSession, actor: Actor, code_id: uuid.UUID,
                     data: ReferralCodePatch) -> ReferralCodeOut:
        """``active``, ``discount_percent`` (orders made before keep their discount)."""
        return await service.update(tenant_db, code_id, data, actor)


class CommissionController(Controller):
    path = "/v1/commissions"
    tags = ["tenant: referrals"]

    @get("/")
    async def list_commissions(self, tenant_db: AsyncSession, page: int = 1,
                               limit: int = 50, status: str | None = None,
                               referral_code: str | None = None,
                               order_id: uuid.UUID | None = None) -> Page[CommissionOut]:
        page, limit = page_params(page, limit)
        data, more = await commissions.list_commissions(
            tenant_db, page=page, limit=limit, status=status, referral_code=referral_code,
            order_id=order_id)
        return Page(data=data, page=page, limit=limit, has_more=more)

    @get("/{commission_id:uuid}")
    async def read(self, tenant_db: AsyncSession, commission_id: uuid.UUID) -> CommissionOut:
        return await commissions.get(tenant_db, commission_id)

    @post("/{commission_id:uuid}/mark-paid", status_code=200)
    async def mark_paid(self, tenant_db: AsyncSession, actor: Actor,
                        commission_id: uuid.UUID) -> CommissionOut:
        """``approved → paid`` (the referrer was paid outside Paymesh); any other status is
        a 409 ``commission_not_approved``."""
        return await commissions.mark_paid(tenant_db, commission_id, actor)

from __future__ import annotations

import uuid

from litestar import Controller, get
from sqlalchemy.ext.asyncio import AsyncSession

from core.http import Page, page_params
from core.money import normalize_currency
from tenant.ledger import service
from tenant.ledger.schemas import BalancesOut, TransactionOut


class LedgerController(Controller):
    path = "/v1/ledger"
    tags = ["tenant: ledger"]

    @get("/balances")
    async def balances(self, tenant_db: AsyncSession,
                       currency: str | None = None) -> BalancesOut:
        rows = await service.balances(tenant_db, normalize_currency(currency) if currency else None)
        return BalancesOut(data=rows, trial_balance=service.trial_balance(rows))

    @get("/transactions")
    async def transactions(self, tenant_db: AsyncSession, order_id: uuid.UUID | None = None,
                           payment_id: uuid.UUID | None = None, kind: str | None = None,
                           page: int = 1, limit: int = 50) -> Page[TransactionOut]:
        page, limit = page_params(page, limit)
        data, more = await service.transactions(tenant_db, page=page, limit=limit,
                                                order_id=order_id, payment_id=payment_id,
                                                kind=kind)
        return Page(data=data, page=page, limit=limit, has_more=more)

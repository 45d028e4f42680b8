from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class BalanceOut(msgspec.Struct, kw_only=True):
    account: str
    name: str
    type: str
    currency: str
    debit: int
    credit: int
    #: Signed by the account's normal side (assets/expenses: debit − credit).
    balance: int


class TrialBalanceOut(msgspec.Struct, kw_only=True):
    currency: str
    debits: int
    credits: int
    balanced: bool


class EntryOut(msgspec.Struct, kw_only=True):
    account: str
    currency: str
    debit: int
    credit: int


class TransactionOut(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    description: str
    order_id: str | None
    payment_id: str | None
    data: dict[str, Any]
    created_at: datetime
    entries: list[EntryOut]


class BalancesOut(msgspec.Struct, kw_only=True):
    data: list[BalanceOut]
    #: Per currency: total debits and credits over every account (always equal).
    trial_balance: list[TrialBalanceOut]

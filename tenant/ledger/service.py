"""Posting to the ledger and reading it back.

:func:`post` is the one posting API: callers pass balanced lines and a posting key in the
same session (transaction) as the business change they record. It checks the balance in
Python for a clear error, and the database checks it again at commit (a deferred
constraint trigger), so no code path — buggy or hand-written SQL — can commit an
unbalanced transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tenant.ledger import accounts
from tenant.ledger.models import DEBIT_NORMAL, AccountType, LedgerAccount, LedgerEntry
from tenant.ledger.models import LedgerTransaction
from tenant.ledger.schemas import BalanceOut, EntryOut, TransactionOut, TrialBalanceOut


@dataclass(frozen=True)
class Line:
    account: str
    debit: int = 0
    credit: int = 0
    #: Defaults to the posting's currency.
    currency: str | None = None


class UnbalancedPosting(ValueError):
    """A programming error: the lines of a posting do not sum to zero per currency."""


def _check(lines: Sequence[Line], currency: str) -> list[Line]:
    kept: list[Line] = []
    sums: dict[str, int] = defaultdict(int)
    for line in lines:
        if line.debit < 0 or line.credit < 0 or (line.debit and line.credit):
            raise UnbalancedPosting(f"line {line} must have one non-negative side")
        if line.debit == 0 and line.credit == 0:
            continue
        accounts.describe(line.account)  # KeyError for accounts outside the chart
        kept.append(line)
        sums[line.currency or currency] += line.debit - line.credit
    off = {c: s for c, s in sums.items() if s}
    if off:
        raise UnbalancedPosting(f"posting does not balance: {off}")
    return kept


async def _account_ids(session: AsyncSession, codes: set[str]) -> dict[str, uuid.UUID]:
    for code in sorted(codes):
        name, kind = accounts.describe(code)
        await session.execute(insert(LedgerAccount).values(
            id=uuid.uuid4(), code=code, name=name, type=kind.value,
        ).on_conflict_do_nothing(index_elements=["code"]))
    rows = await session.execute(select(LedgerAccount.code, LedgerAccount.id)
                                 .where(LedgerAccount.code.in_(codes)))
    return {code: ident for code, ident in rows.all()}


async def post(session: AsyncSession, *, key: str, kind: str, currency: str,
               lines: Sequence[Line], order_id: uuid.UUID | None = None,
               payment_id: uuid.UUID | None = None, description: str = "",
               data: dict[str, Any] | None = None) -> uuid.UUID | None:
    """Post one journal transaction; ``None`` if ``key`` was posted before or all lines
    are zero (nothing moved)."""
    kept = _check(lines, currency)
    if not kept:
        return None
    txn_id = uuid.uuid4()
    inserted = await session.scalar(insert(LedgerTransaction).values(
        id=txn_id, posting_key=key, kind=kind, description=description[:500],
        order_id=order_id, payment_id=payment_id, data=data or {},
    ).on_conflict_do_nothing(index_elements=["posting_key"]).returning(LedgerTransaction.id))
    if inserted is None:
        return None
    ids = await _account_ids(session, {line.account for line in kept})
    await session.execute(insert(LedgerEntry), [
        {"id": uuid.uuid4(), "transaction_id": txn_id, "position": n,
         "account_id": ids[line.account], "currency": line.currency or currency,
         "debit": line.debit, "credit": line.credit}
        for n, line in enumerate(kept)
    ])
    return txn_id


# ----------------------------------------------------------------------------- postings


async def post_capture(session: AsyncSession, *, payment_id: uuid.UUID, order_id: uuid.UUID,
                       provider: str, currency: str, amount: int, tax: int,
                       fee: int | None, cash: bool = False) -> uuid.UUID | None:
    """A captured payment: revenue and tax recognised against the customer, the customer's
    debt settled by the provider (or the till), the provider's fee expensed."""
    holder = accounts.CASH_ON_HAND if cash else accounts.clearing(provider)
    fee = fee or 0
    lines = [
        Line(accounts.CUSTOMER_RECEIVABLE, debit=amount),
        Line(accounts.REVENUE, credit=amount - tax),
        Line(accounts.TAX_PAYABLE, credit=tax),
        Line(holder, debit=amount),
        Line(accounts.CUSTOMER_RECEIVABLE, credit=amount),
        Line(accounts.PROVIDER_FEES, debit=fee),
        Line(holder, credit=fee),
    ]
    kind = "payment.cash_received" if cash else "payment.captured"
    return await post(session, key=f"{kind}:{payment_id}", kind=kind, currency=currency,
                      lines=lines, order_id=order_id, payment_id=payment_id,
                      description=f"{provider} payment", data={"provider": provider,
                                                             "fee": fee, "tax": tax})


# ----------------------------------------------------------------------------- reading


async def balances(session: AsyncSession, currency: str | None = None) -> list[BalanceOut]:
    query = (
        select(LedgerAccount.code, LedgerAccount.name, LedgerAccount.type,
               LedgerEntry.currency, func.sum(LedgerEntry.debit), func.sum(LedgerEntry.credit))
        .join(LedgerEntry, LedgerEntry.account_id == LedgerAccount.id)
        .group_by(LedgerAccount.code, LedgerAccount.name, LedgerAccount.type,
                  LedgerEntry.currency)
        .order_by(LedgerAccount.code, LedgerEntry.currency)
    )
    if currency:
        query = query.where(LedgerEntry.currency == currency)
    out = []
    for code, name, kind, cur, debit, credit in (await session.execute(query)).all():
        debit, credit = int(debit), int(credit)
        sign = 1 if AccountType(kind) in DEBIT_NORMAL else -1
        out.append(BalanceOut(account=code, name=name, type=kind, currency=cur, debit=debit,
                              credit=credit, balance=sign * (debit - credit)))
    return out


def trial_balance(rows: list[BalanceOut]) -> list[TrialBalanceOut]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        per[row.currency][0] += row.debit
        per[row.currency][1] += row.credit
    return [TrialBalanceOut(currency=c, debits=d, credits=k, balanced=d == k)
            for c, (d, k) in sorted(per.items())]


async def transactions(session: AsyncSession, *, page: int, limit: int,
                       order_id: uuid.UUID | None = None, payment_id: uuid.UUID | None = None,
                       kind: str | None = None) -> tuple[list[TransactionOut], bool]:
    query = select(LedgerTransaction).order_by(LedgerTransaction.created_at,
                                               LedgerTransaction.id)
    if order_id is not None:
        query = query.where(LedgerTransaction.order_id == order_id)
    if payment_id is not None:
        query = query.where(LedgerTransaction.payment_id == payment_id)
    if kind:
        query = query.where(LedgerTransaction.kind == kind)
    rows = list((await session.scalars(query.offset((page - 1) * limit).limit(limit + 1))).all())
    codes = dict((await session.execute(select(LedgerAccount.id, LedgerAccount.code))).all())
    return [
        TransactionOut(
            id=str(t.id), kind=t.kind, description=t.description,
            order_id=str(t.order_id) if t.order_id else None,
            payment_id=str(t.payment_id) if t.payment_id else None, data=t.data,
            created_at=t.created_at,
            entries=[EntryOut(account=codes[e.account_id], currency=e.currency, debit=e.debit,
                              credit=e.credit) for e in t.entries],
        )
        for t in rows[:limit]
    ], len(rows) > limit


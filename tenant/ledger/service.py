"""Posting to the ledger and reading it back.

:func:`post` is the one posting API: callers pass balanced lines and a posting key in the
same session (transaction) as the business change they record. It checks the balance in
Python for a clear error, and the database checks it again at commit (a deferred
constraint trigger), so no code path — buggy or hand-written SQL — can commit an
unbalanced transaction.
"""

from __future__ import annotations

import uuid
import weakref
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.sql import Sql, Transaction, json_param, sql
from tenant.ledger import accounts
from tenant.ledger.models import (
    DEBIT_NORMAL,
    AccountType,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
)
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


@dataclass
class _Accounts:
    """What one database connection knows of the chart: codes seen committed, and codes
    it created itself, with the transaction that did (maybe not committed yet)."""

    existing: set[str] = field(default_factory=set)
    created: dict[str, str] = field(default_factory=dict)


#: Per connection: a dropped database takes its connections with it, so a code remembered
#: here exists.
_ACCOUNTS: weakref.WeakKeyDictionary[Any, _Accounts] = weakref.WeakKeyDictionary()

_CREATE_ACCOUNTS = """
    WITH created AS (
        INSERT INTO ledger_accounts (id, code, name, type, created_at)
        SELECT gen_random_uuid(), a.code, a.name, a.type, now()
        FROM unnest($1::text[], $2::text[], $3::text[]) AS a(code, name, type)
        ON CONFLICT (code) DO NOTHING
        RETURNING code
    )
    SELECT CAST(pg_current_xact_id() AS text) AS xact, ARRAY(SELECT code FROM created) AS codes
"""

#: The journal transaction and its entries in one statement; no entries when the posting
#: key was used before. Accounts are found by code (a missing one fails the NOT NULL).
_POST = """
    WITH txn AS (
        INSERT INTO ledger_transactions (id, posting_key, kind, description, order_id,
                                         payment_id, data, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (posting_key) DO NOTHING
        RETURNING id
    )
    INSERT INTO ledger_entries (id, transaction_id, position, account_id, currency, debit,
                                credit)
    SELECT gen_random_uuid(), txn.id, e.position - 1,
           (SELECT a.id FROM ledger_accounts a WHERE a.code = e.account), e.currency,
           e.debit, e.credit
    FROM txn, unnest($9::text[], $10::text[], $11::bigint[], $12::bigint[])
              WITH ORDINALITY AS e(account, currency, debit, credit, position)
    RETURNING transaction_id
"""


async def _ensure_accounts(db: Sql, codes: set[str]) -> None:
    """Create the accounts ``codes`` that do not exist yet (chart of accounts).

    A later statement of this transaction sees them: ``ON CONFLICT DO NOTHING`` waits for
    a concurrent creator to commit. A code that conflicts exists committed, unless this
    very transaction created it: only the others are remembered as existing.
    """
    known = _ACCOUNTS.setdefault(db.conn, _Accounts())
    missing = sorted(codes - known.existing)
    if not missing:
        return
    described = [accounts.describe(code) for code in missing]
    xact, created = await db.fetchrow(
        _CREATE_ACCOUNTS, missing, [name for name, _ in described],
        [kind.value for _, kind in described])
    for code in missing:
        if code in created:
            known.created[code] = xact
        elif known.created.get(code) != xact:
            known.created.pop(code, None)
            known.existing.add(code)


async def post(db: AsyncSession | Transaction, *, key: str, kind: str, currency: str,
               lines: Sequence[Line], order_id: uuid.UUID | None = None,
               payment_id: uuid.UUID | None = None, description: str = "",
               data: dict[str, Any] | None = None) -> uuid.UUID | None:
    """Post one journal transaction; ``None`` if ``key`` was posted before or all lines
    are zero (nothing moved)."""
    kept = _check(lines, currency)
    if not kept:
        return None
    statements = await sql(db)
    await _ensure_accounts(statements, {line.account for line in kept})
    txn_id = uuid.uuid4()
    posted = await statements.fetchrow(
        _POST, txn_id, key, kind, description[:500], order_id, payment_id,
        json_param(data or {}), utcnow(), [line.account for line in kept],
        [line.currency or currency for line in kept], [line.debit for line in kept],
        [line.credit for line in kept])
    return txn_id if posted is not None else None


# ----------------------------------------------------------------------------- postings


async def post_capture(db: AsyncSession | Transaction, *, payment_id: uuid.UUID,
                       order_id: uuid.UUID, provider: str, currency: str, amount: int,
                       tax: int, fee: int | None, cash: bool = False) -> uuid.UUID | None:
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
    return await post(db, key=f"{kind}:{payment_id}", kind=kind, currency=currency,
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


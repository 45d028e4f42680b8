"""Posting to the ledger and reading it back.

:func:`post` is the one posting API (:func:`post_many` for several at once): callers pass
balanced lines and a posting key in the same session (transaction) as the business change
they record. It checks the balance in Python for a clear error, and the database checks
it again (a statement trigger, with a deferred re-check at commit for postings written in
several statements), so no code path — buggy or hand-written SQL — can commit an
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

from core.db import fetch_page, utcnow
from core.sql import Sql, Transaction, columns, json_param, sql
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

#: Journal transactions ($1–$7: one array element per transaction; $8: now) and all
#: their entries ($9–$14: one element per entry) in one statement, whatever their number,
#: so it is planned once per batch. A transaction whose posting key was used before is
#: left out with its entries. Accounts are found by code (a missing one fails the NOT NULL).
_POST = """
    WITH txn AS (
        INSERT INTO ledger_transactions (id, posting_key, kind, description, order_id,
                                         payment_id, data, created_at)
        SELECT t.id, t.posting_key, t.kind, t.description, t.order_id, t.payment_id,
               CAST(t.data AS jsonb), $8
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::uuid[],
                    $7::text[])
             AS t(id, posting_key, kind, description, order_id, payment_id, data)
        ON CONFLICT (posting_key) DO NOTHING
        RETURNING id
    ),
    entries AS (
        INSERT INTO ledger_entries (id, transaction_id, position, account_id, currency,
                                    debit, credit)
        SELECT gen_random_uuid(), e.transaction_id, e.position,
               (SELECT a.id FROM ledger_accounts a WHERE a.code = e.account), e.currency,
               e.debit, e.credit
        FROM unnest($9::uuid[], $10::integer[], $11::text[], $12::text[], $13::bigint[],
                    $14::bigint[])
             AS e(transaction_id, position, account, currency, debit, credit)
        WHERE e.transaction_id IN (SELECT id FROM txn)
    )
    SELECT id FROM txn
"""


@dataclass(frozen=True, slots=True)
class Posting:
    """One journal transaction for :func:`post_many` (the arguments of :func:`post`)."""

    key: str
    kind: str
    currency: str
    lines: Sequence[Line]
    order_id: uuid.UUID | None = None
    payment_id: uuid.UUID | None = None
    description: str = ""
    data: dict[str, Any] | None = None


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
    posted, = await post_many(db, [Posting(key, kind, currency, lines, order_id, payment_id,
                                           description, data)])
    return posted


async def post_many(db: AsyncSession | Transaction,
                    postings: Sequence[Posting]) -> list[uuid.UUID | None]:
    """Post several journal transactions in one statement (a worker's batch of captures);
    for each, its id, or ``None`` as :func:`post` (a key repeated in ``postings`` is
    posted once). Nothing is posted if any of them does not balance."""
    lines = [_check(posting.lines, posting.currency) for posting in postings]
    ids = [uuid.uuid4() if kept else None for kept in lines]
    due = [(txn_id, posting, kept)
           for txn_id, posting, kept in zip(ids, postings, lines, strict=True) if kept]
    if not due:
        return ids
    statements = await sql(db)
    await _ensure_accounts(statements, {line.account for *_, kept in due for line in kept})
    txns = [(txn_id, p.key, p.kind, p.description[:500], p.order_id, p.payment_id,
             json_param(p.data or {})) for txn_id, p, _ in due]
    entries = [(txn_id, position, line.account, line.currency or p.currency, line.debit,
                line.credit)
               for txn_id, p, kept in due for position, line in enumerate(kept)]
    rows = await statements.fetch(_POST, *columns(txns), utcnow(), *columns(entries))
    posted = {row["id"] for row in rows}
    return [txn_id if txn_id in posted else None for txn_id in ids]


# ----------------------------------------------------------------------------- postings


def capture(*, payment_id: uuid.UUID, order_id: uuid.UUID, provider: str, currency: str,
            amount: int, tax: int, fee: int | None, cash: bool = False) -> Posting:
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
    return Posting(key=f"{kind}:{payment_id}", kind=kind, currency=currency, lines=lines,
                   order_id=order_id, payment_id=payment_id, description=f"{provider} payment",
                   data={"provider": provider, "fee": fee, "tax": tax})


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
    rows, more = await fetch_page(session, query, page, limit)
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
        for t in rows
    ], more


from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    String,
    Table,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import IdMixin, TenantBase, utcnow


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    CONTRA_REVENUE = "contra_revenue"  # refunds: reduce revenue, debit-normal
    EXPENSE = "expense"


#: Types whose balance grows with debits (the rest grow with credits).
DEBIT_NORMAL = frozenset({AccountType.ASSET, AccountType.EXPENSE, AccountType.CONTRA_REVENUE})


class LedgerAccount(IdMixin, TenantBase):
    """An account of the chart (see :mod:`tenant.ledger.accounts`); balances are per
    currency, computed from entries, never stored. The chart only grows: the database
    refuses to delete an account or change its id."""

    __tablename__ = "ledger_accounts"

    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now())

    __table_args__ = (
        CheckConstraint(f"type IN ({', '.join(repr(t.value) for t in AccountType)})",
                        name="type_valid"),
    )


class LedgerTransaction(IdMixin, TenantBase):
    """One journal transaction. ``posting_key`` makes posting idempotent: the same
    business event (e.g. ``payment.captured:<attempt id>``) can be posted only once."""

    __tablename__ = "ledger_transactions"

    posting_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(48))
    description: Mapped[str] = mapped_column(String(500), default="")
    order_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    payment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), index=True)

    entries: Mapped[list[LedgerEntry]] = relationship(
        lazy="selectin", order_by="LedgerEntry.position",
        primaryjoin="LedgerTransaction.id == foreign(LedgerEntry.transaction_id)")


class LedgerEntry(IdMixin, TenantBase):
    """One side of a posting. Exactly one of ``debit``/``credit`` is positive.

    The database refuses, at commit, any transaction whose entries do not sum to zero
    per currency, and refuses any UPDATE or DELETE (a correction is a new posting).
    ``transaction_id`` and ``account_id`` must name existing rows, checked once per
    statement rather than by per-row foreign keys (migration 0005); what they name can
    never be deleted.
    """

    __tablename__ = "ledger_entries"

    transaction_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    position: Mapped[int] = mapped_column(default=0)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    currency: Mapped[str] = mapped_column(String(3))
    debit: Mapped[int] = mapped_column(BigInteger, default=0)
    credit: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        CheckConstraint("debit >= 0 AND credit >= 0 AND (debit = 0) <> (credit = 0)",
                        name="one_sided"),
        Index("ix_ledger_entries_account_currency", "account_id", "currency"),
    )


#: Journal transactions that did not balance at the end of a statement, checked again at
#: commit by a deferred trigger that removes them (migration 0004); empty between
#: transactions. Declared so autogenerate knows the table; no code reads or writes it.
ledger_balance_checks = Table(
    "ledger_balance_checks", TenantBase.metadata,
    Column("transaction_id", Uuid, nullable=False),
)

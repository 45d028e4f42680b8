"""FX rates in the owner database, shared by every tenant (O6)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Identity, Index, Numeric, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from core.db import OwnerBase, utcnow
from core.fx import RATE_DECIMALS, RATE_INTEGER_DIGITS
from core.limits import CURRENCY_LEN

RATE = Numeric(RATE_INTEGER_DIGITS + RATE_DECIMALS, RATE_DECIMALS)
#: What a stored rate can be: the last one fetched from the rate API, or an override.
STORED_SOURCES = ("api", "manual")


class FxRate(OwnerBase):
    """The current rate of one currency from one source (units per 1 USD).

    At most two rows per currency: ``api`` (the last rate fetched; fresh or expired
    depending on ``fetched_at``) and ``manual`` (the owner's override, which wins while
    it exists). Removing an override deletes its row; the fetched rate stays.
    """

    __tablename__ = "fx_rates"

    currency: Mapped[str] = mapped_column(String(CURRENCY_LEN), primary_key=True)
    source: Mapped[str] = mapped_column(String(8), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(RATE)
    #: When the API answered with this rate, or when the owner set it.
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The owner key that set an override (``None`` for fetched rates).
    set_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        CheckConstraint("source IN ('api', 'manual')", name="source_valid"),
        CheckConstraint("rate > 0", name="rate_positive"),
    )


class FxRateHistory(OwnerBase):
    """Every rate ever fetched or set, append-only: ``source`` ``api`` (a fetch) or
    ``manual`` (an override set; ``rate`` NULL: the override was removed)."""

    __tablename__ = "fx_rate_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    currency: Mapped[str] = mapped_column(String(CURRENCY_LEN))
    source: Mapped[str] = mapped_column(String(8))
    rate: Mapped[Decimal | None] = mapped_column(RATE)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    set_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    __table_args__ = (
        CheckConstraint("source IN ('api', 'manual')", name="source_valid"),
        CheckConstraint("rate > 0", name="rate_positive"),
        Index("ix_fx_rate_history_currency_recorded_at", "currency", "recorded_at"),
    )

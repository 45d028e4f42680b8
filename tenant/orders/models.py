from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import IdMixin, TenantBase, TimestampMixin, utcnow
from core.limits import COUPON_LEN, EMAIL_LEN, REASON_LEN
from tenant.orders.states import Fulfillment, OrderStatus, PaymentStatus
from tenant.products import models as _products  # noqa: F401 - registers the FK target


def _in(column: str, values: type) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"  # type: ignore[attr-defined]


class InvoiceCounter(TenantBase):
    """Source of the human invoice numbers (``INV-000042``): one row, incremented in the
    order's own transaction, so a refused order gives its number back (no gaps)."""

    __tablename__ = "invoice_counter"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("id = 1", name="one_row"),
        CheckConstraint("last_number >= 0", name="last_number_nonnegative"),
    )


class Order(IdMixin, TimestampMixin, TenantBase):
    """An order or invoice. Amounts are minor units of ``currency``; they never change
    after creation (refunds and disputes are recorded beside it, not by editing it)."""

    __tablename__ = "orders"

    number: Mapped[str] = mapped_column(String(32), unique=True)
    #: The unguessable secret in the customer's payment link.
    pay_token: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(24), default=OrderStatus.PENDING_PAYMENT)
    payment_status: Mapped[str] = mapped_column(String(24), default=PaymentStatus.NOT_PAID)
    fulfillment: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    customer_email: Mapped[str] = mapped_column(String(EMAIL_LEN))
    subtotal: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger)
    #: What the customer would have paid without any discount (tax included).
    original_amount: Mapped[int] = mapped_column(BigInteger)
    #: The tenant's tax rate (percent) when the order was made.
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(7, 4), default=Decimal(0))
    coupon_code: Mapped[str | None] = mapped_column(String(COUPON_LEN))
    referral_code: Mapped[str | None] = mapped_column(String(COUPON_LEN))
    #: The part of ``discount`` the referral code gave (the rest is the coupon's).
    referral_discount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    #: Anomalies for staff: late payment on a cancelled order, oversold stock, …
    flags: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The sum of the order's succeeded refunds (kept by :mod:`tenant.orders.effects`).
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: The provider whose capture paid the order and that capture's fee (kept at
    #: capture, so the revenue report reads one table; migration 0014).
    paid_provider: Mapped[str | None] = mapped_column(String(32))
    provider_fee: Mapped[int | None] = mapped_column(BigInteger)
    #: What lost disputes cost the order: amounts and dispute fees (kept by
    #: :mod:`tenant.reports.effects`, like ``amount_refunded``).
    dispute_losses: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_reason: Mapped[str | None] = mapped_column(String(REASON_LEN))

    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", lazy="selectin", order_by="OrderItem.position",
        cascade="all, delete-orphan")

    __table_args__ = (
        CheckConstraint(_in("status", OrderStatus), name="status_valid"),
        CheckConstraint(_in("payment_status", PaymentStatus), name="payment_status_valid"),
        CheckConstraint(_in("fulfillment", Fulfillment), name="fulfillment_valid"),
        CheckConstraint("subtotal >= 0 AND discount >= 0 AND tax >= 0 AND discount <= subtotal",
                        name="amounts_nonneg"),
        CheckConstraint("total = subtotal - discount + tax", name="total_adds_up"),
        CheckConstraint("dispute_losses >= 0 AND (provider_fee IS NULL OR provider_fee >= 0)",
                        name="report_amounts_nonneg"),
        Index("ix_orders_created_at", "created_at"),
        Index("ix_orders_status_created_at", "status", "created_at"),
        #: The revenue report's one scan (``tenant/reports/revenue.py``).
        Index("ix_orders_paid_report", "paid_at",
              postgresql_include=["currency", "paid_provider", "total", "discount", "tax",
                                  "amount_refunded", "provider_fee", "dispute_losses"],
              postgresql_where=text("paid_at IS NOT NULL")),
    )


class OrderItem(IdMixin, TenantBase):
    __tablename__ = "order_items"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("products.id"), index=True)
    description: Mapped[str] = mapped_column(String(REASON_LEN))
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)

    order: Mapped[Order] = relationship(back_populates="items")

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_amount >= 0", name="unit_amount_nonneg"),
        CheckConstraint("amount = quantity * unit_amount", name="amount_adds_up"),
    )


class ReservationStatus(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"  # order cancelled or payment failed
    EXPIRED = "expired"  # held longer than the tenant's reservation TTL
    CONVERTED = "converted"  # paid: the units left stock for good


class Reservation(IdMixin, TenantBase):
    """Units of one product held for one unpaid order until ``expires_at``."""

    __tablename__ = "inventory_reservations"

    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ReservationStatus.ACTIVE)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("status IN ('active', 'released', 'expired', 'converted')",
                        name="status_valid"),
        Index("ix_inventory_reservations_order_id", "order_id"),
        Index("uq_inventory_reservations_active", "order_id", "product_id", unique=True,
              postgresql_where=text("status = 'active'")),
        Index("ix_inventory_reservations_due", "expires_at",
              postgresql_where=text("status = 'active'")),
    )



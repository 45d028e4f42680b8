from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import IdMixin, TenantBase, TimestampMixin
from core.limits import NAME_LEN


class ProductKind(StrEnum):
    PHYSICAL = "physical"
    DIGITAL = "digital"
    SERVICE = "service"


class Product(IdMixin, TimestampMixin, TenantBase):
    """Something a tenant sells. ``stock`` NULL means "not tracked" (never runs out).

    ``reserved`` counts units held for unpaid orders; the database refuses to let it
    exceed ``stock``, so no race can oversell even if application code were wrong.
    """

    __tablename__ = "products"

    name: Mapped[str] = mapped_column(String(NAME_LEN))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int | None] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)

    __table_args__ = (
        CheckConstraint("kind IN ('physical', 'digital', 'service')", name="kind_valid"),
        CheckConstraint("price >= 0", name="price_nonneg"),
        CheckConstraint("stock IS NULL OR kind = 'physical'", name="stock_physical_only"),
        CheckConstraint("reserved >= 0", name="reserved_nonneg"),
        CheckConstraint("(stock IS NULL AND reserved = 0) OR (stock >= 0 AND reserved <= stock)",
                        name="reserved_within_stock"),
    )

from __future__ import annotations

import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import IdMixin, OwnerBase, TimestampMixin
from core.limits import CODE_LEN, PROVIDER_NAME_LEN, URL_LEN


class CatalogStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    DEPRECATED = "deprecated"
    BETA = "beta"


class Provider(IdMixin, TimestampMixin, OwnerBase):
    """A payment provider the platform offers (the global catalog, O1)."""

    __tablename__ = "providers"

    code: Mapped[str] = mapped_column(String(CODE_LEN), unique=True)
    name: Mapped[str] = mapped_column(String(PROVIDER_NAME_LEN))
    description: Mapped[str] = mapped_column(Text, default="")
    logo_url: Mapped[str | None] = mapped_column(String(URL_LEN))
    website_url: Mapped[str | None] = mapped_column(String(URL_LEN))
    docs_url: Mapped[str | None] = mapped_column(String(URL_LEN))
    api_base_url: Mapped[str | None] = mapped_column(String(URL_LEN))
    sandbox_api_base_url: Mapped[str | None] = mapped_column(String(URL_LEN))
    payment_methods: Mapped[list[str]] = mapped_column(JSONB, default=list)
    features: Mapped[list[str]] = mapped_column(JSONB, default=list)
    required_keys: Mapped[list[str]] = mapped_column(JSONB, default=list)
    config_schema: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=CatalogStatus.ACTIVE)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    integration_type: Mapped[str] = mapped_column(String(CODE_LEN), default="api")
    handler_key: Mapped[str] = mapped_column(String(CODE_LEN))

    currencies: Mapped[list[ProviderCurrency]] = relationship(
        back_populates="provider", lazy="selectin", order_by="ProviderCurrency.currency"
    )

    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'inactive', 'deprecated', 'beta')", name="status_valid"
        ),
    )


class ProviderCurrency(IdMixin, TimestampMixin, OwnerBase):
    """What one provider supports in one currency: fees and limits (O2)."""

    __tablename__ = "provider_currencies"

    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    is_recommended: Mapped[bool] = mapped_column(Boolean, default=False)
    fee_percent: Mapped[Decimal] = mapped_column(Numeric(6, 3), default=Decimal(0))
    fixed_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    min_amount: Mapped[int | None] = mapped_column(BigInteger)
    max_amount: Mapped[int | None] = mapped_column(BigInteger)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    provider: Mapped[Provider] = relationship(back_populates="currencies")

    __table_args__ = (
        UniqueConstraint("provider_id", "currency"),
        CheckConstraint("fee_percent >= 0 AND fee_percent < 100", name="fee_percent_range"),
        CheckConstraint("fixed_fee >= 0", name="fixed_fee_nonneg"),
        CheckConstraint(
            "min_amount IS NULL OR max_amount IS NULL OR min_amount <= max_amount",
            name="limits_ordered",
        ),
    )

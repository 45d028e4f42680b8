from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import IdMixin, OwnerBase, TimestampMixin
from core.limits import CLUSTER_NAME_LEN, CLUSTER_URL_LEN, NAME_LEN, SLUG_LEN


class DbCluster(IdMixin, TimestampMixin, OwnerBase):
    """A Postgres server that hosts tenant databases (O4).

    ``url`` points at the server's maintenance database; tenant databases live beside it.
    """

    __tablename__ = "db_clusters"

    name: Mapped[str] = mapped_column(String(CLUSTER_NAME_LEN), unique=True)
    url: Mapped[str] = mapped_column(String(CLUSTER_URL_LEN))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_tenants: Mapped[int | None] = mapped_column(Integer)

    tenants: Mapped[list[Tenant]] = relationship(back_populates="cluster", lazy="raise")


class Tenant(IdMixin, TimestampMixin, OwnerBase):
    """A customer of the platform, with its own database on one cluster (O3)."""

    __tablename__ = "tenants"

    slug: Mapped[str] = mapped_column(String(SLUG_LEN), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    default_currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="active")
    cluster_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("db_clusters.id"), index=True)
    db_name: Mapped[str] = mapped_column(String(63), unique=True)
    master_key_id: Mapped[str] = mapped_column(String(32))
    wrapped_data_key: Mapped[bytes] = mapped_column(LargeBinary)

    cluster: Mapped[DbCluster] = relationship(back_populates="tenants", lazy="joined")

    __table_args__ = (
        CheckConstraint("status IN ('provisioning', 'active', 'suspended')", name="status_valid"),
        CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'", name="slug_format"),
    )


class Installation(OwnerBase):
    """The one row naming this installation: its id goes into the names of the databases
    it creates (template, tenants), so two installations on one server never collide."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="1")
    installation_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

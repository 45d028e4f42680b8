from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from core.errors import ValidationError


class TenantIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    slug: str
    name: str
    default_currency: str
    cluster: str | None = None


class TenantPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: Literal["active", "suspended"] | msgspec.UnsetType = msgspec.UNSET
    name: str | msgspec.UnsetType = msgspec.UNSET


class TenantOut(msgspec.Struct, kw_only=True):
    id: str
    slug: str
    name: str
    default_currency: str
    status: str
    cluster: str
    created_at: datetime


class TenantCreated(msgspec.Struct, kw_only=True):
    tenant: TenantOut
    api_key: str


class ClusterIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    url: str
    max_tenants: int | None = None


class ClusterPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Omitted fields keep their value. ``active`` is the same switch as ``is_active``
    (the name the GET answer uses); sending both with different values is refused."""

    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    max_tenants: int | None | msgspec.UnsetType = msgspec.UNSET

    def switch(self) -> bool | None:
        """The requested ``is_active``, or ``None`` when neither name was sent."""
        values = {v for v in (self.is_active, self.active) if v is not msgspec.UNSET}
        if len(values) > 1:
            raise ValidationError("active and is_active disagree", param="active")
        return values.pop() if values else None


class ClusterOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    url: str
    is_active: bool
    max_tenants: int | None
    tenant_count: int

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core.errors import ValidationError
from core.limits import (
    CLUSTER_NAME_LEN,
    CLUSTER_URL_LEN,
    CURRENCY_LEN,
    NAME_LEN,
    SLUG_LEN,
    SmallCount,
)

TenantName = Annotated[str, msgspec.Meta(max_length=NAME_LEN)]
ClusterName = Annotated[str, msgspec.Meta(max_length=CLUSTER_NAME_LEN)]


class TenantIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    slug: Annotated[str, msgspec.Meta(max_length=SLUG_LEN)]
    name: TenantName
    default_currency: Annotated[str, msgspec.Meta(max_length=CURRENCY_LEN)]
    cluster: ClusterName | None = None


class TenantPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: Literal["active", "suspended"] | msgspec.UnsetType = msgspec.UNSET
    name: TenantName | msgspec.UnsetType = msgspec.UNSET


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
    name: ClusterName
    url: Annotated[str, msgspec.Meta(max_length=CLUSTER_URL_LEN)]
    max_tenants: SmallCount | None = None


class ClusterPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Omitted fields keep their value. ``active`` is the same switch as ``is_active``
    (the name the GET answer uses); sending both with different values is refused."""

    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    max_tenants: SmallCount | None | msgspec.UnsetType = msgspec.UNSET

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

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec


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
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    max_tenants: int | None | msgspec.UnsetType = msgspec.UNSET


class ClusterOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    url: str
    is_active: bool
    max_tenants: int | None
    tenant_count: int

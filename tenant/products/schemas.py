from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from core.limits import NAME_LEN, Amount

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_LEN)]
Stock = Annotated[int, msgspec.Meta(ge=0, le=10**9)]


class ProductIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/products``. ``price`` in minor units of ``currency``."""

    name: Name
    kind: Literal["physical", "digital", "service"]
    price: Amount
    currency: str
    description: Annotated[str, msgspec.Meta(max_length=5000)] = ""
    #: Physical products only; omit for "not tracked".
    stock: Stock | None = None
    active: bool = True
    metadata: dict[str, Annotated[str, msgspec.Meta(max_length=500)]] = {}


class ProductPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PATCH /v1/products/{id}``; omitted fields keep their value."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Annotated[str, msgspec.Meta(max_length=5000)] | msgspec.UnsetType = msgspec.UNSET
    price: Amount | msgspec.UnsetType = msgspec.UNSET
    stock: Stock | None | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class ProductOut(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str
    kind: str
    price: int
    currency: str
    stock: int | None
    reserved: int
    #: Units that can still be ordered (``null`` when stock is not tracked).
    available: int | None
    active: bool
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

Status = Literal["active", "inactive", "deprecated", "beta"]


class CurrencySupport(msgspec.Struct, kw_only=True):
    currency: str
    is_recommended: bool = False
    fee_percent: Decimal = Decimal(0)
    fixed_fee: int = 0
    min_amount: int | None = None
    max_amount: int | None = None
    is_active: bool = True


class CurrencySupportIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    is_recommended: bool = False
    fee_percent: Decimal = Decimal(0)
    fixed_fee: int = 0
    min_amount: int | None = None
    max_amount: int | None = None
    is_active: bool = True


class ProviderIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: str
    name: str
    handler_key: str
    description: str = ""
    logo_url: str | None = None
    website_url: str | None = None
    docs_url: str | None = None
    api_base_url: str | None = None
    sandbox_api_base_url: str | None = None
    payment_methods: list[str] = []
    features: list[str] = []
    required_keys: list[str] = []
    config_schema: dict[str, Any] = {}
    status: Status = "active"
    is_default: bool = False
    priority: int = 100
    integration_type: str = "api"


class ProviderPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    logo_url: str | None | msgspec.UnsetType = msgspec.UNSET
    website_url: str | None | msgspec.UnsetType = msgspec.UNSET
    docs_url: str | None | msgspec.UnsetType = msgspec.UNSET
    api_base_url: str | None | msgspec.UnsetType = msgspec.UNSET
    sandbox_api_base_url: str | None | msgspec.UnsetType = msgspec.UNSET
    payment_methods: list[str] | msgspec.UnsetType = msgspec.UNSET
    features: list[str] | msgspec.UnsetType = msgspec.UNSET
    required_keys: list[str] | msgspec.UnsetType = msgspec.UNSET
    config_schema: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET
    is_default: bool | msgspec.UnsetType = msgspec.UNSET
    priority: int | msgspec.UnsetType = msgspec.UNSET
    integration_type: str | msgspec.UnsetType = msgspec.UNSET
    handler_key: str | msgspec.UnsetType = msgspec.UNSET


class ProviderOut(msgspec.Struct, kw_only=True):
    id: str
    code: str
    name: str
    description: str
    logo_url: str | None
    website_url: str | None
    docs_url: str | None
    api_base_url: str | None
    sandbox_api_base_url: str | None
    payment_methods: list[str]
    features: list[str]
    required_keys: list[str]
    config_schema: dict[str, Any]
    status: str
    is_default: bool
    priority: int
    integration_type: str
    handler_key: str
    currencies: list[CurrencySupport]
    created_at: datetime
    updated_at: datetime

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from core.limits import CODE_LEN, LIST_LEN, PROVIDER_NAME_LEN, Amount, Code, SmallCount, Text, Url

Name = Annotated[str, msgspec.Meta(max_length=PROVIDER_NAME_LEN)]
#: Short names (payment methods, features, key names).
Names = Annotated[list[Annotated[str, msgspec.Meta(max_length=CODE_LEN * 2)]],
                  msgspec.Meta(max_length=LIST_LEN)]

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
    fixed_fee: Amount = 0
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    is_active: bool = True


class ProviderIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Name
    handler_key: Code
    description: Text = ""
    logo_url: Url | None = None
    website_url: Url | None = None
    docs_url: Url | None = None
    api_base_url: Url | None = None
    sandbox_api_base_url: Url | None = None
    payment_methods: Names = []
    features: Names = []
    required_keys: Names = []
    config_schema: dict[str, Any] = {}
    status: Status = "active"
    is_default: bool = False
    priority: SmallCount = 100
    integration_type: Code = "api"


class ProviderPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    logo_url: Url | None | msgspec.UnsetType = msgspec.UNSET
    website_url: Url | None | msgspec.UnsetType = msgspec.UNSET
    docs_url: Url | None | msgspec.UnsetType = msgspec.UNSET
    api_base_url: Url | None | msgspec.UnsetType = msgspec.UNSET
    sandbox_api_base_url: Url | None | msgspec.UnsetType = msgspec.UNSET
    payment_methods: Names | msgspec.UnsetType = msgspec.UNSET
    features: Names | msgspec.UnsetType = msgspec.UNSET
    required_keys: Names | msgspec.UnsetType = msgspec.UNSET
    config_schema: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET
    is_default: bool | msgspec.UnsetType = msgspec.UNSET
    priority: SmallCount | msgspec.UnsetType = msgspec.UNSET
    integration_type: Code | msgspec.UnsetType = msgspec.UNSET
    handler_key: Code | msgspec.UnsetType = msgspec.UNSET


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

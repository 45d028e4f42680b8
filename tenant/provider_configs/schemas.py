from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from core.limits import CODE_LEN, KEY_LEN, LIST_LEN, SmallCount

Secret = Annotated[str, msgspec.Meta(max_length=KEY_LEN)]


class ProviderConfigIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /v1/providers/{code}``. Omitted keys keep their stored value."""

    enabled: bool = True
    is_default: bool = False
    environment: Literal["sandbox", "production"] = "sandbox"
    public_key: Secret | None = None
    secret_key: Secret | None = None
    webhook_secret: Secret | None = None
    config: dict[str, Any] = {}
    currencies: Annotated[list[Annotated[str, msgspec.Meta(max_length=CODE_LEN)]],
                          msgspec.Meta(max_length=LIST_LEN)] = []
    priority: SmallCount = 100


class ProviderConfigOut(msgspec.Struct, kw_only=True):
    provider: str
    name: str
    catalog_status: str
    enabled: bool
    is_default: bool
    environment: str
    public_key_hint: str | None
    secret_key_hint: str | None
    webhook_secret_hint: str | None
    has_public_key: bool
    has_secret_key: bool
    has_webhook_secret: bool
    config: dict[str, Any]
    currencies: list[str]
    priority: int
    configured_by: str | None
    last_tested_at: datetime | None
    last_test_ok: bool | None
    last_test_message: str | None
    last_used_at: datetime | None
    updated_at: datetime


class AvailableProvider(msgspec.Struct, kw_only=True):
    code: str
    name: str
    description: str
    status: str
    logo_url: str | None
    payment_methods: list[str]
    features: list[str]
    required_keys: list[str]
    config_schema: dict[str, Any]
    currency: str
    fee_percent: Decimal
    fixed_fee: int
    min_amount: int | None
    max_amount: int | None
    is_recommended: bool
    configured: bool
    enabled: bool


class SelectedProvider(msgspec.Struct, kw_only=True):
    provider: str
    name: str
    currency: str
    amount: int | None
    fee: int | None
    public_config: dict[str, Any]
    fallbacks: list[str]


class CredentialTestOut(msgspec.Struct, kw_only=True):
    provider: str
    ok: bool
    message: str
    tested_at: datetime

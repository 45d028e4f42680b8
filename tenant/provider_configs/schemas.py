from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from core.limits import CODE_LEN, KEY_LEN, LIST_LEN, SmallCount

Secret = Annotated[str, msgspec.Meta(max_length=KEY_LEN)]


class ProviderConfigIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /v1/providers/{code}``.

    On an existing configuration a field left out keeps its stored value (secrets too):
    ``{"priority": 30}`` changes the priority and nothing else. An explicit ``null`` clears
    a field: a secret is removed, ``currencies`` becomes ``[]`` (every currency the catalog
    supports), ``config`` becomes ``{}``, and ``enabled``, ``is_default``, ``environment``
    and ``priority`` go back to their defaults. A new configuration starts from the
    defaults: ``enabled`` true, ``is_default`` false, ``environment`` "sandbox",
    ``config`` {}, ``currencies`` [] (all), ``priority`` 100, no keys.
    """

    enabled: bool | None | msgspec.UnsetType = msgspec.UNSET
    is_default: bool | None | msgspec.UnsetType = msgspec.UNSET
    environment: Literal["sandbox", "production"] | None | msgspec.UnsetType = msgspec.UNSET
    public_key: Secret | None | msgspec.UnsetType = msgspec.UNSET
    secret_key: Secret | None | msgspec.UnsetType = msgspec.UNSET
    webhook_secret: Secret | None | msgspec.UnsetType = msgspec.UNSET
    config: dict[str, Any] | None | msgspec.UnsetType = msgspec.UNSET
    currencies: Annotated[list[Annotated[str, msgspec.Meta(max_length=CODE_LEN)]],
                          msgspec.Meta(max_length=LIST_LEN)] | None | msgspec.UnsetType = msgspec.UNSET
    priority: SmallCount | None | msgspec.UnsetType = msgspec.UNSET


#: What a new configuration starts from, and what an explicit ``null`` resets a field to.
CONFIG_DEFAULTS: dict[str, Any] = {
    "enabled": True, "is_default": False, "environment": "sandbox", "config": {},
    "currencies": [], "priority": 100,
}


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
    #: The configuration's own switch (``PUT … {"enabled": …}``).
    enabled: bool
    #: Whether a payment in ``currency`` can go to this provider now: exactly when
    #: ``GET /v1/providers/for-currency/{currency}`` would consider it (configured, enabled,
    #: the currency among the configured ones, last credential test not failed, not
    #: failing right now).
    usable: bool = False
    #: Why not, when ``usable`` is false.
    unusable_reason: str | None = None


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

"""The provider catalog (O1) and per-currency support (O2)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jsonschema
import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import caches
from core.audit import Actor, record
from core.db import after_commit
from core.errors import Conflict, NotFound, ValidationError
from core.money import normalize_currency, plain_decimal
from core.runtime import Runtime
from owner.audit.models import OwnerAuditLog
from owner.catalog.models import Provider, ProviderCurrency
from owner.catalog.schemas import (
    CurrencySupport,
    CurrencySupportIn,
    ProviderIn,
    ProviderOut,
    ProviderPatch,
)
from providers.registry import PROVIDERS

KEY_NAMES = {"public_key", "secret_key", "webhook_secret"}
_catalog_cache = caches.CATALOG


def _check_fields(data: dict[str, Any]) -> None:
    if "code" in data and not (isinstance(data["code"], str) and data["code"].isidentifier()
                               and data["code"].islower() and len(data["code"]) <= 32):
        raise ValidationError("code must be a lowercase identifier (<= 32 chars)", param="code")
    if "handler_key" in data and data["handler_key"] not in PROVIDERS:
        raise ValidationError(
            f"handler_key must be one of {sorted(PROVIDERS)}", param="handler_key"
        )
    if "config_schema" in data:
        schema = data["config_schema"]
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValidationError(f"config_schema is not a valid JSON Schema: {exc.message}",
                                  param="config_schema") from exc
    unknown = set(data.get("required_keys") or []) - KEY_NAMES
    if unknown:
        raise ValidationError(f"required_keys may only name {sorted(KEY_NAMES)}",
                              param="required_keys")
    for url_field in ("api_base_url", "sandbox_api_base_url", "logo_url", "website_url",
                      "docs_url"):
        value = data.get(url_field)
        if value and not str(value).startswith(("http://", "https://")):
            raise ValidationError(f"{url_field} must be an http(s) URL", param=url_field)
    if "name" in data and not str(data["name"]).strip():
        raise ValidationError("name must not be empty", param="name")


def to_out(provider: Provider) -> ProviderOut:
    return ProviderOut(
        id=str(provider.id),
        code=provider.code,
        name=provider.name,
        description=provider.description,
        logo_url=provider.logo_url,
        website_url=provider.website_url,
        docs_url=provider.docs_url,
        api_base_url=provider.api_base_url,
        sandbox_api_base_url=provider.sandbox_api_base_url,
        payment_methods=provider.payment_methods,
        features=provider.features,
        required_keys=provider.required_keys,
        config_schema=provider.config_schema,
        status=provider.status,
        is_default=provider.is_default,
        priority=provider.priority,
        integration_type=provider.integration_type,
        handler_key=provider.handler_key,
        currencies=[currency_out(c) for c in provider.currencies],
        created_at=provider.created_at,
        updated_at=provider.updated_at,
    )


def currency_out(row: ProviderCurrency) -> CurrencySupport:
    return CurrencySupport(
        currency=row.currency,
        is_recommended=row.is_recommended,
        fee_percent=plain_decimal(row.fee_percent),
        fixed_fee=row.fixed_fee,
        min_amount=row.min_amount,
        max_amount=row.max_amount,
        is_active=row.is_active,
    )


async def list_providers(session: AsyncSession, status: str | None = None) -> list[Provider]:
    query = select(Provider).order_by(Provider.priority, Provider.code)
    if status:
        query = query.where(Provider.status == status)
    return list((await session.scalars(query)).all())


async def get(session: AsyncSession, code: str) -> Provider:
    provider = (await session.scalars(select(Provider).where(Provider.code == code))).first()
    if provider is None:
        raise NotFound(f"provider '{code}' not found in the catalog")
    return provider


async def create(session: AsyncSession, data: ProviderIn, actor: Actor) -> Provider:
    fields = msgspec.structs.asdict(data)
    _check_fields(fields)
    provider = Provider(**fields)
    session.add(provider)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"provider '{data.code}' already exists", param="code") from exc
    after_commit(session, forget_catalog_cache)
    record(session, OwnerAuditLog, actor, "catalog.provider_created", "provider", provider.code,
           {"status": provider.status})
    await session.refresh(provider, ["currencies"])
    return provider


async def update(session: AsyncSession, code: str, patch: ProviderPatch, actor: Actor) -> Provider:
    provider = await get(session, code)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    _check_fields(changes)
    for name, value in changes.items():
        setattr(provider, name, value)
    after_commit(session, forget_catalog_cache)
    record(session, OwnerAuditLog, actor, "catalog.provider_updated", "provider", code,
           {"fields": sorted(changes)})
    await session.flush()
    return provider


async def put_currency(
    session: AsyncSession, code: str, currency: str, data: CurrencySupportIn, actor: Actor
) -> ProviderCurrency:
    provider = await get(session, code)
    currency = normalize_currency(currency)
    if not data.fee_percent.is_finite() or data.fee_percent < 0 or data.fee_percent >= 100:
        raise ValidationError("fee_percent must be in [0, 100)", param="fee_percent")
    if data.fixed_fee < 0:
        raise ValidationError("fixed_fee must be >= 0", param="fixed_fee")
    for name in ("min_amount", "max_amount"):
        value = getattr(data, name)
        if value is not None and value < 0:
            raise ValidationError(f"{name} must be >= 0", param=name)
    if data.min_amount is not None and data.max_amount is not None and \
            data.min_amount > data.max_amount:
        raise ValidationError("min_amount must not exceed max_amount", param="min_amount")
    row = next((c for c in provider.currencies if c.currency == currency), None)
    if row is None:
        row = ProviderCurrency(provider_id=provider.id, currency=currency)
        session.add(row)
    for name, value in msgspec.structs.asdict(data).items():
        setattr(row, name, Decimal(value) if name == "fee_percent" else value)
    after_commit(session, forget_catalog_cache)
    record(session, OwnerAuditLog, actor, "catalog.currency_set", "provider", code,
           {"currency": currency, "fee_percent": str(data.fee_percent),
            "fixed_fee": data.fixed_fee})
    await session.flush()
    await session.refresh(provider, ["currencies"])
    return row


@dataclass(frozen=True)
class CatalogEntry:
    code: str
    name: str
    status: str
    priority: int
    handler_key: str
    api_base_url: str | None
    sandbox_api_base_url: str | None
    required_keys: tuple[str, ...]
    config_schema: dict[str, Any]
    currencies: dict[str, ProviderCurrency]
    row: Provider


async def catalog_snapshot(runtime: Runtime) -> dict[str, CatalogEntry]:
    """The owner catalog, cached a few seconds per process (tenant reads are hot)."""

    async def load() -> dict[str, CatalogEntry]:
        async with runtime.owner_session() as session:
            rows = await list_providers(session)
        return {
            p.code: CatalogEntry(
                code=p.code, name=p.name, status=p.status, priority=p.priority,
                handler_key=p.handler_key, api_base_url=p.api_base_url,
                sandbox_api_base_url=p.sandbox_api_base_url,
                required_keys=tuple(p.required_keys), config_schema=p.config_schema,
                currencies={c.currency: c for c in p.currencies}, row=p,
            )
            for p in rows
        }

    return await _catalog_cache.get_or_load("all", load)  # type: ignore[no-any-return]


def forget_catalog_cache() -> None:
    """Local writes call this; other processes see catalog edits within the TTL."""
    _catalog_cache.clear()

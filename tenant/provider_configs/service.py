"""Tenant provider configuration (T1), availability and selection (T2), credential tests (T3).

Secrets are encrypted with the tenant's data key before they touch the session and are
decrypted only to build a provider instance; responses carry masked hints only.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import jsonschema
import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import caches, circuit
from core.audit import Actor, record
from core.crypto import mask
from core.db import after_commit, after_commit_awaited, utcnow
from core.errors import (
    Conflict,
    NotFound,
    UnprocessableError,
    ValidationError,
)
from core.money import normalize_currency, plain_decimal, processing_fee
from core.redis import get_redis
from core.runtime import Runtime
from core.tenancy import TenantContext
from owner.catalog.models import ProviderCurrency
from owner.catalog.service import CatalogEntry, catalog_snapshot
from providers.base import Environment, PaymentProvider, ProviderConfig
from providers.redaction import redact
from providers.registry import get_provider_class
from tenant.audit.models import AuditLog
from tenant.keys import data_key
from tenant.provider_configs import listing
from tenant.provider_configs.models import ProviderConfigRow
from tenant.provider_configs.schemas import (
    CONFIG_DEFAULTS,
    AvailableProvider,
    ProviderConfigIn,
    ProviderConfigOut,
)

log = logging.getLogger(__name__)
SECRET_FIELDS = ("public_key", "secret_key", "webhook_secret")
#: Built provider instances for webhook verification, per tenant and provider. Local
#: writes clear it; other processes pick up a key change within the TTL.
_providers = caches.WEBHOOK_PROVIDERS


@dataclass(frozen=True, slots=True)
class ConfigView:
    """What selection and :func:`build` read from a ``provider_configs`` row, as a plain
    value that can be cached (see :func:`~tenant.provider_configs.snapshots.configs_at`,
    which imports this module: this one imports none of its siblings but ``listing``)."""

    provider_code: str
    enabled: bool
    is_default: bool
    environment: str
    config: dict[str, Any]
    currencies: list[str]
    priority: int
    last_used_at: datetime | None
    last_test_ok: bool | None
    public_key_enc: bytes | None
    secret_key_enc: bytes | None
    webhook_secret_enc: bytes | None


# ----------------------------------------------------------------------------- catalog


async def catalog_entry(runtime: Runtime, code: str) -> CatalogEntry:
    entry = (await catalog_snapshot(runtime)).get(code)
    if entry is None:
        raise NotFound(f"provider '{code}' is not in the catalog")
    return entry


# ----------------------------------------------------------------------------- configs


def to_out(row: ProviderConfigRow, entry: CatalogEntry | None) -> ProviderConfigOut:
    hints = row.hints or {}
    return with_catalog(ProviderConfigOut(
        provider=row.provider_code, name="", catalog_status="",
        enabled=row.enabled, is_default=row.is_default, environment=row.environment,
        public_key_hint=hints.get("public_key"), secret_key_hint=hints.get("secret_key"),
        webhook_secret_hint=hints.get("webhook_secret"),
        has_public_key=row.public_key_enc is not None,
        has_secret_key=row.secret_key_enc is not None,
        has_webhook_secret=row.webhook_secret_enc is not None,
        config=row.config, currencies=row.currencies, priority=row.priority,
        configured_by=str(row.configured_by) if row.configured_by else None,
        last_tested_at=row.last_tested_at, last_test_ok=row.last_test_ok,
        last_test_message=row.last_test_message, last_used_at=row.last_used_at,
        updated_at=row.updated_at,
    ), entry)


def with_catalog(out: ProviderConfigOut, entry: CatalogEntry | None) -> ProviderConfigOut:
    """``out`` with the catalog's current name and status for its provider (the catalog
    changes independently of the tenant's row)."""
    name = entry.name if entry else out.provider
    status = entry.status if entry else "unknown"
    if out.name == name and out.catalog_status == status:
        return out
    return msgspec.structs.replace(out, name=name, catalog_status=status)


async def list_configs(session: AsyncSession) -> list[ProviderConfigRow]:
    query = select(ProviderConfigRow).order_by(ProviderConfigRow.priority,
                                               ProviderConfigRow.provider_code)
    return list((await session.scalars(query)).all())


async def listed(runtime: Runtime, tenant: TenantContext) -> list[ProviderConfigOut]:
    """The tenant's configurations as ``GET /v1/providers`` shows them, in T2 table order;
    served from :mod:`~tenant.provider_configs.listing` while nothing changed."""
    async def load() -> listing.Listing:
        async with runtime.tenant_session(tenant.db_url) as session:
            return tuple(to_out(row, None) for row in await list_configs(session))

    snapshot = await catalog_snapshot(runtime)
    return [with_catalog(out, snapshot.get(out.provider))
            for out in await listing.cached(runtime, tenant, load)]


async def get_config(session: AsyncSession, code: str) -> ProviderConfigRow | None:
    query = select(ProviderConfigRow).where(ProviderConfigRow.provider_code == code)
    return (await session.scalars(query)).first()


def _effective(data: ProviderConfigIn, row: ProviderConfigRow | None, name: str) -> Any:
    """A field's value after this PUT: the body's, the stored one when omitted on an
    existing row, the default when omitted on a new row or sent as ``null``."""
    value = getattr(data, name)
    if value is msgspec.UNSET:
        if row is not None:
            return getattr(row, name)
        return copy.deepcopy(CONFIG_DEFAULTS[name])
    if value is None:
        return copy.deepcopy(CONFIG_DEFAULTS[name])
    return value


async def put_config(
    runtime: Runtime, session: AsyncSession, tenant: TenantContext, code: str,
    data: ProviderConfigIn, actor: Actor,
) -> ProviderConfigRow:
    """Create or update the tenant's configuration of ``code`` (see
    :class:`ProviderConfigIn`: omitted keeps, ``null`` clears)."""
    entry = await catalog_entry(runtime, code)
    row = await get_config(session, code)
    enabled: bool = _effective(data, row, "enabled")
    is_default: bool = _effective(data, row, "is_default")
    environment: str = _effective(data, row, "environment")
    config: dict[str, Any] = _effective(data, row, "config")
    priority: int = _effective(data, row, "priority")
    if enabled and entry.status == "inactive":
        raise Conflict(f"provider '{code}' is inactive in the catalog and cannot be enabled",
                       code="provider_inactive")
    if row is None and entry.status == "deprecated":
        raise Conflict(f"provider '{code}' is deprecated and not offered to new tenants",
                       code="provider_deprecated")
    try:
        jsonschema.validate(config, entry.config_schema or {})
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or None
        raise ValidationError(f"config is invalid: {exc.message}",
                              param=f"config.{where}" if where else "config") from exc
    if data.currencies is msgspec.UNSET and row is not None:
        currencies = list(row.currencies)
    else:  # given, null (→ every currency) or omitted on a new row (→ the default, [])
        given = data.currencies if isinstance(data.currencies, list) else []
        currencies = [normalize_currency(c, param="currencies") for c in given]
        unsupported = [c for c in currencies if c not in entry.currencies
                       or not entry.currencies[c].is_active]
        if unsupported:
            raise ValidationError(f"{code} does not support {', '.join(unsupported)}",
                                  param="currencies")
    if not -1_000_000 <= priority <= 1_000_000:
        raise ValidationError("priority is out of range", param="priority")
    key = data_key(runtime, tenant)
    fresh = row is None
    if fresh:
        row = ProviderConfigRow(provider_code=code, hints={})
        session.add(row)
    hints = dict(row.hints or {})
    changed_keys: list[str] = []
    for name in SECRET_FIELDS:
        value = getattr(data, name)
        if value is msgspec.UNSET:
            continue
        changed_keys.append(name)
        if value is None:
            setattr(row, f"{name}_enc", None)
            hints.pop(name, None)
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > 4096:
            raise ValidationError(f"{name} must be a non-empty string", param=name)
        problem = get_provider_class(entry.handler_key).check_key(name, value.strip())
        if problem:
            raise UnprocessableError(problem, code="invalid_key_format", param=name)
        setattr(row, f"{name}_enc", key.encrypt(code, name, value.strip()))
        hints[name] = mask(value.strip())
    missing = [k for k in entry.required_keys if getattr(row, f"{k}_enc") is None]
    if missing and enabled:
        raise ValidationError(f"{code} requires {', '.join(missing)}", param=missing[0])
    if not fresh and (changed_keys or environment != row.environment or config != row.config):
        # a credential test of other keys says nothing about these
        row.last_tested_at = row.last_test_ok = row.last_test_message = None
    if is_default:
        await session.execute(
            update(ProviderConfigRow).where(ProviderConfigRow.provider_code != code,
                                            ProviderConfigRow.is_default).values(is_default=False)
        )
    row.hints = hints
    row.enabled = enabled
    row.is_default = is_default
    row.environment = environment
    row.config = config
    row.currencies = currencies
    row.priority = priority
    row.configured_by = actor.key_id
    await session.flush()
    after_commit(session, lambda: _providers.pop((tenant.id, code)))
    after_commit_awaited(session, lambda: listing.changed(runtime, tenant))
    record(session, AuditLog, actor, "provider.configured" if fresh else "provider.updated",
           "provider_config", code,
           {"enabled": enabled, "is_default": is_default,
            "environment": environment, "currencies": currencies,
            "keys_changed": changed_keys})
    return row


async def delete_config(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                        code: str, actor: Actor) -> None:
    row = await get_config(session, code)
    if row is None:
        raise NotFound(f"provider '{code}' is not configured")
    await session.delete(row)
    after_commit(session, _providers.clear)
    after_commit_awaited(session, lambda: listing.changed(runtime, tenant))
    record(session, AuditLog, actor, "provider.removed", "provider_config", code, {})


def build(runtime: Runtime, tenant: TenantContext, row: ProviderConfigRow | ConfigView,
          entry: CatalogEntry) -> PaymentProvider:
    """A provider instance with this tenant's decrypted keys (never logged)."""
    key = data_key(runtime, tenant)
    secrets: dict[str, str | None] = {}
    for name in SECRET_FIELDS:
        blob = getattr(row, f"{name}_enc")
        secrets[name] = key.decrypt(row.provider_code, name, blob) if blob is not None else None
    environment = Environment(row.environment)
    base = entry.sandbox_api_base_url if environment is Environment.SANDBOX else entry.api_base_url
    config = ProviderConfig(
        tenant=tenant.slug, code=row.provider_code, environment=environment,
        api_base_url=base or entry.api_base_url, config=row.config,
        public_base_url=runtime.settings.public_url, **secrets,
    )
    # the catalog's handler key names the implementation (several catalog entries may share one)
    return get_provider_class(entry.handler_key)(config, runtime.http)


async def provider_for(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                       code: str) -> PaymentProvider:
    """The tenant's provider instance, cached briefly (webhooks are hot).

    A disabled provider still gets one: its late webhooks (refunds, disputes of earlier
    payments) must keep flowing.
    """
    cached = _providers.get((tenant.id, code))
    if cached is not None:
        return cached  # type: ignore[return-value]
    row = await get_config(session, code)
    if row is None:
        raise NotFound(f"provider '{code}' is not configured for this tenant")
    provider = build(runtime, tenant, row, await catalog_entry(runtime, code))
    _providers.put((tenant.id, code), provider)
    return provider


async def webhook_provider(runtime: Runtime, tenant: TenantContext,
                           code: str) -> PaymentProvider:
    """:func:`provider_for` that opens a session only on a cache miss (the webhook door)."""
    async def load() -> PaymentProvider:
        async with runtime.tenant_session(tenant.db_url) as session:
            return await provider_for(runtime, session, tenant, code)

    return await _providers.get_or_load((tenant.id, code), load)  # type: ignore[no-any-return]


async def test_credentials(runtime: Runtime, session: AsyncSession, tenant: TenantContext,
                           code: str, actor: Actor) -> ProviderConfigRow:
    row = await get_config(session, code)
    if row is None:
        raise NotFound(f"provider '{code}' is not configured")
    entry = await catalog_entry(runtime, code)
    provider = build(runtime, tenant, row, entry)
    try:
        result = await provider.test_credentials()
        ok, message = result.ok, result.message
    except Exception as exc:  # noqa: BLE001 - any provider failure is a failed test
        ok, message = False, getattr(exc, "message", None) or type(exc).__name__
    message = redact(message, provider.secrets())  # provider text: kept and returned
    row.last_tested_at = utcnow()
    row.last_test_ok = ok
    row.last_test_message = message[:500]
    after_commit_awaited(session, lambda: listing.changed(runtime, tenant))
    record(session, AuditLog, actor, "provider.tested", "provider_config", code,
           {"ok": ok, "message": message[:200]})
    return row


# ----------------------------------------------------------------------------- selection


def fee_for(support: ProviderCurrency, amount: int | None) -> int | None:
    if amount is None:
        return None
    return processing_fee(amount, Decimal(support.fee_percent), support.fixed_fee)


def in_limits(support: ProviderCurrency, amount: int | None) -> bool:
    if amount is None:
        return True
    if support.min_amount is not None and amount < support.min_amount:
        return False
    return support.max_amount is None or amount <= support.max_amount


def unusable_reason(entry: CatalogEntry, row: ProviderConfigRow | ConfigView | ProviderConfigOut
                    | None, currency: str, amount: int | None, circuit_open: bool) -> str | None:
    """Why this tenant cannot take a payment in ``currency`` (and ``amount``) with this
    provider right now, or ``None`` when it can — the one rule behind ``/available``'s
    ``usable``, ``/for-currency``, an order's ``payment_options``, the payment page and
    checkout: the catalog supports the currency (and amount), the configuration exists, is
    enabled and takes the currency, its last credential test did not fail, and its circuit
    is closed."""
    support = entry.currencies.get(currency)
    if entry.status == "inactive":
        return "the provider is inactive in the catalog"
    if support is None or not support.is_active:
        return f"the provider does not support {currency}"
    if row is None:
        return "not configured"
    if not row.enabled:
        return "disabled"
    if row.currencies and currency not in row.currencies:
        return f"{currency} is not among the configured currencies"
    if row.last_test_ok is False:
        return "the last credential test failed"
    if not in_limits(support, amount):
        return f"{amount} is outside the provider's limits for {currency}"
    if circuit_open:
        return "temporarily unavailable (recent failures)"
    return None


async def available(runtime: Runtime, tenant: TenantContext,
                    currency: str) -> list[AvailableProvider]:
    currency = normalize_currency(currency)
    configs = {r.provider: r for r in await listed(runtime, tenant)}
    redis = get_redis()
    out: list[AvailableProvider] = []
    for entry in sorted((await catalog_snapshot(runtime)).values(),
                        key=lambda e: (e.priority, e.code)):
        support = entry.currencies.get(currency)
        row = configs.get(entry.code)
        if support is None or not support.is_active or entry.status == "inactive":
            continue
        if entry.status == "deprecated" and row is None:
            continue
        is_open = row is not None and await circuit.is_open(redis, tenant.slug, entry.code)
        reason = unusable_reason(entry, row, currency, None, is_open)
        out.append(AvailableProvider(
            code=entry.code, name=entry.name, description=entry.row.description,
            status=entry.status, logo_url=entry.row.logo_url,
            payment_methods=entry.row.payment_methods, features=entry.row.features,
            required_keys=list(entry.required_keys), config_schema=entry.config_schema,
            currency=currency, fee_percent=plain_decimal(support.fee_percent),
            fixed_fee=support.fixed_fee,
            min_amount=support.min_amount, max_amount=support.max_amount,
            is_recommended=support.is_recommended, configured=row is not None,
            enabled=bool(row and row.enabled), usable=reason is None, unusable_reason=reason,
        ))
    return out


@dataclass(frozen=True)
class Candidate:
    row: ProviderConfigRow | ConfigView
    entry: CatalogEntry
    fee: int | None


def _rank(c: Candidate, explicit: str | None) -> tuple[Any, ...]:
    """T2 order: explicit choice → tenant default → tenant priority → catalog priority →
    lowest fee."""
    return (c.row.provider_code != explicit, not c.row.is_default, c.row.priority,
            c.entry.priority, c.fee if c.fee is not None else 0, c.row.provider_code)


async def payment_options(runtime: Runtime, tenant: TenantContext,
                          configs: Sequence[ProviderConfigRow | ConfigView],
                          wanted: Iterable[tuple[str, int]]) -> dict[tuple[str, int], list[str]]:
    """Per (currency, amount): the codes of the providers that can take it, best first —
    what :func:`candidates` would return, for many orders at once (each provider's
    circuit is read once)."""
    snapshot = await catalog_snapshot(runtime)
    redis = get_redis()
    circuits: dict[str, bool] = {}
    out: dict[tuple[str, int], list[str]] = {}
    for currency, amount in set(wanted):
        found: list[Candidate] = []
        for row in configs:
            entry = snapshot.get(row.provider_code)
            if entry is None or unusable_reason(entry, row, currency, amount, False):
                continue
            code = row.provider_code
            if code not in circuits:
                circuits[code] = await circuit.is_open(redis, tenant.slug, code)
            if circuits[code]:
                continue
            found.append(Candidate(row=row, entry=entry,
                                   fee=fee_for(entry.currencies[currency], amount)))
        found.sort(key=lambda c: _rank(c, None))
        out[(currency, amount)] = [c.row.provider_code for c in found]
    return out


async def candidates(runtime: Runtime, session: AsyncSession | None, tenant: TenantContext,
                     currency: str, amount: int | None,
                     explicit: str | None = None, *,
                     configs: Sequence[ProviderConfigRow | ConfigView] | None = None,
                     ) -> list[Candidate]:
    """Usable providers for this currency and amount, best first (T2 order).

    explicit choice → tenant default → tenant priority → catalog priority → lowest fee;
    providers outside min/max, whose last credential test failed or with an open circuit
    are left out (see :func:`unusable_reason`). ``configs``: the
    tenant's configurations when the caller has them (``snapshots.configs_at``); without
    them they are read with ``session``.
    """
    currency = normalize_currency(currency)
    if amount is not None and amount < 0:
        raise ValidationError("amount must be >= 0", param="amount")
    snapshot = await catalog_snapshot(runtime)
    redis = get_redis()
    found: list[Candidate] = []
    if configs is None:
        assert session is not None, "candidates() needs a session or the configurations"
        configs = await list_configs(session)
    for row in configs:
        entry = snapshot.get(row.provider_code)
        if entry is None:
            continue
        if unusable_reason(entry, row, currency, amount, False) is not None:
            continue
        if await circuit.is_open(redis, tenant.slug, row.provider_code):
            continue
        support = entry.currencies[currency]
        found.append(Candidate(row=row, entry=entry, fee=fee_for(support, amount)))
    found.sort(key=lambda c: _rank(c, explicit))
    if explicit is not None and (not found or found[0].row.provider_code != explicit):
        raise UnprocessableError(
            f"provider '{explicit}' is not available for {currency}"
            + (f" {amount}" if amount is not None else ""),
            code="provider_unavailable_for_currency", param="provider",
        )
    return found

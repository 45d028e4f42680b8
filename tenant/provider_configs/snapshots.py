"""A tenant's provider configuration as checkouts read it: cached, checked by version.

Every checkout needs the tenant's provider configurations (T2 selection) and a provider
instance with decrypted keys. Both are kept per process: the configurations as plain
:class:`ConfigView` values, reused while their version (:data:`CONFIGS_VERSION_SQL`, read
in the checkout's own transaction with the order's state) is unchanged — so a change made
anywhere is seen by the next checkout — and the built provider while its view and catalog
entry are the same objects.
"""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core import caches
from core.db import after_commit_awaited
from core.runtime import Runtime
from core.sql import Transaction, sql
from core.tenancy import TenantContext
from owner.catalog.service import CatalogEntry
from providers.base import PaymentProvider
from tenant.provider_configs import listing
from tenant.provider_configs.service import ConfigView, build

#: The configuration's version: any change (PUT, DELETE, a key test, a use stamp) changes
#: the row count or the newest ``updated_at``. Cheap enough to ride along a hot query.
CONFIGS_VERSION_SQL = "SELECT ARRAY[count(*)::text, max(updated_at)::text] FROM provider_configs"
_CONFIG_VIEWS = f"""
SELECT ({CONFIGS_VERSION_SQL}) AS version, c.*
FROM (SELECT provider_code, enabled, is_default, environment, config, currencies, priority,
             last_used_at, last_test_ok, public_key_enc, secret_key_enc, webhook_secret_enc
      FROM provider_configs ORDER BY priority, provider_code) c
"""
#: Per tenant: (version, views). The version check makes it exact; the TTL only bounds
#: memory for tenants that stopped checking out.
_config_views = caches.CONFIG_VIEWS
#: Providers built for checkouts: (view, catalog entry, instance) per (tenant, provider);
#: a new view (the configuration changed) or catalog entry (refreshed) rebuilds it.
_built = caches.CHECKOUT_PROVIDERS
#: When this process last stamped ``last_used_at``, per (tenant, provider).
_stamped = caches.CONFIG_STAMPED


async def configs_at(db: AsyncSession | Transaction, tenant: TenantContext,
                     version: list[str] | None) -> tuple[ConfigView, ...]:
    """The tenant's configurations in T2 table order, from the cache while ``version``
    (:data:`CONFIGS_VERSION_SQL`, read in the caller's transaction) still matches."""
    hit = _config_views.get(tenant.id)
    if hit is not None and hit[0] == version:  # type: ignore[index]
        return hit[1]  # type: ignore[index, no-any-return]
    rows = await (await sql(db)).fetch(_CONFIG_VIEWS)
    views = tuple(ConfigView(**{k: v for k, v in row.items() if k != "version"})
                  for row in rows)
    fresh = list(rows[0]["version"]) if rows else version
    _config_views.put(tenant.id, (fresh, views))
    return views


async def stamp_used(runtime: Runtime, db: AsyncSession | Transaction, tenant: TenantContext,
                     view: ConfigView, now: datetime, every: float) -> None:
    """Refresh ``last_used_at`` if older than ``every`` seconds (one hot row per tenant:
    written at most that often per process, whatever the cached view says); the
    tenant's listing shows it after the commit."""
    key = (tenant.id, view.provider_code)
    clock = time.monotonic()
    if clock - _stamped.get(key, -every) < every:
        return
    if view.last_used_at is not None and (now - view.last_used_at).total_seconds() < every:
        return
    _stamped[key] = clock
    await (await sql(db)).execute(
        "UPDATE provider_configs SET last_used_at = $1, updated_at = $1 "
        "WHERE provider_code = $2", now, view.provider_code)
    after_commit_awaited(db, lambda: listing.changed(runtime, tenant))


def build_for_checkout(runtime: Runtime, tenant: TenantContext, row: ConfigView,
                       entry: CatalogEntry) -> PaymentProvider:
    """:func:`build`, reusing the instance built from the same cached view and catalog
    entry (decrypting the keys is a measurable share of a checkout)."""
    cache_key = (tenant.id, row.provider_code)
    hit = _built.get(cache_key)
    if hit is not None and hit[0] is row and hit[1] is entry:  # type: ignore[index]
        return hit[2]  # type: ignore[index, no-any-return]
    provider = build(runtime, tenant, row, entry)
    _built.put(cache_key, (row, entry, provider))
    return provider

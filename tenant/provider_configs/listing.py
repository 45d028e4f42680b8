"""A tenant's provider listing served without its database while nothing has changed.

Listing a tenant's providers (``GET /v1/providers``, ``/available``) is the cheapest
tenant read there is. Spread over many tenants, the connection to each tenant's database
would cost more than the read: the engine registry caps connections, so most reads would
open one. The listing is therefore kept per process and checked, on every read, against
the tenant's *stamp* in Redis — one GET — which every committed change replaces
(:func:`changed`, awaited after the commit and before the response).

A stamp is a random token, not a counter, so a Redis that lost its data cannot bring an
old stamp back. Without Redis the listing is read from the database. A change whose stamp
could not be replaced (Redis down at that moment, or the process died right after its
commit) is seen by other processes after :data:`MAX_AGE` seconds at the latest; the
process that made the change sees it at once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from core import caches
from core.redis import get_redis
from core.runtime import Runtime
from core.tenancy import TenantContext
from tenant.provider_configs.schemas import ProviderConfigOut

log = logging.getLogger(__name__)

#: Longest a listing is reused without reading the database (bounds a lost stamp).
MAX_AGE = caches.LISTINGS.ttl
#: Stamps of tenants nobody changed or read for this long are let go.
STAMP_SECONDS = 86_400
STAMP_KEY = "paymesh:provider-configs:stamp:{tenant}"

Listing = tuple[ProviderConfigOut, ...]
#: Per tenant: (stamp, listing).
_listings = caches.LISTINGS


async def _stamp(runtime: Runtime, tenant: TenantContext) -> bytes | None:
    """The tenant's current stamp (one is set if it has none), or None without Redis."""
    key = STAMP_KEY.format(tenant=tenant.id)
    try:
        redis = get_redis(runtime.settings.redis_url)
        stamp: bytes | None = await redis.get(key)
        if stamp is None:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.set(key, uuid.uuid4().hex, nx=True, ex=STAMP_SECONDS)
                pipe.get(key)
                _, stamp = await pipe.execute()
        return stamp
    except (RedisError, OSError):
        return None


async def cached(runtime: Runtime, tenant: TenantContext,
                 load: Callable[[], Awaitable[Listing]]) -> Listing:
    """The tenant's listing: the one kept here while its stamp is unchanged, else
    ``load()`` (which reads the database)."""
    stamp = await _stamp(runtime, tenant)  # read before loading: a change after it re-stamps
    hit = _listings.get(tenant.id)
    if stamp is not None and hit is not None and hit[0] == stamp:  # type: ignore[index]
        return hit[1]  # type: ignore[index, no-any-return]
    listing = await load()
    if stamp is not None:
        _listings.put(tenant.id, (stamp, listing))
    return listing


async def changed(runtime: Runtime, tenant: TenantContext) -> None:
    """Re-stamp the tenant: every process re-reads its listing. Call after the commit."""
    _listings.pop(tenant.id)
    try:
        redis = get_redis(runtime.settings.redis_url)
        await redis.set(STAMP_KEY.format(tenant=tenant.id), uuid.uuid4().hex, ex=STAMP_SECONDS)
    except (RedisError, OSError):
        log.warning("provider listing stamp of tenant %s not replaced (Redis unavailable); "
                    "other processes show the old listing for up to %.0f s",
                    tenant.slug, MAX_AGE)

"""API keys: issue (shown once), authenticate by hash, revoke, throttled ``last_used_at``."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core import caches
from core.audit import Actor, record
from core.db import utcnow
from core.errors import NotFound
from core.sql import autocommit_sql
from core.tenancy import Principal, hash_key
from owner.audit.models import OwnerAuditLog
from owner.keys.models import ApiKey
from owner.tenants import models as _fk_targets  # noqa: F401  (api_keys.tenant_id → tenants)

PREFIX_LEN = 12
#: ``last_used_at`` is written at most this often per key per process.
TOUCH_INTERVAL = 60.0

#: Seconds an authenticated key is cached, unless :mod:`owner.changes` watches for changes.
_cache = caches.API_KEYS
CACHE_SECONDS = _cache.ttl
_PRINCIPAL_SQL = ("SELECT id, kind, tenant_id FROM api_keys "
                  "WHERE key_hash = $1 AND revoked_at IS NULL")
_touched = caches.KEY_TOUCHED


def _new_raw(kind: str) -> str:
    return f"pm_{'own' if kind == 'owner' else 'ten'}_{secrets.token_urlsafe(32)}"


async def issue(
    session: AsyncSession,
    *,
    kind: str,
    tenant_id: uuid.UUID | None,
    name: str,
    actor: Actor,
) -> tuple[ApiKey, str]:
    """Create a key. The raw key is returned once and never stored."""
    raw = _new_raw(kind)
    key = ApiKey(
        id=uuid.uuid4(),
        kind=kind,
        tenant_id=tenant_id,
        name=name,
        prefix=raw[:PREFIX_LEN],
        key_hash=hash_key(raw),
    )
    session.add(key)
    record(session, OwnerAuditLog, actor, "api_key.created", "api_key", key.id,
           {"kind": kind, "tenant_id": str(tenant_id) if tenant_id else None, "prefix": key.prefix})
    return key, raw


async def revoke(session: AsyncSession, key_id_or_prefix: str, *, actor: Actor) -> ApiKey:
    query = select(ApiKey)
    try:
        query = query.where(ApiKey.id == uuid.UUID(key_id_or_prefix))
    except ValueError:
        query = query.where(ApiKey.prefix == key_id_or_prefix)
    key = (await session.scalars(query)).first()
    if key is None:
        raise NotFound("API key not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record(session, OwnerAuditLog, actor, "api_key.revoked", "api_key", key.id,
               {"prefix": key.prefix})
    _cache.clear()
    return key


async def revoke_named(session: AsyncSession, name: str, *, actor: Actor) -> int:
    """Revoke every live key called ``name`` (``paymesh demo`` re-issues its keys on each
    start); returns how many were revoked."""
    live = (await session.scalars(select(ApiKey).where(
        ApiKey.name == name, ApiKey.revoked_at.is_(None)).with_for_update())).all()
    for key in live:
        await revoke(session, str(key.id), actor=actor)
    return len(live)


async def authenticate(engine: AsyncEngine, raw: str) -> Principal | None:
    """Resolve a raw key to its principal (cached briefly; revocation clears the cache)."""
    digest = hash_key(raw)

    async def load() -> Principal | bool:
        # plain SQL, no transaction: keys spread over many tenants come here often
        async with engine.connect() as conn:
            row = await (await autocommit_sql(conn)).fetchrow(_PRINCIPAL_SQL, digest)
        if row is None:
            return False
        return Principal(key_id=row["id"], kind=row["kind"], tenant_id=row["tenant_id"])

    hit = await _cache.get_or_load(digest, load)
    if not hit:
        return None
    await _touch(engine, hit.key_id)  # type: ignore[union-attr]
    return hit  # type: ignore[return-value]


async def _touch(engine: AsyncEngine, key_id: uuid.UUID) -> None:
    """Record use without a write per request: at most once per ``TOUCH_INTERVAL``."""
    now = time.monotonic()
    if now - _touched.get(key_id, -TOUCH_INTERVAL) < TOUCH_INTERVAL:
        return
    _touched[key_id] = now
    async with engine.begin() as conn:
        await conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


def forget_cached_keys() -> None:
    _cache.clear()
    _touched.clear()


def forget_keys(digests: Iterable[str]) -> None:
    for digest in digests:
        _cache.pop(digest)


def cache_seconds(seconds: float | None) -> None:
    """How long keys are cached from now on (None: :data:`CACHE_SECONDS`)."""
    _cache.ttl = seconds or CACHE_SECONDS

"""API keys: issue (shown once), authenticate by hash, revoke, throttled ``last_used_at``."""

from __future__ import annotations

import secrets
import time
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core.audit import Actor, record
from core.db import utcnow
from core.errors import NotFound
from core.tenancy import Principal, TtlCache, hash_key
from owner.audit.models import OwnerAuditLog
from owner.keys.models import ApiKey
from owner.tenants import models as _fk_targets  # noqa: F401  (api_keys.tenant_id → tenants)

PREFIX_LEN = 12
#: ``last_used_at`` is written at most this often per key per process.
TOUCH_INTERVAL = 60.0

_cache = TtlCache(ttl=10.0)
_touched: dict[uuid.UUID, float] = {}


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


async def authenticate(engine: AsyncEngine, raw: str) -> Principal | None:
    """Resolve a raw key to its principal (cached briefly; revocation clears the cache)."""
    digest = hash_key(raw)

    async def load() -> Principal | bool:
        async with AsyncSession(engine) as session:
            row = (
                await session.execute(
                    select(ApiKey.id, ApiKey.kind, ApiKey.tenant_id).where(
                        ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)
                    )
                )
            ).first()
        return Principal(key_id=row.id, kind=row.kind, tenant_id=row.tenant_id) if row else False

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

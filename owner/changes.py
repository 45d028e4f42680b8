"""Suspended tenants and revoked keys reach every API process within seconds.

Each process caches tenant contexts (:func:`owner.tenants.service.lookup`) and API keys
(:func:`owner.keys.service.authenticate`). On their own those caches expire after a few
seconds, so traffic spread over many tenants keeps reloading them, and a suspension or a
revocation made elsewhere still takes that long to arrive. A process that runs
:func:`watch` (the API does) instead reads every :data:`POLL_SECONDS` which tenants and
keys changed lately, drops the cached copies older than those changes, and lets the rest
live for :data:`WATCHED_SECONDS`.

Changes are read back :data:`OVERLAP` before the last successful poll (by the database's
clock), so a change committed a while after its ``updated_at`` is still seen. While the
owner database cannot be read, the caches are emptied and fall back to their short
lifetimes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from core.runtime import Runtime
from core.sql import autocommit_sql
from owner.keys import service as keys
from owner.tenants import service as tenants

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
OVERLAP = timedelta(seconds=60)
#: How long cached tenants and keys live while this process watches for changes.
WATCHED_SECONDS = 300.0

_TENANTS_SQL = "SELECT id, slug, updated_at FROM tenants WHERE updated_at >= $1"
_KEYS_SQL = "SELECT ARRAY(SELECT key_hash FROM api_keys WHERE revoked_at >= $1)"


async def poll(runtime: Runtime, since: datetime | None) -> datetime:
    """Drop the cached tenants and keys changed since ``since`` (everything when None);
    returns the watermark for the next poll."""
    async with runtime.owner_engine.connect() as conn:
        statements = await autocommit_sql(conn)
        polled_at: datetime = await statements.fetchval("SELECT now()")  # before reading
        if since is None:
            tenants.forget_cached_tenants()
            keys.forget_cached_keys()
            return polled_at
        changed = await statements.fetch(_TENANTS_SQL, since - OVERLAP)
        revoked = await statements.fetchval(_KEYS_SQL, since - OVERLAP)
    tenants.forget_tenants((r["id"], r["slug"], r["updated_at"]) for r in changed)
    keys.forget_keys(revoked)
    return polled_at


async def watch(runtime: Runtime) -> None:
    """Run until cancelled: poll, and keep the caches long only while polls succeed."""
    since: datetime | None = None
    try:
        while True:
            try:
                since = await poll(runtime, since)
                _cache_seconds(WATCHED_SECONDS)
            except Exception:
                if since is not None:
                    log.warning("owner changes could not be read; tenant and key caches go "
                                "back to their short lifetimes", exc_info=True)
                since = None
                _cache_seconds(None)
            await asyncio.sleep(POLL_SECONDS)
    finally:
        _cache_seconds(None)  # nobody watches any more


def _cache_seconds(seconds: float | None) -> None:
    tenants.cache_seconds(seconds)
    keys.cache_seconds(seconds)

"""The tenant engine registry: one small lazy pool per tenant database, under one cap.

Per process it guarantees:
- at most ``max_connections`` connections open to tenant databases at any time (checked
  out *and* idle in pools); a request that would exceed it first closes the pooled
  connections of idle tenants (least recently used first), and otherwise waits;
- one engine per database, created once even under concurrent first use.

Closing a tenant's connections keeps its engine object ("cold"), so a tenant coming back
reuses the initialized dialect instead of building a new engine; cold engines are bounded
too. All engines on one server share one compiled-statement cache: tenant databases have
the same schema, so SQL compiled for one serves every other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.util import LRUCache

from core.db import make_engine, run_after_commit_awaited, server_key
from core.sql import Transaction

COMPILED_CACHE_SIZE = 2000


@dataclass
class _Entry:
    engine: AsyncEngine
    #: Per-tenant concurrency (the pool size): waiters queue here, one woken per release.
    slots: asyncio.Semaphore
    in_use: int = 0
    last_used: float = 0.0

    @property
    def open(self) -> int:
        pool = self.engine.pool
        return pool.checkedin() + pool.checkedout()  # type: ignore[attr-defined]


class TenantEngineRegistry:
    def __init__(self, *, max_connections: int, pool_size: int, idle_seconds: int,
                 cold_engines: int = 4096) -> None:
        self.max_connections = max_connections
        self.pool_size = max(1, min(pool_size, max_connections))
        self.idle_seconds = idle_seconds
        self.cold_engines = cold_engines
        self._active: OrderedDict[str, _Entry] = OrderedDict()
        #: Retired entries (engine kept, connections closed); one entry per URL at most,
        #: so a tenant's waiters and newcomers always share one queue.
        self._cold: OrderedDict[str, _Entry] = OrderedDict()
        self._caches: dict[str, LRUCache] = {}
        self._cond = asyncio.Condition()
        self._waiting = 0

    # ------------------------------------------------------------------ accounting
    def open_connections(self) -> int:
        return sum(e.open for e in self._active.values())

    def engine_count(self) -> int:
        """Engines holding (or allowed to hold) connections."""
        return len(self._active)

    def _footprint(self) -> int:
        """Connections open or promised: a pool opens lazily, so never more than this."""
        return sum(max(e.open, e.in_use) for e in self._active.values())

    # ------------------------------------------------------------------ engines
    def _entry(self, url: str) -> _Entry:
        entry = self._cold.pop(url, None)
        if entry is None:
            engine = make_engine(url, pool_size=self.pool_size, max_overflow=0)
            cache = self._caches.setdefault(server_key(url), LRUCache(COMPILED_CACHE_SIZE))
            engine.sync_engine._compiled_cache = cache  # shared per server (same schema)
            entry = _Entry(engine, asyncio.Semaphore(self.pool_size))
        return entry

    async def _retire(self, url: str) -> None:
        """Close a tenant's pooled connections; keep its engine object for next time."""
        entry = self._active.pop(url)
        await entry.engine.dispose()
        self._cold[url] = entry
        while len(self._cold) > self.cold_engines:
            stale = next((u for u, e in self._cold.items()
                          if e.slots._value == self.pool_size), None)  # nobody queued on it
            if stale is None:
                break
            await self._cold.pop(stale).engine.dispose()

    async def _make_room(self) -> bool:
        """Retire idle tenants (LRU first) until one more connection fits under the cap."""
        while self._footprint() >= self.max_connections:
            victim = next((u for u, e in self._active.items() if e.in_use == 0 and e.open),
                          None)
            if victim is None:
                return False
            await self._retire(victim)
        return True

    async def _acquire(self, url: str) -> _Entry:
        async with self._cond:
            entry = self._active.get(url)
            if entry is None:
                entry = self._entry(url)
                self._active[url] = entry
        await entry.slots.acquire()  # this tenant's queue: no herd of other tenants' waiters
        try:
            async with self._cond:
                while True:
                    if self._active.get(url) is not entry:  # retired while we waited
                        self._cold.pop(url, None)
                        self._active[url] = entry
                    # (_make_room never retires this entry: it has no idle connection)
                    if entry.in_use < entry.open or await self._make_room():
                        break
                    self._waiting += 1  # waiting for room under the global cap
                    try:
                        await self._cond.wait()
                    finally:
                        self._waiting -= 1
                self._active.move_to_end(url)
                entry.in_use += 1
                entry.last_used = time.monotonic()
                return entry
        except BaseException:
            entry.slots.release()
            raise

    async def _release(self, entry: _Entry) -> None:
        async with self._cond:
            entry.in_use -= 1
            entry.last_used = time.monotonic()
            if self._waiting:
                self._cond.notify_all()
        entry.slots.release()

    # ------------------------------------------------------------------ public
    @asynccontextmanager
    async def connect(self, url: str) -> AsyncIterator[AsyncConnection]:
        entry = await self._acquire(url)
        try:
            async with entry.engine.connect() as conn:
                yield conn
        finally:
            await self._release(entry)

    @asynccontextmanager
    async def session(self, url: str) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error."""
        async with self.connect(url) as conn:
            async with AsyncSession(bind=conn, expire_on_commit=False) as session:
                async with session.begin():
                    yield session
        await run_after_commit_awaited(session.info)  # committed, connection back in the pool

    @asynccontextmanager
    async def transaction(self, url: str) -> AsyncIterator[Transaction]:
        """A transaction for plain SQL, with an ORM session only if something asks for one
        (see :class:`core.sql.Transaction`): committed on success, rolled back on error."""
        async with self.connect(url) as conn:
            tx = Transaction(conn, await conn.begin())
            try:
                yield tx
            except BaseException:
                with contextlib.suppress(Exception):  # the error that got us here matters
                    await tx.finish(commit=False)
                raise
            await tx.finish(commit=True)
        await run_after_commit_awaited(tx.info)
        if tx.session_info is not None:
            await run_after_commit_awaited(tx.session_info)

    async def forget(self, url: str) -> None:
        """Drop everything held for one database (before dropping or renaming it)."""
        async with self._cond:
            entry = self._active.pop(url, None) or self._cold.pop(url, None)
            if entry is not None:
                await entry.engine.dispose()
            self._cond.notify_all()

    async def prune(self) -> int:
        """Close the connections of tenants idle longer than ``idle_seconds``."""
        cutoff = time.monotonic() - self.idle_seconds
        async with self._cond:
            stale = [u for u, e in self._active.items() if e.in_use == 0 and e.last_used < cutoff]
            for url in stale:
                await self._retire(url)
            self._cond.notify_all()
        return len(stale)

    async def dispose_all(self) -> None:
        async with self._cond:
            for entry in self._active.values():
                await entry.engine.dispose()
            for entry in self._cold.values():
                await entry.engine.dispose()
            self._active.clear()
            self._cold.clear()

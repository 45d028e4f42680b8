"""The migrated template database every tenant database is cloned from.

Cloning (``CREATE DATABASE … TEMPLATE``) needs the template to have no other sessions,
so cloning holds a *shared* advisory lock on the server and migrating the template holds
the *exclusive* one: clones run concurrently with each other, never with a migration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import autocommit_connection, with_database

TEMPLATE_LOCK = 0x5041594D  # "PAYM"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@asynccontextmanager
async def template_lock(server_url: str, *, exclusive: bool) -> AsyncIterator[AsyncConnection]:
    """The template lock, held on the connection it yields.

    Clones (shared) run on a pooled connection, migrations (exclusive, rare) on a new
    one. A pooled connection goes back to the pool only once its lock is released: if
    releasing fails or is interrupted, the connection is closed instead, which releases
    it (a session's advisory locks end with the session).
    """
    fn = "pg_advisory_lock" if exclusive else "pg_advisory_lock_shared"
    async with autocommit_connection(server_url, pooled=not exclusive) as conn:
        try:  # taking it inside: an interrupted wait for the lock also ends here
            await conn.execute(text(f"SELECT {fn}(:k)"), {"k": TEMPLATE_LOCK})
            yield conn
        finally:
            try:
                await conn.execute(text(f"SELECT {fn.replace('lock', 'unlock')}(:k)"),
                                   {"k": TEMPLATE_LOCK})
            except BaseException:
                await asyncio.shield(conn.invalidate())
                raise


async def database_exists(conn: AsyncConnection, name: str) -> bool:
    found = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
    return bool(found)


#: (server, template) pairs this process has seen at head: provisioning skips the check
#: (and its exclusive lock) after the first time. ``paymesh db upgrade`` migrates
#: templates explicitly, and a deploy with new migrations starts new processes.
_at_head: set[tuple[str, str]] = set()


async def ensure_template(server_url: str, template: str, *, force: bool = False) -> None:
    """Create the template on this server if missing and migrate it to head."""
    if not force and (server_url, template) in _at_head:
        return
    from core import migrate  # Alembic: only processes that provision import it

    async with template_lock(server_url, exclusive=True) as conn:
        if not await database_exists(conn, template):
            await conn.execute(text(f"CREATE DATABASE {quote_ident(template)}"))
        url = with_database(server_url, template)
        if await migrate.current(url, "tenant") != migrate.head("tenant"):
            await migrate.upgrade(url, "tenant")
    _at_head.add((server_url, template))


async def clone(server_url: str, template: str, target: str) -> None:
    """``CREATE DATABASE target TEMPLATE template``, retried while the template is busy.

    A database of that name already on the server (another installation's, a leftover)
    is a :class:`~core.errors.Conflict`: it is never taken over.
    """
    from core.errors import Conflict

    async with template_lock(server_url, exclusive=False) as conn:
        for attempt in range(20):
            try:
                await conn.execute(
                    text(f"CREATE DATABASE {quote_ident(target)} TEMPLATE {quote_ident(template)}")
                )
                return
            except Exception as exc:  # noqa: BLE001 - only the "being accessed" case retries
                if "already exists" in str(exc):
                    raise Conflict(f"a database named '{target}' already exists on the "
                                   "server", param="slug", code="database_exists") from exc
                if "being accessed by other users" not in str(exc) or attempt == 19:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))


async def drop(server_url: str, name: str) -> None:
    async with autocommit_connection(server_url) as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)"))

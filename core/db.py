"""Database access: the owner engine, the tenant engine registry and the ORM bases.

Owner and tenant schemas have separate ``MetaData`` objects (each with a constraint
naming convention), separate Alembic trees and separate engines. Tenant engines are
created on demand, one per tenant database, by :class:`TenantEngineRegistry`, which
bounds how many connections this process holds to tenant databases in total.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from sqlalchemy import DateTime, Executable, MetaData, Select, Uuid, event, func, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

log = logging.getLogger(__name__)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_ids(count: int) -> list[uuid.UUID]:
    """``count`` random (version 4) UUIDs from one ``os.urandom`` call; one call per id
    was a measurable share of the webhook door's CPU."""
    raw = os.urandom(16 * count)
    return [uuid.UUID(bytes=raw[i:i + 16], version=4) for i in range(0, 16 * count, 16)]


class OwnerBase(DeclarativeBase):
    """Tables of the owner database."""

    metadata = MetaData(naming_convention=NAMING)


class TenantBase(DeclarativeBase):
    """Tables of every tenant database."""

    metadata = MetaData(naming_convention=NAMING)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now(), onupdate=utcnow
    )


# ----------------------------------------------------------------------------- URLs


def async_url(url: str, database: str | None = None) -> str:
    """A ``postgresql://`` URL → the ``postgresql+asyncpg://`` form SQLAlchemy wants.

    Handles Unix-socket URLs (``?host=/path``) and optionally swaps the database name.
    """
    parts = urlsplit(url)
    scheme = "postgresql+asyncpg"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (plain ``postgresql://``)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def redact(url: str) -> str:
    """A URL safe to log (password removed)."""
    return make_url(async_url(url)).render_as_string(hide_password=True)


def server_key(url: str) -> str:
    """Identity of a server regardless of database: host(s), port, user."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or ""])[0]
    return f"{parts.username}@{host}:{parts.port or 5432}"


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 0, **kw: Any) -> AsyncEngine:
    """An asyncpg engine whose pool hands out only connections that are still open.

    No ``pool_pre_ping``: a ping is three round trips (BEGIN, ``;``, ROLLBACK) on every
    checkout. A server that restarts or kills a backend closes the socket, and asyncpg
    marks the connection closed as soon as the event loop sees that, so the checkout hook
    below discards such a connection (the pool opens a fresh one) without a round trip.
    A connection that dies unnoticed fails its first statement, and SQLAlchemy's
    disconnect handling invalidates it (and every older pooled connection) then.
    """
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "paymesh"}, "timeout": 10},
        **kw,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed)
    return engine


def _discard_closed(_dbapi: Any, record: Any, _proxy: Any) -> None:
    if record.driver_connection.is_closed():
        # the server went away since this connection was pooled; every connection opened
        # before now is suspect, so the pool replaces them all (lazily, at checkout)
        raise InvalidatePoolError("pooled connection was closed by the server")


@asynccontextmanager
async def autocommit_connection(url: str, *, pooled: bool = False
                                ) -> AsyncIterator[AsyncConnection]:
    """An AUTOCOMMIT connection (``CREATE DATABASE`` and friends), from an engine kept
    per URL and event loop, so its dialect is set up once rather than on every use.

    A new connection every time, unless ``pooled``: then one kept for the next caller
    (tenant provisioning clones a database per tenant, and opening a connection is a
    fifth of a clone's overhead). A pooled connection outlives its caller, so the
    caller must leave no session state on it (see ``owner.tenants.templates``).
    """
    key = (url, id(asyncio.get_running_loop()), pooled)
    engine = _autocommit_engines.get(key)
    if engine is None:
        pool: dict[str, Any] = ({"pool_size": 1, "max_overflow": 4, "pool_recycle": 1800}
                                if pooled else {"poolclass": _null_pool()})
        engine = _autocommit_engines[key] = create_async_engine(
            async_url(url), isolation_level="AUTOCOMMIT", **pool)
        if pooled:
            event.listen(engine.sync_engine, "checkout", _discard_closed)
    async with engine.connect() as conn:
        yield conn


_autocommit_engines: dict[tuple[str, int, bool], AsyncEngine] = {}


async def dispose_autocommit_engines() -> None:
    """Close the connections :func:`autocommit_connection` keeps for this event loop."""
    loop = id(asyncio.get_running_loop())
    for key in [key for key in _autocommit_engines if key[1] == loop]:
        await _autocommit_engines.pop(key).dispose()


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


async def fetch_page(session: AsyncSession, query: Select[Any], page: int,
                     limit: int, *, tuples: bool = False) -> tuple[list[Any], bool]:
    """Page ``page`` of ``query``'s rows (``page`` and ``limit`` checked by
    :func:`core.http.page_params`): ``LIMIT limit + 1`` tells whether another page follows.
    Every list endpoint pages through here. Returns (the page's rows, has_more): each row
    its first column, or (``tuples``) all of its columns."""
    paged = query.offset((page - 1) * limit).limit(limit + 1)
    rows = list((await session.execute(paged)).all() if tuples
                else (await session.scalars(paged)).all())
    return rows[:limit], len(rows) > limit


def where_state(query: Select[Any], column: Any, value: str | None, states: type[StrEnum],
                param: str) -> Select[Any]:
    """``query`` filtered on ``column = value`` when a value is given; a value that is not
    one of ``states`` is a 400 naming the allowed ones (every list's state filter)."""
    if value is None or value == "":
        return query
    if value not in set(states):
        from core.errors import ValidationError

        raise ValidationError(f"unknown {param.replace('_', ' ')} '{value}'; one of "
                              f"{', '.join(states)}", param=param)
    return query.where(column == value)


def after_commit(session: object, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction commits (cache invalidation: a
    reader between the change and its commit must not re-cache the old value)."""
    from sqlalchemy import event

    sync = getattr(session, "sync_session", session)
    event.listen(sync, "after_commit", lambda _: action(), once=True)


_AWAITED = "paymesh.after_commit_awaited"


def after_commit_awaited(db: Any, action: Callable[[], Awaitable[object]]) -> None:
    """Await ``action`` once ``db``'s transaction has committed, before the code that
    opened the transaction goes on (for a request: before its response is sent).

    For effects outside the database that others must see together with the change
    (a cache stamp in Redis). Run by the tenant engine registry's ``session()`` and
    ``transaction()`` (see :func:`run_after_commit_awaited`); a transaction opened
    elsewhere drops them, so they may only speed up what a bounded cache lifetime
    guarantees anyway.
    """
    db.info.setdefault(_AWAITED, []).append(action)


async def run_after_commit_awaited(info: dict[str, Any]) -> None:
    """The actions :func:`after_commit_awaited` queued; a failing one is logged and does
    not stop the others (the commit stands)."""
    for action in info.pop(_AWAITED, ()):
        try:
            await action()
        except Exception:
            log.exception("an after-commit action failed")


COMMIT_VERIFY_SECONDS = 15.0
_XACT_STATE = """
SELECT CASE WHEN CAST(CAST(:xid AS text) AS xid8) < pg_current_xact_id()
            THEN pg_xact_status(CAST(CAST(:xid AS text) AS xid8)) END
"""


async def transaction_committed(
        connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]], xid: str,
        probe: Executable, *, within: float = COMMIT_VERIFY_SECONDS) -> bool | None:
    """Whether transaction ``xid`` committed, for a COMMIT whose reply was lost.

    A server crash between flushing a commit record and answering it leaves the client
    with an error for a transaction that did commit. Once the server answers again and
    ``xid`` is no longer in progress, ``probe`` (a query that returns a row only if the
    transaction's writes exist, e.g. the row it inserted by primary key) settles it. The
    xid alone cannot: one whose records never reached the WAL is handed out again after
    recovery, so its status may be another transaction's. Returns None if the server is
    not back within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            async with connect() as conn:
                state = await conn.scalar(text(_XACT_STATE), {"xid": xid})
                if state != "in progress":
                    return (await conn.execute(probe)).first() is not None
        except (DBAPIError, OSError):
            pass  # still down or starting up
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.2)

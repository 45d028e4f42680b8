"""Plain SQL on a transaction's own asyncpg connection, beside (or instead of) the ORM.

The hot endpoints (creating an order, checking it out, the idempotency bookkeeping around
them) run a handful of fixed statements. Through the ORM each one costs a unit-of-work
flush or a compiled-statement lookup, result processing and a greenlet hop; here a
statement is one asyncpg call on the connection the transaction already holds, so it
commits or rolls back with everything else the request did (ORM work included).

Two kinds of transaction hand out plain SQL (:func:`sql`) and an ORM session (:func:`orm`):

- an ``AsyncSession`` in a transaction (what the ``tenant_db`` dependency gives);
- a :class:`Transaction` (``TenantEngineRegistry.transaction``): a Core transaction whose
  ORM session is made only when a code path needs one — a request that runs nothing but
  plain SQL skips the session's bookkeeping altogether.

Values follow asyncpg's codecs, with the JSON codecs SQLAlchemy installs on every
connection: ``json``/``jsonb`` parameters are JSON *text* (:func:`json_param`) and come
back decoded. Database errors are raised as the SQLAlchemy exceptions the ORM path would
raise, so :mod:`core.http` translates them the same way (409, 503, …).

ORM objects pending in a session are not flushed before a plain statement; callers that
mix the two flush first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, AsyncTransaction

_INFO_KEY = "paymesh.sql"

#: asyncpg error → the SQLAlchemy exception SQLAlchemy's asyncpg dialect raises for it
#: (most specific first).
_ERRORS: tuple[tuple[type[BaseException], type[sa_exc.DBAPIError]], ...] = (
    (asyncpg.IntegrityConstraintViolationError, sa_exc.IntegrityError),
    (asyncpg.DataError, sa_exc.DataError),  # bad input: 400, never a 5xx
    (asyncpg.SyntaxOrAccessError, sa_exc.ProgrammingError),
    (asyncpg.InternalServerError, sa_exc.InternalError),
    (asyncpg.InterfaceError, sa_exc.InterfaceError),
    (asyncpg.PostgresError, sa_exc.DBAPIError),
)


def json_param(value: Any) -> str:
    """A ``json``/``jsonb`` parameter (the connection's codec takes JSON text)."""
    return msgspec.json.encode(value).decode()


def columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows (at least one) as the column arrays ``unnest($1::…[], $2::…[], …)`` takes:
    how a statement writes any number of rows with a fixed number of parameters."""
    return [list(column) for column in zip(*rows, strict=True)]


def _translated(error: Exception, statement: str) -> Exception:
    for source, target in _ERRORS:
        if isinstance(error, source):
            return target(statement, None, error)
    return error


class Sql:
    """The statements of one transaction, on its asyncpg connection."""

    __slots__ = ("conn",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def fetch(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self.conn.fetch(statement, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise _translated(error, statement) from error

    async def fetchrow(self, statement: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self.conn.fetchrow(statement, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise _translated(error, statement) from error

    async def fetchval(self, statement: str, *args: Any) -> Any:
        try:
            return await self.conn.fetchval(statement, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise _translated(error, statement) from error

    async def execute(self, statement: str, *args: Any) -> str:
        """Run a statement; returns its status tag (``UPDATE 1``)."""
        try:
            return await self.conn.execute(statement, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise _translated(error, statement) from error


async def _driver_sql(connection: AsyncConnection) -> Sql:
    """Plain SQL on ``connection``, its driver-level transaction begun.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, on the first statement it runs
    itself; a statement sent around it before that would run in autocommit mode, so the
    transaction is started here explicitly.
    """
    pooled = await connection.get_raw_connection()
    adapted = pooled.dbapi_connection
    if getattr(adapted, "_transaction", None) is None and not adapted.autocommit:
        start = getattr(adapted, "_start_transaction", None)
        if start is not None:
            await start()
        else:  # an adapter without the hook: let it begin on a statement of its own
            await connection.exec_driver_sql("SELECT 1")
    return Sql(pooled.driver_connection)


async def autocommit_sql(connection: AsyncConnection) -> Sql:
    """Plain SQL on ``connection`` with no transaction around it: each statement commits
    on its own (single-statement reads on hot paths; no BEGIN or COMMIT round trips).
    Only for a connection nothing else has begun a transaction on."""
    pooled = await connection.get_raw_connection()
    return Sql(pooled.driver_connection)


class Transaction:
    """One Core transaction on a connection: plain SQL, and an ORM session on demand.

    The session (made by :meth:`orm`) takes the transaction over
    (``join_transaction_mode="control_fully"``), so the end of the transaction goes
    through it when there is one: pending objects are flushed and ``after_commit`` hooks
    run after the real COMMIT. :meth:`finish` ends it either way.
    """

    __slots__ = ("_session", "_sql", "connection", "info", "transaction")

    def __init__(self, connection: AsyncConnection, transaction: AsyncTransaction) -> None:
        self.connection = connection
        self.transaction = transaction
        #: Per-transaction notes, like ``Session.info`` (``core.db.after_commit_awaited``).
        self.info: dict[str, Any] = {}
        self._sql: Sql | None = None
        self._session: AsyncSession | None = None

    async def sql(self) -> Sql:
        if self._sql is None:
            self._sql = await _driver_sql(self.connection)
        return self._sql

    async def orm(self) -> AsyncSession:
        if self._session is None:
            session = AsyncSession(bind=self.connection, expire_on_commit=False,
                                   join_transaction_mode="control_fully")
            # take the transaction over now: a session that never touched the connection
            # would commit nothing, and the transaction would be rolled back on release
            await session.connection()
            self._session = session
        return self._session

    @property
    def session_info(self) -> dict[str, Any] | None:
        """The ORM session's ``info`` when one was made: what code handed the session
        noted there (``after_commit_awaited``) is run after the commit like ``info``."""
        return self._session.info if self._session is not None else None

    async def flush(self) -> None:
        if self._session is not None:
            await self._session.flush()

    async def finish(self, *, commit: bool) -> None:
        session = self._session
        if session is None:
            await (self.transaction.commit() if commit else self.transaction.rollback())
            return
        try:
            await (session.commit() if commit else session.rollback())
        finally:
            await session.close()


async def sql(db: AsyncSession | Transaction) -> Sql:
    """Plain SQL in ``db``'s current transaction (BEGIN sent first if still due)."""
    if isinstance(db, Transaction):
        return await db.sql()
    transaction = db.sync_session.get_transaction()
    cached = db.info.get(_INFO_KEY)
    if cached is not None and cached[0] is transaction:
        return cached[1]  # type: ignore[no-any-return]
    connection = await db.connection()
    handle = await _driver_sql(connection)
    db.info[_INFO_KEY] = (db.sync_session.get_transaction(), handle)
    return handle


async def orm(db: AsyncSession | Transaction) -> AsyncSession:
    """An ORM session in ``db``'s transaction (for the code paths that need one)."""
    return await db.orm() if isinstance(db, Transaction) else db


async def flush(db: AsyncSession | Transaction) -> None:
    """Flush pending ORM changes, if ``db`` has an ORM session at all."""
    await db.flush()

"""Group commit for the webhook inbox.

Concurrent ingests on one tenant database share one ``INSERT … SELECT FROM unnest(…)``,
one COMMIT and one Redis round trip: while a batch is being written, the next one
gathers. A request is answered only after its batch's COMMIT is acknowledged — or, when
the reply was lost, after the server confirms the rows are there — so 200 still means
stored, and an error still means not stored.

One bad row never fails its batch-mates: the service refuses what the inbox cannot hold
before it queues a row, and if the database still refuses a batch's data, each row is
written again on its own, so every request gets its own answer (the refused row a 400).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import actors
from core.db import new_ids, transaction_committed
from core.errors import PaymeshError, ServiceUnavailable
from core.metrics import ENQUEUE_FAILURES
from core.runtime import Runtime
from core.tenancy import TenantContext

log = logging.getLogger(__name__)
PROCESS_ACTOR = actors.PROCESS_WEBHOOK_EVENT
MAX_BATCH = 512

_INSERT = text("""
    INSERT INTO webhook_events (id, provider, provider_event_id, event_type, status, attempts,
                                body, normalized)
    SELECT r.id, r.provider, r.provider_event_id, r.event_type, 'received', 0, r.body,
           CAST(r.normalized AS jsonb)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:providers AS text[]),
                CAST(:event_ids AS text[]), CAST(:types AS text[]),
                CAST(:bodies AS bytea[]), CAST(:normalized AS text[]))
         AS r(id, provider, provider_event_id, event_type, body, normalized)
    ON CONFLICT (provider, provider_event_id) DO NOTHING
    RETURNING id, CAST(pg_current_xact_id() AS text) AS xid
""")
_PROBE = "SELECT 1 FROM webhook_events WHERE id = CAST(:id AS uuid)"


class UnstorableEvent(PaymeshError):
    """The database refused this one event's data (a batch-mate's answer is its own)."""

    status_code = 400
    code = "unstorable_event"


@dataclass(frozen=True, slots=True)
class InboxRow:
    provider: str
    provider_event_id: str
    event_type: str
    body: bytes
    normalized: str  # the normalized event as JSON text


@dataclass(slots=True)
class _Pending:
    tenant: TenantContext
    row: InboxRow
    stored: asyncio.Future[uuid.UUID | None]
    id: uuid.UUID | None = None


class InboxWriter:
    """Writes inbox rows in batches, at most ``writers`` batches per database at a time."""

    def __init__(self, runtime: Runtime, max_batch: int = MAX_BATCH, writers: int = 2) -> None:
        self.runtime = runtime
        self.max_batch = max_batch
        self.writers = writers
        self._queues: dict[str, list[_Pending]] = {}
        self._running: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, tenant: TenantContext, row: InboxRow) -> uuid.UUID | None:
        """Store ``row``; its event id if it is new, None if the provider sent it before."""
        pending = _Pending(tenant, row, asyncio.get_running_loop().create_future())
        self._queues.setdefault(tenant.db_url, []).append(pending)
        if self._running.get(tenant.db_url, 0) < self.writers:
            self._running[tenant.db_url] = self._running.get(tenant.db_url, 0) + 1
            self._spawn(self._drain(tenant.db_url))
        return await pending.stored

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)  # a reference until done: the loop keeps only weak ones
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, db_url: str) -> None:
        batch: list[_Pending] = []
        try:
            while queue := self._queues.get(db_url):
                batch, self._queues[db_url] = queue[:self.max_batch], queue[self.max_batch:]
                for p, event_id in zip(batch, new_ids(len(batch)), strict=True):
                    p.id = event_id
                try:
                    stored = await self._write(db_url, batch)
                except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                    if len(batch) > 1 and _refused_data(exc):
                        log.warning("inbox batch of %d refused (%r): writing its rows one "
                                    "by one", len(batch), exc)
                        stored = await self._write_each(db_url, batch)
                    else:
                        _settle(batch, error=_answer(exc))
                        continue
                for p in batch:
                    if not p.stored.done():
                        p.stored.set_result(p.id if p.id in stored else None)
                # answered already; the next batch need not wait for Redis either
                self._spawn(self._enqueue(batch[0].tenant,
                                          [p.id for p in batch if p.id in stored]))
        finally:  # cancelled (shutdown): nobody may wait forever
            self._running[db_url] -= 1
            if not self._running[db_url]:
                del self._running[db_url]
                left = batch + self._queues.pop(db_url, [])
            else:
                left = batch
            _settle(left, error=ServiceUnavailable("the inbox is shutting down; retry"))

    async def _write_each(self, db_url: str, batch: list[_Pending]) -> set[uuid.UUID]:
        """Each row in its own transaction; a row that fails is settled with its error."""
        stored: set[uuid.UUID] = set()
        for p in batch:
            try:
                stored |= await self._write(db_url, [p])
            except Exception as exc:  # noqa: BLE001 - this row's own answer
                _settle([p], error=_answer(exc))
        return stored

    async def _write(self, db_url: str, batch: list[_Pending]) -> set[uuid.UUID]:
        """Insert a batch; returns the ids that were new. Raises if it did not commit."""
        rows = [p.row for p in batch]
        params = {
            "ids": [p.id for p in batch], "providers": [r.provider for r in rows],
            "event_ids": [r.provider_event_id for r in rows],
            "types": [r.event_type for r in rows], "bodies": [r.body for r in rows],
            "normalized": [r.normalized for r in rows],
        }
        stored: set[uuid.UUID] = set()
        xid: str | None = None
        try:
            async with self.runtime.tenants.connect(db_url) as conn:
                for event_id, xid in await conn.execute(_INSERT, params):
                    stored.add(event_id)
                await conn.commit()
        except (DBAPIError, OSError):
            # The COMMIT's reply may be lost after it landed: ask the server before
            # answering either way.
            if xid is None or not await transaction_committed(
                    lambda: self.runtime.tenants.connect(db_url), xid,
                    text(_PROBE).bindparams(id=next(iter(stored)))):
                raise
            log.warning("commit reply lost but %d inbox rows are stored: acknowledging",
                        len(stored))
        return stored

    async def _enqueue(self, tenant: TenantContext, event_ids: list[uuid.UUID]) -> None:
        """After commit; if Redis is down the events wait in the inbox for the sweeper."""
        calls = [(tenant.slug, str(event_id)) for event_id in event_ids]
        if calls and not await self.runtime.enqueue_many(PROCESS_ACTOR, calls):
            ENQUEUE_FAILURES.inc(len(calls))


def _refused_data(exc: BaseException) -> bool:
    """The database (or the driver, encoding a parameter) refused the data itself — a
    data exception or a constraint (SQLSTATE classes 22, 23) — rather than being away."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UnicodeError):
            return True
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str) and state[:2] in ("22", "23"):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def _answer(exc: Exception) -> Exception:
    """A row's refused data answers 400 (sending it again cannot help); anything else
    (the database away) is answered as it is: retry."""
    if _refused_data(exc):
        return UnstorableEvent("the webhook event could not be stored: the database "
                               "refused one of its values")
    return exc


def _settle(batch: list[_Pending], *, error: BaseException) -> None:
    for p in batch:
        if not p.stored.done():
            p.stored.set_exception(error)


def inbox_writer(runtime: Runtime) -> InboxWriter:
    writer = runtime.extras.get("inbox")
    if writer is None:
        writer = runtime.extras["inbox"] = InboxWriter(runtime)
    return writer  # type: ignore[return-value]

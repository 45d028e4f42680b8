"""A COMMIT whose reply was lost is settled by asking the server once it answers again."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from core.db import make_engine, transaction_committed
from tests.conftest import worker_tag

pytestmark = pytest.mark.asyncio
XID = text("SELECT CAST(pg_current_xact_id() AS text)")
TABLE = f"outcome_probe_{worker_tag()}"


@pytest.fixture
async def engine(pg_url):  # noqa: ANN001, ANN201
    engine = make_engine(pg_url, pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE TABLE IF NOT EXISTS "{TABLE}" (marker text)'))
    yield engine
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP TABLE "{TABLE}"'))
    await engine.dispose()


async def write(conn) -> tuple[str, object]:  # noqa: ANN001
    """Insert a marker row; returns the transaction id and a probe for that row."""
    marker = uuid.uuid4().hex
    await conn.execute(text(f'INSERT INTO "{TABLE}" VALUES (:m)'), {"m": marker})
    probe = text(f'SELECT 1 FROM "{TABLE}" WHERE marker = :m').bindparams(m=marker)
    return await conn.scalar(XID), probe


async def test_committed_and_rolled_back_transactions_are_told_apart(engine):
    async with engine.connect() as conn:
        committed = await write(conn)
        await conn.commit()
        rolled_back = await write(conn)
        await conn.rollback()
    assert await transaction_committed(engine.connect, *committed, within=5) is True
    assert await transaction_committed(engine.connect, *rolled_back, within=5) is False


async def test_a_transaction_still_open_is_not_reported_as_settled(engine):
    async with engine.connect() as open_conn:
        running = await write(open_conn)
        assert await transaction_committed(engine.connect, *running, within=0.5) is None
        await open_conn.commit()
    assert await transaction_committed(engine.connect, *running, within=5) is True


async def test_a_reused_transaction_id_does_not_pass_for_ours(engine):
    """After a crash an xid whose records never reached the WAL is handed out again: a
    committed status under our xid is not proof; our row is."""
    async with engine.connect() as conn:
        committed_xid, _ = await write(conn)
        await conn.commit()
    never_written = text(f'SELECT 1 FROM "{TABLE}" WHERE marker = :m').bindparams(m="none")
    assert await transaction_committed(engine.connect, committed_xid, never_written,
                                       within=5) is False


async def test_an_unreachable_server_leaves_the_outcome_unknown():
    engine = make_engine("postgresql://paymesh@127.0.0.1:9/none", pool_size=1)
    started = time.monotonic()
    try:
        assert await transaction_committed(engine.connect, "1", text("SELECT 1"),
                                           within=0.5) is None
    finally:
        await engine.dispose()
    assert time.monotonic() - started < 5

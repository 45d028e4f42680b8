"""``bench/floor_app.py``: the order + checkout skeleton the order_checkout row compares with.

It must keep the guarantees it claims (a key replays, an order's checkouts are numbered
under its lock, attempts and stored responses are written with the business rows) and
answer the row's wrk chain exactly as the API does, or its figure would mean nothing.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from bench.floor_app import PRODUCT, SCHEMA
from bench.load import LoadSpec, WrkGenerator
from bench.rows.order_checkout import chain_script
from core.db import with_database
from tests.bench.conftest import serve_module
from tests.bench.test_bench_rows import _shop
from tests.conftest import worker_tag


async def _on(url: str, call: str, statement: str, *args: object) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await getattr(conn, call)(statement, *args)
    finally:
        await conn.close()


def _run(url: str, script: str, *args: object) -> None:
    """A script (several statements), or one statement with arguments."""
    asyncio.run(_on(url, "execute", script, *args))


def _value(url: str, statement: str) -> object:
    return asyncio.run(_on(url, "fetchval", statement))


@pytest.fixture
def floor(pg_url, redis_url):
    shop = _shop()
    name = f"pmt_{worker_tag()}_floor"
    server = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    url = with_database(server, name)
    _run(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _run(server, f'CREATE DATABASE "{name}"')
    _run(url, SCHEMA)
    _run(url, PRODUCT, uuid.UUID(shop.product_id), shop.price, "USD")
    env = {"PAYMESH_FLOOR_DSN": url, "PAYMESH_FLOOR_REDIS": redis_url}
    try:
        with serve_module("bench.floor_app", "floor app", env) as base:
            yield base, url, shop
    finally:
        _run(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_keys_replay_and_checkouts_number_their_attempts(floor):
    base, url, shop = floor
    with httpx.Client(base_url=base, timeout=10) as client:
        def post(path: str, body: dict, key: str) -> httpx.Response:
            return client.post(path, json=body, headers={"Idempotency-Key": key})

        order = post("/v1/orders", shop.order_body(), "o-1")
        assert order.status_code == 201 and order.json()["total"] == shop.price
        again = post("/v1/orders", shop.order_body(), "o-1")
        assert again.status_code == 201 and again.json() == order.json()
        path = f"/v1/orders/{order.json()['id']}/checkout"
        first, second = post(path, {}, "c-1"), post(path, {}, "c-2")
        assert first.status_code == second.status_code == 201
        assert first.json()["reused"] is False
        assert first.json()["payment"]["id"] != second.json()["payment"]["id"]
        assert post(path, {}, "c-1").json() == first.json()  # replayed, no new attempt
        unknown = {**shop.order_body(), "items": [{"product_id": str(uuid.uuid4())}]}
        assert post("/v1/orders", unknown, "o-2").status_code == 400
        missing = post(f"/v1/orders/{uuid.uuid4()}/checkout", {}, "c-3")
        assert missing.status_code == 404
    attempts = _value(url, "SELECT array_agg(attempt ORDER BY attempt) FROM floor_payments")
    assert attempts == [1, 2]
    assert _value(url, "SELECT count(*) FROM floor_orders") == 1
    assert _value(url, "SELECT count(*) FROM floor_keys") == 3


def test_it_answers_the_rows_chain(floor, tmp_path, wrk_binary):
    base, url, shop = floor
    spec = LoadSpec("floor chain", base, [], lua=chain_script(shop))
    generator = WrkGenerator(wrk_binary, connections=8, threads=2, workdir=tmp_path)
    result = asyncio.run(generator.run(spec, 1))
    extra = result.extra
    assert extra["ok_orders"] > 10 and extra["ok_checkouts"] > 10
    assert extra["non_2xx"] == {} and extra["unparsed"] == 0 and extra["other_ok"] == 0
    written = _value(url, "SELECT count(*) FROM floor_payments")
    assert 0 <= written - extra["ok_checkouts"] <= 8  # plus what was in flight at the stop

"""Plumbing of the payment bench rows (order_checkout, webhook_ingest, worker_processing).

No platform servers: the Lua chain runs against :mod:`tests.bench.fake_shop`, and the
signed events are checked with the sandbox provider's own verification.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from bench import registry
from tests.bench.conftest import serve_module
from bench import shop as shops
from bench.load import LoadSpec, WrkGenerator
from bench.rows.order_checkout import chain_script



def _shop() -> shops.Shop:
    tenant: Any = SimpleNamespace(slug="bench-00042", key="key_test")
    return shops.Shop(tenant=tenant, db_name="x", db_url="postgresql://x/x",
                      secret_key=shops.SANDBOX_KEY,
                      product_id="0fc5a92c-ece6-4cb2-9c85-592187ccaddc")


def test_payment_rows_are_registered_with_their_needs():
    names = [r.name for r in registry.resolve(None)]
    for name in ("order_checkout", "webhook_ingest", "worker_processing"):
        assert name in names and name not in registry.PLANNED
        assert registry.ROWS[name].needs == ("references",)
    assert [r.name for r in registry.resolve(["worker_processing"])] == [
        "references", "worker_processing"]


def test_noise_webhooks_are_unique_and_verify_with_the_sandbox_scheme():
    from providers.sandbox.provider import SandboxProvider
    from providers.sandbox.signing import verify_signature, webhook_secret_for

    shop = _shop()
    requests = shops.noise_requests(shop, 50, "t")
    secret = webhook_secret_for(shop.secret_key)
    ids = set()
    for req in requests:
        assert req.method == "POST" and req.path == "/webhooks/bench-00042/sandbox"
        assert req.body is not None
        verify_signature(req.headers["Sandbox-Signature"], req.body, secret)  # raises if bad
        event = SandboxProvider._decode(req.body)
        assert event.type == "noise.bench" and event.data.object == {"id": "x"}
        ids.add(event.id)
    assert len(ids) == 50


def test_payment_succeeded_event_has_the_gateway_shape():
    body = shops.event_body("evt_1", "payment.succeeded", {
        "id": "pay_1", "amount": 1999, "currency": "USD", "reference": "o1",
        "status": "succeeded"}, 1_700_000_000)
    assert json.loads(body) == {"id": "evt_1", "type": "payment.succeeded",
                                "created": 1_700_000_000, "data": {"object": {
                                    "id": "pay_1", "amount": 1999, "currency": "USD",
                                    "reference": "o1", "status": "succeeded"}}}


@pytest.fixture
def fake_shop():
    with serve_module("tests.bench.fake_shop", "fake shop") as base:
        yield base


def test_lua_chain_checks_out_each_created_order_once(fake_shop, tmp_path, wrk_binary):
    spec = LoadSpec("chain", fake_shop, [], lua=chain_script(_shop()))
    generator = WrkGenerator(wrk_binary, connections=8, threads=2, workdir=tmp_path)
    result = asyncio.run(generator.run(spec, 1))
    seen = httpx.get(f"{fake_shop}/stats", timeout=5).json()
    extra = result.extra
    assert extra["ok_orders"] > 10 and extra["ok_checkouts"] > 10
    assert extra["non_2xx"] == {} and extra["unparsed"] == 0 and extra["other_ok"] == 0
    # every checkout names an order the server created, and no order twice
    assert seen["checkouts"] == seen["distinct_checkouts"]
    assert seen["bad"] == 0 and seen["missing_keys"] == 0
    assert seen["keys"] == seen["distinct_keys"]  # an Idempotency-Key per request
    # the chain alternates: at most one open order per connection is left over
    assert 0 <= extra["ok_orders"] - extra["ok_checkouts"] <= 8
    # the server saw at least what wrk counted (plus what was in flight at the stop)
    assert 0 <= seen["orders"] - extra["ok_orders"] <= 8
    assert 0 <= seen["checkouts"] - extra["ok_checkouts"] <= 8
    assert extra["ok_orders"] + extra["ok_checkouts"] == result.requests


def test_each_spec_gets_its_own_script_even_at_a_freed_specs_address(tmp_path):
    """The scripts were cached by ``id(spec)``: a spec allocated where a finished row's spec
    had been (CPython reuses the address at once) was sent that row's requests instead."""
    generator = WrkGenerator("wrk", connections=1, threads=1, workdir=tmp_path)
    for i in range(50):
        spec = LoadSpec(f"row {i}", "http://127.0.0.1:1", [], lua=f"-- the script of row {i}")
        assert f"-- the script of row {i}\n" in generator._script(spec).read_text()
        del spec  # freed, as a finished row's spec is


def test_webhook_warm_up_and_load_after_another_row_store_what_was_answered(
        fake_shop, tmp_path, wrk_binary):
    """webhook_ingest's shape at small scale, after order_checkout's chain: every 200 of
    the warm-up and of the load is an event the server stored (a full bench once counted
    the warm-up's 200s of a stale script as webhooks: "MISMATCH")."""
    generator = WrkGenerator(wrk_binary, connections=8, threads=2, workdir=tmp_path)

    def order_checkout_row() -> None:
        chain = LoadSpec("order + checkout", fake_shop, [], lua=chain_script(_shop()))
        assert asyncio.run(generator.run(chain, 1)).extra["ok_orders"] > 0

    order_checkout_row()
    shop = _shop()
    warm = LoadSpec("webhook ingest (warm-up)", fake_shop,
                    shops.noise_requests(shop, 20_000, "warm"))
    load = LoadSpec("webhook ingest", fake_shop, shops.noise_requests(shop, 20_000, "load"))
    warm_result = asyncio.run(generator.run(warm, 1))
    load_result = asyncio.run(generator.run(load, 1))
    stored = httpx.get(f"{fake_shop}/stats", timeout=5).json()["webhooks"]
    answered = warm_result.ok_responses + load_result.ok_responses
    assert warm_result.extra == {} and load_result.extra == {}  # not the chain's script
    assert warm_result.ok_responses > 0 and load_result.ok_responses > 0
    # stored == answered, up to one request per connection in flight when wrk stopped
    assert 0 <= stored - answered <= 2 * 8

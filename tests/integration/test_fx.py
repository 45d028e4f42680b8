"""FX rates (O6): the owner's overrides through HTTP, and conversions falling through the
layers against a real local rate API that is up, down, slow or talking nonsense."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from core.errors import UnprocessableError
from core.fx import Source
from core.runtime import get_runtime
from owner import fx
from tests.fx_api import (  # noqa: F401 - fixtures
    age_fetched_rates,
    forget_fx_caches,
    fx_runtime,
    rate_api,
)

pytestmark = pytest.mark.asyncio


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("paymesh_fx_api_failures_total", {"reason": reason}) or 0.0


async def owner_rows(sql: str, **params: object) -> list:
    async with get_runtime().owner_session() as session:
        return list((await session.execute(text(sql), params)).all())


async def get_rates(client, owner_headers) -> dict[str, dict]:  # noqa: ANN001
    response = await client.get("/v1/owner/fx-rates", headers=owner_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["base"] == "USD"
    return {r["currency"]: r for r in body["rates"]}


async def test_owner_sets_and_removes_overrides(client, owner_headers, fx_runtime, rate_api):
    response = await client.put("/v1/owner/fx-rates", headers=owner_headers,
                                json={"rates": {"EUR": "0.92", "vnd": "24500.50"}})
    assert response.status_code == 200, response.text
    rates = {r["currency"]: r for r in response.json()["rates"]}
    assert rates["EUR"]["rate"] == "0.92" and rates["EUR"]["source"] == "manual"
    assert rates["VND"]["rate"] == "24500.5" and rates["VND"]["fetched_at"]

    conversion = await fx.convert(10_000, "USD", "EUR")  # $100.00
    assert (conversion.amount, conversion.rate, conversion.source) == \
        (9_200, Decimal("0.92"), Source.MANUAL)
    assert rate_api.calls == 0  # a manual rate never asks the API

    removed = await client.put("/v1/owner/fx-rates", headers=owner_headers,
                               json={"rates": {"EUR": None, "GBP": None}})
    assert removed.status_code == 200, removed.text
    assert set(await get_rates(client, owner_headers)) == {"VND"}

    history = await owner_rows("SELECT currency, source, rate FROM fx_rate_history "
                               "WHERE source = 'manual' AND currency IN ('EUR', 'VND', 'GBP') "
                               "ORDER BY id DESC LIMIT 3")
    assert [(c, s, r) for c, s, r in history] == [
        ("EUR", "manual", None), ("VND", "manual", Decimal("24500.5")),
        ("EUR", "manual", Decimal("0.92"))]
    audit = await owner_rows("SELECT action, entity_id, data FROM audit_log "
                             "WHERE entity_type = 'fx_rate' ORDER BY created_at DESC LIMIT 3")
    assert (audit[0][0], audit[0][1]) == ("fx.override_removed", "EUR")  # GBP had none
    assert {(a, e) for a, e, _ in audit[1:]} == {("fx.override_set", "EUR"),
                                                  ("fx.override_set", "VND")}
    assert audit[0][2] == {"rate": None, "previous": "0.92"}


@pytest.mark.parametrize("body", [
    {"rates": {"EUR": 0.92}},  # a JSON number: rates are decimal strings
    {"rates": {"EUR": 1}},
    {"rates": {"EUR": "abc"}},
    {"rates": {"EUR": "-0.92"}},
    {"rates": {"EUR": "0"}},
    {"rates": {"EUR": "0.0000000000"}},
    {"rates": {"EUR": "0.12345678901"}},  # 11 decimals
    {"rates": {"EUR": "1234567890123"}},  # 13 integer digits
    {"rates": {"EUR": "1e3"}},
    {"rates": {"EUR": "NaN"}},
    {"rates": {"EUR": "Infinity"}},
    {"rates": {"EUR": " 0.92"}},
    {"rates": {"EUR": ""}},
    {"rates": {"XYZ": "1.5"}},  # not an ISO-4217 code
    {"rates": {"USD": "1"}},  # the base
    {"rates": {"EUR": "0.9", "eur": "0.8"}},  # the same currency twice
    {"rates": {"GBP": "0.79", "EUR": "x"}},  # one bad entry: the good one is not set either
    {"rates": {}},
    {"rates": "EUR=0.92"},
    {"rates": {"EUR": "0.92"}, "note": "x"},
    {},
])
async def test_malformed_rates_are_refused_and_change_nothing(client, owner_headers,
                                                              fx_runtime, body):
    before = await get_rates(client, owner_headers)
    history = await owner_rows("SELECT count(*) FROM fx_rate_history")
    response = await client.put("/v1/owner/fx-rates", headers=owner_headers, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) >= {"type", "code", "message", "param"}
    assert error["code"] == "validation_error"
    assert await get_rates(client, owner_headers) == before
    assert await owner_rows("SELECT count(*) FROM fx_rate_history") == history


async def test_fx_rates_need_an_owner_key(client, make_tenant):
    tenant = await make_tenant("fx")
    for method in ("GET", "PUT"):
        response = await client.request(method, "/v1/owner/fx-rates", headers=tenant.headers,
                                        json={"rates": {"EUR": "0.5"}})
        assert response.status_code == 403, response.text
    response = await client.get("/v1/owner/fx-rates")
    assert response.status_code == 401


async def test_conversions_fall_through_the_layers(client, owner_headers, fx_runtime,
                                                   rate_api):
    # no stored rate: the API answers, and what it said is stored with its history
    history = "SELECT count(*) FROM fx_rate_history WHERE source = 'api'"
    [(fetched_before,)] = await owner_rows(history)
    first = await fx.convert(10_000, "USD", "EUR")
    assert (first.amount, first.rate, first.source) == (9_100, Decimal("0.91"), Source.API)
    stored = await owner_rows("SELECT currency, rate FROM fx_rates WHERE source = 'api' "
                              "ORDER BY currency")
    assert stored == [("EUR", Decimal("0.91")), ("VND", Decimal("25000"))]
    assert await owner_rows(history) == [(fetched_before + 2,)]

    # within the TTL: the stored rate, without calling the API
    forget_fx_caches()
    calls = rate_api.calls
    cached = await fx.convert(2_500_000, "VND", "USD")  # 2.5 M VND at 25 000 = $100.00
    assert (cached.amount, cached.rate, cached.source) == (10_000, Decimal("25000"),
                                                          Source.CACHED)
    assert rate_api.calls == calls
    rates = await get_rates(client, owner_headers)
    assert rates["EUR"]["source"] == "cached" and rates["EUR"]["rate"] == "0.91"

    # a manual override wins over everything
    await client.put("/v1/owner/fx-rates", headers=owner_headers, json={"rates": {"EUR": "0.95"}})
    manual = await fx.convert(10_000, "USD", "EUR")
    assert (manual.amount, manual.source) == (9_500, Source.MANUAL)
    await client.put("/v1/owner/fx-rates", headers=owner_headers, json={"rates": {"EUR": None}})

    # past the TTL: the API is asked again
    rate_api.body = {"rates": {"EUR": 0.93, "VND": 26000}}
    await age_fetched_rates()
    assert (await get_rates(client, owner_headers))["EUR"]["source"] == "expired"
    fresh = await fx.convert(10_000, "USD", "EUR")
    assert (fresh.amount, fresh.rate, fresh.source) == (9_300, Decimal("0.93"), Source.API)

    # past the TTL with the API dead, slow, failing or talking nonsense: the last rate,
    # marked expired, and the failure counted
    for mode, reason in [("down", "unreachable"), ("slow", "timeout"), ("error", "http_status"),
                         ("garbage", "garbage"), ("bad_rates", "garbage")]:
        rate_api.set(mode)
        await age_fetched_rates()
        counted = failures(reason)
        expired = await fx.convert(10_000, "USD", "EUR")
        assert (expired.amount, expired.rate, expired.source) == \
            (9_300, Decimal("0.93"), Source.EXPIRED), mode
        assert failures(reason) == counted + 1, mode

    # a failed API is not asked again at once (one timeout per half minute, not per sale)
    rate_api.set("up")
    calls = rate_api.calls
    again = await fx.convert(10_000, "USD", "EUR")
    assert again.source == Source.EXPIRED and rate_api.calls == calls


async def test_no_rate_anywhere_is_the_fallback_then_a_422(fx_runtime, rate_api):
    import dataclasses

    rate_api.set("down")
    fx_runtime.settings = dataclasses.replace(fx_runtime.settings,
                                              fx_fallback={"GBP": Decimal("0.79")})
    fallback = await fx.convert(10_000, "USD", "GBP")
    assert (fallback.amount, fallback.rate, fallback.source) == \
        (7_900, Decimal("0.79"), Source.FALLBACK)

    rate_api.set("up")  # it knows EUR and VND only
    forget_fx_caches()
    with pytest.raises(UnprocessableError) as raised:
        await fx.convert(10_000, "USD", "CHF")
    assert raised.value.status_code == 422 and raised.value.code == "fx_rate_unavailable"
    assert raised.value.to_dict()["error"]["param"] == "currency"


async def test_every_currency_converts_in_its_own_exponent(client, owner_headers, fx_runtime):
    await client.put("/v1/owner/fx-rates", headers=owner_headers, json={"rates": {
        "JPY": "150.5", "KWD": "0.307", "VND": "24500", "EUR": "0.92"}})
    ten_dollars = 1_000
    assert (await fx.convert(ten_dollars, "USD", "JPY")).amount == 1_505  # ¥1,505
    assert (await fx.convert(ten_dollars, "USD", "KWD")).amount == 3_070  # 3.070 KWD
    assert (await fx.convert(ten_dollars, "USD", "VND")).amount == 245_000
    assert (await fx.convert(1_505, "JPY", "USD")).amount == ten_dollars
    # between two currencies through USD: 245 000 VND = $10 = €9.20, both rates kept
    cross = await fx.convert(245_000, "VND", "EUR")
    assert cross.amount == 920 and cross.source == Source.MANUAL
    assert (cross.from_quote.rate, cross.to_quote.rate) == (Decimal("24500"), Decimal("0.92"))
    same = await fx.convert(123, "EUR", "EUR")
    assert (same.amount, same.rate, same.source) == (123, Decimal(1), Source.NATIVE)
    usd = await fx.convert(123, "USD", "USD")
    assert usd.source == Source.NATIVE

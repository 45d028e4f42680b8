"""The double-entry ledger (T22): postings balance, the database refuses anything else,
and ledger totals agree with the orders to the minor unit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tenant.ledger import service as ledger
from tests.integration.test_orders_support import (
    assert_error,
    balances,
    checkout,
    configure,
    gateway,  # noqa: F401 - fixture
    order,
    succeed,
    tenant_db,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]


async def pay_by_card(client, tenant, made: dict, fee: int) -> dict:  # noqa: ANN001
    payment = (await checkout(client, tenant, made["id"])).json()["payment"]
    assert await succeed(tenant.slug, payment, fee_amount=fee) is True
    return payment


async def test_capture_and_cash_postings_agree_with_orders(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    await client.patch("/v1/settings", json={"tax_rate": "10"}, headers=tenant.headers)
    card = await order(client, tenant, items=[{"description": "Visit", "quantity": 2,
                                               "unit_amount": 4999}])
    cash = await order(client, tenant, items=[{"description": "Drops", "quantity": 1,
                                               "unit_amount": 1250}])
    yen = await order(client, tenant, currency="JPY",
                      items=[{"description": "Visit", "quantity": 3, "unit_amount": 1234}])
    unpaid = await order(client, tenant)
    await pay_by_card(client, tenant, card, fee=320)
    await pay_by_card(client, tenant, yen, fee=147)
    await client.put("/v1/providers/cash", json={}, headers=tenant.headers)  # mark-paid needs it
    assert (await client.post(f"/v1/orders/{cash['id']}/mark-paid",
                              headers=tenant.headers)).status_code == 200

    usd = await balances(client, tenant, "USD")
    paid_usd = [card, cash]
    assert usd["revenue/USD"] == sum(o["total"] - o["tax"] for o in paid_usd)
    assert usd["tax_payable/USD"] == sum(o["tax"] for o in paid_usd)
    assert usd["revenue/USD"] + usd["tax_payable/USD"] == sum(o["total"] for o in paid_usd)
    assert usd["provider_clearing:sandbox/USD"] == card["total"] - 320
    assert usd["provider_fees/USD"] == 320
    assert usd["cash_on_hand/USD"] == cash["total"]
    assert usd["customer_receivable/USD"] == 0
    jpy = await balances(client, tenant, "JPY")
    assert jpy["revenue/JPY"] + jpy["tax_payable/JPY"] == yen["total"] == 4072
    assert jpy["provider_clearing:sandbox/JPY"] == yen["total"] - 147
    everything = await balances(client, tenant)
    assert set(everything) == set(usd) | set(jpy)
    assert unpaid["total"] not in everything.values()

    journal = (await client.get(f"/v1/ledger/transactions?order_id={card['id']}",
                                headers=tenant.headers)).json()
    assert [t["kind"] for t in journal["data"]] == ["payment.captured"]
    entries = journal["data"][0]["entries"]
    assert sum(e["debit"] for e in entries) == sum(e["credit"] for e in entries)
    assert {e["currency"] for e in entries} == {"USD"}
    assert (await client.get(f"/v1/ledger/transactions?order_id={unpaid['id']}",
                             headers=tenant.headers)).json()["data"] == []


async def test_every_posting_balances(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    for n in range(3):
        made = await order(client, tenant, items=[{"description": "x", "quantity": n + 1,
                                                   "unit_amount": 777}])
        await pay_by_card(client, tenant, made, fee=n * 11)
    listed = (await client.get("/v1/ledger/transactions?limit=100",
                               headers=tenant.headers)).json()["data"]
    assert len(listed) == 3
    for txn in listed:
        per: dict[str, int] = {}
        for e in txn["entries"]:
            assert (e["debit"] == 0) != (e["credit"] == 0)
            per[e["currency"]] = per.get(e["currency"], 0) + e["debit"] - e["credit"]
        assert all(v == 0 for v in per.values()), txn
    async with tenant_db(tenant.slug) as session:
        off = (await session.execute(text(
            "SELECT transaction_id FROM ledger_entries GROUP BY transaction_id, currency "
            "HAVING sum(debit) <> sum(credit)"))).all()
    assert off == []


async def test_the_database_refuses_unbalanced_postings(client, make_tenant):
    tenant = await make_tenant()
    await configure(client, tenant)
    await pay_by_card(client, tenant, await order(client, tenant), fee=0)
    async with tenant_db(tenant.slug) as session:
        account = (await session.execute(text("SELECT id FROM ledger_accounts LIMIT 1"))).scalar()

    async def raw_posting(lines: list[tuple[str, int, int]]) -> None:
        txn = uuid.uuid4()
        async with tenant_db(tenant.slug) as session:
            await session.execute(text(
                "INSERT INTO ledger_transactions (id, posting_key, kind, description, data) "
                "VALUES (:id, :key, 'manual', '', '{}')"), {"id": txn, "key": f"raw:{txn}"})
            for currency, debit, credit in lines:
                await session.execute(text(
                    "INSERT INTO ledger_entries (id, transaction_id, position, account_id, "
                    "currency, debit, credit) VALUES (:id, :t, 0, :a, :c, :d, :k)"),
                    {"id": uuid.uuid4(), "t": txn, "a": account, "c": currency, "d": debit,
                     "k": credit})

    with pytest.raises(DBAPIError, match="does not balance"):
        await raw_posting([("USD", 100, 0), ("USD", 0, 99)])
    # balanced in sum, but not per currency
    with pytest.raises(DBAPIError, match="does not balance in"):
        await raw_posting([("USD", 100, 0), ("EUR", 0, 100)])
    with pytest.raises(DBAPIError, match="at least two"):
        await raw_posting([])
    await raw_posting([("USD", 100, 0), ("USD", 0, 60), ("USD", 0, 40)])  # balanced: accepted
    with pytest.raises(DBAPIError, match="append-only"):
        async with tenant_db(tenant.slug) as session:
            await session.execute(text("UPDATE ledger_entries SET debit = debit + 1 "
                                       "WHERE debit > 0"))
    with pytest.raises(DBAPIError, match="append-only"):
        async with tenant_db(tenant.slug) as session:
            await session.execute(text("DELETE FROM ledger_transactions"))
    await balances(client, tenant)  # still balanced


_TXN = ("INSERT INTO ledger_transactions (id, posting_key, kind, description, data) "
        "SELECT id, 'raw:' || id, 'manual', '', '{}' FROM unnest(CAST(:txns AS uuid[])) AS id")
_ENTRIES = ("INSERT INTO ledger_entries (id, transaction_id, position, account_id, currency, "
            "debit, credit) SELECT gen_random_uuid(), e.txn, 0, :account, e.currency, e.debit, "
            "e.credit FROM unnest(CAST(:txn AS uuid[]), CAST(:currency AS text[]), "
            "CAST(:debit AS bigint[]), CAST(:credit AS bigint[])) AS e(txn, currency, debit, "
            "credit)")


async def test_the_database_checks_each_statement_and_again_at_commit(client, make_tenant):
    """A statement that leaves a journal transaction unbalanced is refused at commit, however
    many transactions it writes at once, and whatever the session does in between."""
    tenant = await make_tenant()
    await configure(client, tenant)
    await pay_by_card(client, tenant, await order(client, tenant), fee=0)
    async with tenant_db(tenant.slug) as session:
        account = (await session.execute(text("SELECT id FROM ledger_accounts LIMIT 1"))).scalar()

    def entries(*rows: tuple[uuid.UUID, str, int, int]) -> tuple[Any, dict[str, Any]]:
        columns = ["txn", "currency", "debit", "credit"]
        return text(_ENTRIES), {"account": account,
                                **{c: [row[i] for row in rows] for i, c in enumerate(columns)}}

    def journal(*txns: uuid.UUID) -> tuple[Any, dict[str, Any]]:
        return text(_TXN), {"txns": list(txns)}

    async def commit(*statements: tuple[Any, dict[str, Any]]) -> None:
        async with tenant_db(tenant.slug) as session:
            for statement, params in statements:
                await session.execute(statement, params)

    good, bad = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(DBAPIError, match=f"{bad} does not balance in EUR"):
        await commit(journal(good, bad), entries(
            (good, "USD", 100, 0), (good, "USD", 0, 100), (bad, "EUR", 100, 0),
            (bad, "EUR", 0, 90), (bad, "USD", 0, 10)))
    note = (text("DELETE FROM ledger_balance_checks"), {})
    lone = uuid.uuid4()
    with pytest.raises(DBAPIError, match="at least two"):  # a note removed by hand still fires
        await commit(journal(lone), entries((lone, "USD", 100, 0)), note)
    early = uuid.uuid4()
    with pytest.raises(DBAPIError, match="does not balance"):  # checked early, changed later
        await commit(journal(early), entries((early, "USD", 5, 0), (early, "USD", 0, 5)),
                     (text("SET CONSTRAINTS ALL IMMEDIATE"), {}), entries((early, "USD", 1, 0)))
    done = uuid.uuid4()
    await commit(journal(done), entries((done, "USD", 7, 0)), entries((done, "USD", 0, 7)))
    with pytest.raises(DBAPIError, match="does not balance"):  # committed: closed for good
        await commit(entries((done, "USD", 0, 1)))
    async with tenant_db(tenant.slug) as session:
        assert (await session.execute(text(
            "SELECT transaction_id FROM ledger_entries GROUP BY transaction_id, currency "
            "HAVING sum(debit) <> sum(credit)"))).all() == []
        assert (await session.execute(text("SELECT count(*) FROM ledger_balance_checks"))
                ).scalar() == 0
        assert (await session.execute(text(
            "SELECT count(*) FROM ledger_entries WHERE transaction_id = :t"), {"t": done})
                ).scalar() == 2


async def test_entries_name_what_exists_and_what_they_name_stays(client, make_tenant):
    """Entries' references are checked per statement (no per-row foreign keys): an entry
    naming a missing account or journal transaction is refused, and neither can be
    removed once entries may name it."""
    tenant = await make_tenant()
    await configure(client, tenant)
    await pay_by_card(client, tenant, await order(client, tenant), fee=0)
    async with tenant_db(tenant.slug) as session:
        account = (await session.execute(text("SELECT id FROM ledger_accounts LIMIT 1"))).scalar()
        before = (await session.execute(text("SELECT count(*) FROM ledger_entries"))).scalar()

    async def post(txn: uuid.UUID, accounts: tuple[uuid.UUID, uuid.UUID],
                   journal: bool = True) -> None:
        async with tenant_db(tenant.slug) as session:
            if journal:
                await session.execute(text(_TXN), {"txns": [txn]})
            await session.execute(text(
                "INSERT INTO ledger_entries (id, transaction_id, position, account_id, "
                "currency, debit, credit) VALUES (gen_random_uuid(), :t, 0, :a, 'USD', 5, 0), "
                "(gen_random_uuid(), :t, 1, :b, 'USD', 0, 5)"),
                {"t": txn, "a": accounts[0], "b": accounts[1]})

    missing = uuid.uuid4()
    with pytest.raises(DBAPIError, match=f"names account {missing}, which does not exist"):
        await post(uuid.uuid4(), (account, missing))
    lost = uuid.uuid4()
    with pytest.raises(DBAPIError, match=f"names journal transaction {lost}, which does not"):
        await post(lost, (account, account), journal=False)
    await post(uuid.uuid4(), (account, account))  # both exist: accepted

    for statement in ("DELETE FROM ledger_accounts WHERE id = :a",
                      "UPDATE ledger_accounts SET id = gen_random_uuid() WHERE id = :a",
                      "TRUNCATE ledger_accounts CASCADE", "TRUNCATE ledger_transactions CASCADE",
                      "TRUNCATE ledger_entries"):
        with pytest.raises(DBAPIError, match="keeps what ledger entries refer to"):
            async with tenant_db(tenant.slug) as session:
                await session.execute(text(statement), {"a": account})
    async with tenant_db(tenant.slug) as session:  # renaming an account is fine
        await session.execute(text("UPDATE ledger_accounts SET name = name || ' (renamed)' "
                                   "WHERE id = :a"), {"a": account})
        after = (await session.execute(text("SELECT count(*) FROM ledger_entries"))).scalar()
    assert after == before + 2
    await balances(client, tenant)


async def test_post_many_posts_each_key_once(client, make_tenant):
    tenant = await make_tenant()
    sale = [ledger.Line("customer_receivable", debit=300), ledger.Line("revenue", credit=300)]
    fee = [ledger.Line("provider_fees", debit=7, currency="EUR"),
           ledger.Line("provider_clearing:sandbox", credit=7, currency="EUR")]
    postings = [ledger.Posting("m1", "test", "USD", sale), ledger.Posting("m2", "test", "USD", fee),
                ledger.Posting("m0", "test", "USD", [ledger.Line("revenue", credit=0)]),
                ledger.Posting("m1", "test", "USD", sale)]
    async with tenant_db(tenant.slug) as session:
        first = await ledger.post_many(session, postings)
    assert first[0] is not None and first[1] is not None and first[0] != first[1]
    assert first[2:] == [None, None]
    with pytest.raises(ledger.UnbalancedPosting):  # nothing of the batch is posted
        async with tenant_db(tenant.slug) as session:
            await ledger.post_many(session, [ledger.Posting("m3", "test", "USD", sale),
                                             ledger.Posting("m4", "test", "USD", fee[:1])])
    async with tenant_db(tenant.slug) as session:
        again = await ledger.post_many(session, [*postings,
                                                 ledger.Posting("m3", "test", "USD", sale)])
    assert again[:4] == [None, None, None, None] and again[4] is not None
    rows = await balances(client, tenant)
    assert rows["revenue/USD"] == 600
    assert rows["provider_fees/EUR"] == 7
    journal = (await client.get("/v1/ledger/transactions?limit=100",
                                headers=tenant.headers)).json()["data"]
    assert sorted(len(t["entries"]) for t in journal) == [2, 2, 2]


async def test_posting_api_checks_and_is_idempotent(client, make_tenant):
    tenant = await make_tenant()
    lines = [ledger.Line("customer_receivable", debit=500), ledger.Line("revenue", credit=500)]
    async with tenant_db(tenant.slug) as session:
        with pytest.raises(ledger.UnbalancedPosting):
            await ledger.post(session, key="t1", kind="test", currency="USD",
                              lines=[ledger.Line("revenue", credit=1)])
        with pytest.raises(ledger.UnbalancedPosting):
            await ledger.post(session, key="t1", kind="test", currency="USD",
                              lines=[ledger.Line("revenue", debit=1, credit=1)])
        with pytest.raises(KeyError):
            await ledger.post(session, key="t1", kind="test", currency="USD",
                              lines=[ledger.Line("nowhere", debit=1),
                                     ledger.Line("revenue", credit=1)])
        assert await ledger.post(session, key="t0", kind="test", currency="USD",
                                 lines=[ledger.Line("revenue", credit=0)]) is None
        first = await ledger.post(session, key="t1", kind="test", currency="USD", lines=lines)
        assert first is not None
        assert await ledger.post(session, key="t1", kind="test", currency="USD",
                                 lines=lines) is None
    assert (await balances(client, tenant))["revenue/USD"] == 500


async def test_ledger_bad_input(client, make_tenant):
    tenant = await make_tenant()
    h = tenant.headers
    assert_error(await client.get("/v1/ledger/balances?currency=XYZ", headers=h), 400)
    assert_error(await client.get("/v1/ledger/transactions?order_id=nope", headers=h), 400)
    assert_error(await client.get("/v1/ledger/transactions?limit=500", headers=h), 400)
    empty = (await client.get("/v1/ledger/balances", headers=h)).json()
    assert empty == {"data": [], "trial_balance": []}

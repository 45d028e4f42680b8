"""Migration 0007 moves what payments' flags held about refunds and disputes into rows of
``refunds``/``disputes`` (and back on downgrade)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text

from core import migrate
from core.db import autocommit_connection, with_database
from tests.conftest import worker_tag

pytestmark = pytest.mark.asyncio

_ORDER = text("""
    INSERT INTO orders (id, number, pay_token, status, payment_status, fulfillment, currency,
                        customer_email, subtotal, discount, tax, total, original_amount,
                        tax_rate, metadata, flags)
    VALUES (:id, :number, :token, :status, :payment_status, 'direct', 'USD', 'a@example.com',
            1000, 0, 0, 1000, 1000, 0, '{}', '{}')""")
_PAYMENT = text("""
    INSERT INTO payments (id, order_id, attempt_number, provider, provider_payment_id,
                          idempotency_key, status, amount, currency, instructions, flags)
    VALUES (:id, :order_id, 1, 'sandbox', :pid, :key, 'succeeded', 1000, 'USD', '{}',
            CAST(:flags AS jsonb))""")


async def test_flags_become_refund_and_dispute_rows_and_come_back(pg_url):
    name = f"pmt_{worker_tag()}_flags_to_rows"
    async with autocommit_connection(pg_url) as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = with_database(pg_url, name)
    await migrate.upgrade(url, "tenant", "0006_invoice_counter")
    refunded, disputed = uuid.uuid4(), uuid.uuid4()
    flags = {
        refunded: {"refunded_amount": 300, "other": 1},
        disputed: {"disputes": {"dp_open": {"amount": 1000, "before": "paid"},
                                "dp_done": {"amount": 400, "before": "paid"}},
                   "closed_disputes": ["dp_done"]},
    }
    async with autocommit_connection(url) as conn:
        for n, (payment, status) in enumerate([(refunded, "partially_refunded"),
                                               (disputed, "disputed")]):
            order = uuid.uuid4()
            await conn.execute(_ORDER, {"id": order, "number": f"INV-{n + 1}",
                                        "token": f"t{n}", "status": status,
                                        "payment_status": status})
            await conn.execute(_PAYMENT, {"id": payment, "order_id": order, "pid": f"p{n}",
                                          "key": f"k{n}", "flags": json.dumps(flags[payment])})

    await migrate.upgrade(url, "tenant")
    async with autocommit_connection(url) as conn:
        refund, = (await conn.execute(text(
            "SELECT payment_id, amount, status, provider FROM refunds"))).all()
        assert tuple(refund) == (refunded, 300, "succeeded", "sandbox")
        assert (await conn.execute(text(
            "SELECT amount_refunded FROM orders o JOIN payments p ON p.order_id = o.id "
            "WHERE p.id = :id"), {"id": refunded})).scalar() == 300
        rows = (await conn.execute(text(
            "SELECT provider_dispute_id, amount, status, order_status_before, closed_at IS NULL "
            "FROM disputes WHERE payment_id = :id ORDER BY provider_dispute_id"),
            {"id": disputed})).all()
        assert [tuple(r) for r in rows] == [("dp_done", 400, "lost", "paid", False),
                                            ("dp_open", 1000, "open", "paid", True)]
        left = dict((await conn.execute(text("SELECT id, flags FROM payments"))).all())
        assert left == {refunded: {"other": 1}, disputed: {}}

    await migrate.downgrade(url, "tenant", "0006_invoice_counter")
    async with autocommit_connection(url) as conn:
        back = dict((await conn.execute(text("SELECT id, flags FROM payments"))).all())
    assert back == flags

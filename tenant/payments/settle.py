"""Recording captured money on locked orders and attempts (see :mod:`tenant.payments.events`).

Every webhook that settles a payment runs this, so it is a few fixed statements in plain
SQL (:mod:`core.sql`) instead of ORM units of work: the ledger postings, then the
attempts, their superseded siblings, the orders and the audit rows in one statement, then
the receipts in the outbox. Settling several captures at once (a worker's batch of payment
webhooks) runs those statements once for all of them, not once per capture. Objects of
the same rows that the caller's session holds are updated to match, so a caller that read
an order before settling sees the result; ORM changes still pending are the caller's to
flush first (:mod:`tenant.payments.events` does).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from core.audit import Actor, audit_row
from core.db import utcnow
from core.sql import Transaction, columns, json_param, sql
from tenant.ledger import service as ledger
from tenant.notifications import service as notifications
from tenant.orders import reservations
from tenant.orders.lifecycle import transition
from tenant.orders.models import Order
from tenant.orders.states import PAYABLE, Fulfillment, OrderStatus, PaymentStatus
from tenant.payments.models import LIVE_STATUSES, Payment, PaymentAttemptStatus

_LIVE = ", ".join(f"'{status.value}'" for status in LIVE_STATUSES)

#: Audit rows, written by the statement they belong to: in both statements below, $1–$10
#: are the audit rows' columns (as arrays).
_AUDIT_COLUMNS = ("id", "created_at", "actor_key_id", "actor_kind", "action", "entity_type",
                  "entity_id", "data", "ip", "user_agent")
_AUDIT = """
    audit AS (
        INSERT INTO audit_log (id, created_at, actor_key_id, actor_kind, action, entity_type,
                               entity_id, data, ip, user_agent)
        SELECT a.id, a.created_at, a.actor_key_id, a.actor_kind, a.action, a.entity_type,
               a.entity_id, CAST(a.data AS jsonb), a.ip, a.user_agent
        FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[],
                    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
             AS a(id, created_at, actor_key_id, actor_kind, action, entity_type, entity_id,
                  data, ip, user_agent)
    )"""
#: The attempts succeed, their orders' other live attempts can no longer be paid, the
#: orders are paid, with their audit rows: one statement for any number of orders ($11–$17:
#: one array element per order; $18: now). The one-success-per-order index refuses a second
#: success here.
_SUCCEED = f"""
    WITH {_AUDIT},
    paid AS (
        SELECT * FROM unnest($11::uuid[], $12::uuid[], $13::bigint[], $14::text[], $15::text[],
                             $16::timestamptz[], $17::text[])
            AS paid(attempt_id, order_id, fee_amount, status, status_reason, paid_at, flags)
    ),
    superseded AS (
        UPDATE payments p SET status = 'superseded', updated_at = $18
        FROM paid
        WHERE p.order_id = paid.order_id AND p.id <> paid.attempt_id AND p.status IN ({_LIVE})
    ),
    succeeded AS (
        UPDATE payments p SET status = 'succeeded', succeeded_at = $18,
                              fee_amount = paid.fee_amount, failure_code = NULL,
                              failure_message = NULL, updated_at = $18
        FROM paid
        WHERE p.id = paid.attempt_id
    )
    UPDATE orders o SET status = paid.status, status_reason = paid.status_reason,
                        paid_at = paid.paid_at, payment_status = 'paid',
                        flags = CAST(paid.flags AS jsonb), updated_at = $18
    FROM paid
    WHERE o.id = paid.order_id
"""
#: Money that cannot be applied: the attempt needs review, the order a look.
_REVIEW = f"""
    WITH {_AUDIT},
    review AS (
        UPDATE payments SET status = 'needs_review', flags = $14, updated_at = $13
        WHERE id = $11
    )
    UPDATE orders SET flags = $15, updated_at = $13 WHERE id = $12
"""


@dataclass(slots=True)
class Locked:
    """An order and one of its attempts, both row-locked by the caller, as read."""

    order_id: uuid.UUID
    number: str
    order_status: str
    status_reason: str | None
    fulfillment: str
    tax: int
    customer_email: str | None
    paid_at: datetime | None
    order_flags: dict[str, Any]
    attempt_id: uuid.UUID
    attempt_status: str
    amount: int
    currency: str
    provider: str
    fee_amount: int | None
    attempt_flags: dict[str, Any]
    #: Another attempt of the order that already succeeded (read under the order lock).
    other_succeeded: uuid.UUID | None
    #: Whether the order has stock to convert (unknown: True).
    stock: bool = True


@dataclass(slots=True)
class Capture:
    """What a provider reports captured for a locked attempt."""

    locked: Locked
    amount: int | None
    currency: str | None
    fee_amount: int | None


@dataclass(slots=True)
class _Paid:
    """A capture that pays its order: its ledger posting and the row values ``_SUCCEED``
    writes."""

    locked: Locked
    fee: int | None
    posting: ledger.Posting
    order: dict[str, Any]
    audits: list[dict[str, Any]]
    receipt: notifications.Notice


async def settle_success(db: AsyncSession | Transaction, locked: Locked, *,
                         amount: int | None, currency: str | None, fee_amount: int | None,
                         actor: Actor, cash: bool = False) -> bool:
    """Record captured money; True if anything changed (idempotent: a settled attempt
    changes nothing). An amount mismatch or a second success is kept for review."""
    changed = await settle_successes(db, [Capture(locked, amount, currency, fee_amount)],
                                     actor=actor, cash=cash)
    return changed[0]


async def settle_successes(db: AsyncSession | Transaction, captures: Sequence[Capture], *,
                           actor: Actor, cash: bool = False) -> list[bool]:
    """:func:`settle_success` for captures of different orders at once; whether each one
    changed anything. The captures that pay their order are written together."""
    now = utcnow()
    changed: list[bool] = []
    paid: list[_Paid] = []
    for capture in captures:
        outcome = await _settle(db, capture, now, actor=actor, cash=cash)
        if isinstance(outcome, _Paid):
            paid.append(outcome)
        changed.append(outcome is not False)
    if paid:
        await _write_paid(db, paid, now)
    return changed


async def _settle(db: AsyncSession | Transaction, capture: Capture, now: datetime, *,
                  actor: Actor, cash: bool) -> _Paid | bool:
    """One capture: unchanged (False), kept for review (True), or what paying it writes
    (its stock already written)."""
    locked = capture.locked
    if locked.attempt_status == PaymentAttemptStatus.SUCCEEDED:
        return False
    amount, currency = capture.amount, (capture.currency or "").upper()
    attempt_id, order_id = locked.attempt_id, locked.order_id
    if amount != locked.amount or currency != locked.currency:
        seen = {"amount": amount, "currency": currency,
                "expected_amount": locked.amount, "expected_currency": locked.currency}
        if locked.attempt_status == PaymentAttemptStatus.NEEDS_REVIEW and \
                locked.attempt_flags.get("amount_mismatch") == seen:
            return False
        await _review(db, locked, now, ("amount_mismatch", seen),
                      ("payment_amount_mismatch", str(attempt_id)), audit_row(
                          actor, "payment.amount_mismatch", "payment", attempt_id,
                          {"order_id": str(order_id), **seen}))
        return True
    if locked.other_succeeded is not None:
        if locked.attempt_status == PaymentAttemptStatus.NEEDS_REVIEW:
            return False
        other = str(locked.other_succeeded)
        await _review(db, locked, now, ("duplicate_of", other),
                      ("duplicate_payment", str(attempt_id)), audit_row(
                          actor, "payment.duplicate", "payment", attempt_id,
                          {"order_id": str(order_id), "succeeded_attempt": other,
                           "amount": amount}))
        return True

    fee = capture.fee_amount if capture.fee_amount is not None else locked.fee_amount
    order = {"status": locked.order_status, "status_reason": locked.status_reason,
             "paid_at": locked.paid_at, "payment_status": PaymentStatus.PAID.value,
             "flags": dict(locked.order_flags), "updated_at": now}
    audits: list[dict[str, Any]] = []
    if OrderStatus(locked.order_status) in PAYABLE:
        step = transition(order_id, OrderStatus(locked.order_status), OrderStatus.PAID,
                          Fulfillment(locked.fulfillment), paid_at=locked.paid_at,
                          actor=actor, manual=False, now=now,
                          reason=f"paid via {locked.provider}",
                          data={"payment_id": str(attempt_id)})
        order.update(step.values)
        audits.append(step.audit)
        oversold = await reservations.convert(db, order_id, now) if locked.stock else []
        if oversold:
            order["flags"]["oversold"] = oversold
            audits.append(audit_row(actor, "order.oversold", "order", order_id,
                                    {"products": oversold}))
    else:
        paid_while = {"status": locked.order_status, "payment_id": str(attempt_id)}
        order["flags"]["paid_while"] = paid_while
        audits.append(audit_row(actor, "payment.captured_on_closed_order", "order", order_id,
                                paid_while))
    posting = ledger.capture(payment_id=attempt_id, order_id=order_id,
                             provider=locked.provider, currency=locked.currency,
                             amount=locked.amount, tax=locked.tax, fee=fee, cash=cash)
    audits.append(audit_row(actor, "payment.succeeded", "payment", attempt_id,
                            {"order_id": str(order_id), "provider": locked.provider,
                             "amount": amount, "currency": currency, "fee": fee}))
    receipt = notifications.Notice(
        recipient=locked.customer_email, template="payment_receipt",
        subject=f"Receipt for {locked.number}",
        body=f"We received your payment for {locked.number}. Thank you.",
        dedupe_key=f"payment_receipt:{order_id}",
        data={"order_id": str(order_id), "amount": amount, "currency": currency})
    return _Paid(locked, fee, posting, order, audits, receipt)


async def _write_paid(db: AsyncSession | Transaction, paid: list[_Paid],
                      now: datetime) -> None:
    """The ledger postings, attempts, orders and audit rows of captures that pay, then
    their receipts."""
    await ledger.post_many(db, [p.posting for p in paid])
    await (await sql(db)).execute(
        _SUCCEED, *_audit_columns([a for p in paid for a in p.audits]),
        *columns((p.locked.attempt_id, p.locked.order_id, p.fee, p.order["status"],
                  p.order["status_reason"], p.order["paid_at"], json_param(p.order["flags"]))
                 for p in paid), now)
    for p in paid:
        _sync(db, Payment, p.locked.attempt_id, {
            "status": PaymentAttemptStatus.SUCCEEDED.value, "succeeded_at": now,
            "fee_amount": p.fee, "failure_code": None, "failure_message": None,
            "updated_at": now})
        _sync(db, Order, p.locked.order_id, p.order)
    await notifications.queue_many(db, [p.receipt for p in paid])


async def _review(db: AsyncSession | Transaction, locked: Locked, now: datetime,
                  attempt_flag: tuple[str, object], order_flag: tuple[str, object],
                  audit: dict[str, Any]) -> None:
    """Money moved that cannot be applied: the attempt needs review, the order a look."""
    attempt_flags = {**locked.attempt_flags, attempt_flag[0]: attempt_flag[1]}
    order_flags = {**locked.order_flags, order_flag[0]: order_flag[1]}
    await (await sql(db)).execute(
        _REVIEW, *_audit_columns([audit]), locked.attempt_id, locked.order_id, now,
        json_param(attempt_flags), json_param(order_flags))
    _sync(db, Payment, locked.attempt_id, {
        "status": PaymentAttemptStatus.NEEDS_REVIEW.value, "flags": attempt_flags,
        "updated_at": now})
    _sync(db, Order, locked.order_id, {"flags": order_flags, "updated_at": now})


def _audit_columns(audits: list[dict[str, Any]]) -> list[list[Any]]:
    """The audit rows as the column arrays of ``_AUDIT``."""
    return [[json_param(a[column]) if column == "data" else a[column] for a in audits]
            for column in _AUDIT_COLUMNS]


def _sync(db: AsyncSession | Transaction, model: type[Order | Payment], ident: uuid.UUID,
          values: dict[str, Any]) -> None:
    """An object of this row the caller's session holds shows ``values`` (written already).

    Only a session the caller passed can hold one: code on a :class:`Transaction` does
    not read back through its ORM session what it settled.
    """
    if not isinstance(db, AsyncSession) or not db.identity_map:
        return
    loaded = db.identity_map.get(db.identity_key(model, ident))
    if loaded is not None:
        for column, value in values.items():
            set_committed_value(loaded, column, value)

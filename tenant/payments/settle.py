"""Recording captured money on locked orders and attempts (see :mod:`tenant.payments.events`).

Every webhook that settles a payment runs this, so it is a few fixed statements in plain
SQL (:mod:`core.sql`) instead of ORM units of work: the attempts, their superseded
siblings, the orders and the audit rows in one statement; then the effects registered for
:attr:`Movement.CAPTURED <tenant.settlement.effects.Movement>` (ledger postings, stock,
the receipt …: :mod:`tenant.settlement.effects`), each one statement for the batch.
Settling several captures at once (a worker's batch of payment webhooks) runs those
statements once for all of them, not once per capture. Objects of
the same rows that the caller's session holds are updated to match, so a caller that read
an order before settling sees the result; ORM changes still pending are the caller's to
flush first (:mod:`tenant.payments.events` does).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor, audit_row
from core.db import utcnow
from core.sql import Transaction, columns, json_param, sql
from tenant.orders import sql as order_sql
from tenant.orders.lifecycle import transition
from tenant.orders.models import Order
from tenant.orders.states import (
    PAYABLE,
    PAYMENT_STATUS,
    Fulfillment,
    OrderStatus,
    PaymentStatus,
)
from tenant.payments.models import Payment, PaymentAttemptStatus
from tenant.payments.states import ATTEMPT_STATUS
from tenant.settlement.effects import Captured, Movement, run_effects, sync_loaded

log = logging.getLogger(__name__)

_A = PaymentAttemptStatus
#: Attempt guards from the table (:mod:`tenant.payments.states`).
_SUPERSEDED_FROM = ATTEMPT_STATUS.sources_sql(_A.SUPERSEDED)
_SUCCEEDED_FROM = ATTEMPT_STATUS.sources_sql(_A.SUCCEEDED)
_REVIEW_FROM = ATTEMPT_STATUS.sources_sql(_A.NEEDS_REVIEW)

#: The attempts succeed, their orders' other live attempts can no longer be paid, the
#: orders are paid, with their audit rows ($1–$10: :func:`core.audit.insert_sql`): one
#: statement for any number of orders ($11–$17: one array element per order; $18: now).
#: The one-success-per-order index refuses a second success here. Every status write is
#: guarded by its table; the ids written come back, so a move the table refused is seen.
_SUCCEED = f"""
    WITH {audit.insert_sql(1)},
    paid AS (
        SELECT * FROM unnest($11::uuid[], $12::uuid[], $13::bigint[], $14::text[], $15::text[],
                             $16::timestamptz[], $17::text[])
            AS paid(attempt_id, order_id, fee_amount, status, status_reason, paid_at, flags)
    ),
    superseded AS (
        UPDATE payments p SET status = 'superseded', updated_at = $18
        FROM paid
        WHERE p.order_id = paid.order_id AND p.id <> paid.attempt_id
          AND p.status = ANY({_SUPERSEDED_FROM})
    ),
    succeeded AS (
        UPDATE payments p SET status = 'succeeded', succeeded_at = $18,
                              fee_amount = paid.fee_amount, failure_code = NULL,
                              failure_message = NULL, updated_at = $18
        FROM paid
        WHERE p.id = paid.attempt_id AND p.status = ANY({_SUCCEEDED_FROM})
        RETURNING p.id
    ),
    orders_paid AS ({order_sql.pay("paid", "$18")})
    SELECT ARRAY(SELECT id FROM succeeded) AS attempts,
           ARRAY(SELECT id FROM orders_paid) AS orders
"""
#: Money that cannot be applied: the attempt needs review, the order a look.
_REVIEW = f"""
    WITH {audit.insert_sql(1)},
    review AS (
        UPDATE payments SET status = 'needs_review', flags = $14, updated_at = $13
        WHERE id = $11 AND status = ANY({_REVIEW_FROM})
        RETURNING id
    ),
    flagged AS ({order_sql.flag("$12", "$15", "$13")})
    SELECT count(*) FROM review
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
    #: Where the order's money is (``PaymentStatus``).
    payment_status: str
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
    """A capture that pays its order: the row values ``_SUCCEED`` writes, and the
    movement its effects get."""

    locked: Locked
    fee: int | None
    order: dict[str, Any]
    audits: list[dict[str, Any]]
    movement: Captured


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
    """One capture: unchanged (False), kept for review (True), or what paying it writes."""
    locked = capture.locked
    if not ATTEMPT_STATUS.can(locked.attempt_status, _A.SUCCEEDED):  # settled before
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
    if not PAYMENT_STATUS.can(locked.payment_status, PaymentStatus.PAID):
        # the order's money is refunded (or the like) without a succeeded attempt: a
        # capture must not un-refund it; the money is kept for review
        if locked.attempt_status == PaymentAttemptStatus.NEEDS_REVIEW:
            return False
        await _review(db, locked, now, ("order_payment_status", locked.payment_status),
                      ("payment_not_applied", str(attempt_id)), audit_row(
                          actor, "payment.not_applied", "payment", attempt_id,
                          {"order_id": str(order_id), "amount": amount,
                           "payment_status": locked.payment_status}))
        return True

    fee = capture.fee_amount if capture.fee_amount is not None else locked.fee_amount
    order = {"status": locked.order_status, "status_reason": locked.status_reason,
             "paid_at": locked.paid_at, "payment_status": PaymentStatus.PAID.value,
             "flags": dict(locked.order_flags), "updated_at": now}
    audits: list[dict[str, Any]] = []
    paid_order = OrderStatus(locked.order_status) in PAYABLE
    if paid_order:
        step = transition(order_id, OrderStatus(locked.order_status), OrderStatus.PAID,
                          Fulfillment(locked.fulfillment), paid_at=locked.paid_at,
                          actor=actor, manual=False, now=now,
                          reason=f"paid via {locked.provider}",
                          data={"payment_id": str(attempt_id)})
        order.update(step.values)
        audits.append(step.audit)
    else:
        paid_while = {"status": locked.order_status, "payment_id": str(attempt_id)}
        order["flags"]["paid_while"] = paid_while
        audits.append(audit_row(actor, "payment.captured_on_closed_order", "order", order_id,
                                paid_while))
    audits.append(audit_row(actor, "payment.succeeded", "payment", attempt_id,
                            {"order_id": str(order_id), "provider": locked.provider,
                             "amount": amount, "currency": currency, "fee": fee}))
    movement = Captured(
        order_id=order_id, payment_id=attempt_id, number=locked.number,
        provider=locked.provider, amount=locked.amount, currency=locked.currency,
        tax=locked.tax, fee=fee, customer_email=locked.customer_email,
        paid_order=paid_order, stock=locked.stock, cash=cash, actor=actor, now=now)
    return _Paid(locked, fee, order, audits, movement)


async def _write_paid(db: AsyncSession | Transaction, paid: list[_Paid],
                      now: datetime) -> None:
    """The attempts, orders and audit rows of captures that pay, then the effects of
    their capture (:data:`Movement.CAPTURED`), once for the batch."""
    written = await (await sql(db)).fetchrow(
        _SUCCEED, *audit.columns([a for p in paid for a in p.audits]),
        *columns((p.locked.attempt_id, p.locked.order_id, p.fee, p.order["status"],
                  p.order["status_reason"], p.order["paid_at"], json_param(p.order["flags"]))
                 for p in paid), now)
    assert written is not None
    refused = ({p.locked.attempt_id for p in paid} - set(written["attempts"])) | (
        {p.locked.order_id for p in paid} - set(written["orders"]))
    if refused:  # the rows are locked and were checked: only a write around the locks
        log.error("settling refused by the status tables (changed under the lock?): %s",
                  sorted(map(str, refused)))
    for p in paid:
        _sync(db, Payment, p.locked.attempt_id, {
            "status": PaymentAttemptStatus.SUCCEEDED.value, "succeeded_at": now,
            "fee_amount": p.fee, "failure_code": None, "failure_message": None,
            "updated_at": now})
        _sync(db, Order, p.locked.order_id, p.order)
    await run_effects(db, Movement.CAPTURED, [p.movement for p in paid])


async def _review(db: AsyncSession | Transaction, locked: Locked, now: datetime,
                  attempt_flag: tuple[str, object], order_flag: tuple[str, object],
                  audit_entry: dict[str, Any]) -> None:
    """Money moved that cannot be applied: the attempt needs review, the order a look."""
    attempt_flags = {**locked.attempt_flags, attempt_flag[0]: attempt_flag[1]}
    order_flags = {**locked.order_flags, order_flag[0]: order_flag[1]}
    reviewed = await (await sql(db)).fetchval(
        _REVIEW, *audit.columns([audit_entry]), locked.attempt_id, locked.order_id, now,
        json_param(attempt_flags), json_param(order_flags))
    if not reviewed:
        log.error("attempt %s could not be marked for review from %s", locked.attempt_id,
                  locked.attempt_status)
    _sync(db, Payment, locked.attempt_id, {
        "status": PaymentAttemptStatus.NEEDS_REVIEW.value, "flags": attempt_flags,
        "updated_at": now})
    _sync(db, Order, locked.order_id, {"flags": order_flags, "updated_at": now})


def _sync(db: AsyncSession | Transaction, model: type[Order | Payment], ident: uuid.UUID,
          values: dict[str, Any]) -> None:
    """An object of this row the caller's session holds shows ``values`` (written already).

    Only a session the caller passed can hold one: code on a :class:`Transaction` does
    not read back through its ORM session what it settled.
    """
    sync_loaded(db, model, ident, values)

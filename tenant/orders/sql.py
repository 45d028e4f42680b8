"""The set-based statements that write ``orders`` (pieces of other modules' statements).

Hot paths (a worker's batch of payment webhooks, a checkout) write the order row inside
one statement with the attempts and audit rows they change, so the ``UPDATE orders`` text
is built here, once at import, and the callers embed it. A ``payment_status`` write is
guarded by :data:`tenant.orders.states.PAYMENT_STATUS` (``payment_status = ANY(<the
sources of the target>)``): an illegal move matches no row instead of happening, and the
caller, which expected the row, sees it missing from ``RETURNING``.
"""

from __future__ import annotations

from tenant.orders.states import PAYMENT_STATUS, PaymentStatus

_PAYABLE_FROM = PAYMENT_STATUS.sources_sql(PaymentStatus.PAID)
_PENDING_FROM = PAYMENT_STATUS.sources_sql(PaymentStatus.PENDING)


def pay(rows: str, now: str) -> str:
    """Orders paid by a capture: ``rows`` (a CTE with ``order_id, status, status_reason,
    paid_at, flags, attempt_id, fee_amount``) gives each order its checked lifecycle values;
    ``payment_status`` becomes ``paid`` where the table allows. The order keeps the paying
    provider and its fee for the revenue report. Returns the ids of the orders written."""
    return f"""UPDATE orders o SET status = {rows}.status, status_reason = {rows}.status_reason,
                        paid_at = {rows}.paid_at, payment_status = 'paid',
                        paid_provider = (SELECT p.provider FROM payments p
                                         WHERE p.id = {rows}.attempt_id),
                        provider_fee = {rows}.fee_amount,
                        flags = CAST({rows}.flags AS jsonb), updated_at = {now}
    FROM {rows}
    WHERE o.id = {rows}.order_id AND o.payment_status = ANY({_PAYABLE_FROM})
    RETURNING o.id"""


def flag(order_id: str, flags: str, now: str) -> str:
    """An order's flags replaced (money that needs a look); its statuses untouched."""
    return f"UPDATE orders SET flags = {flags}, updated_at = {now} WHERE id = {order_id}"


def open_payment(order_id: str, now: str, when: str) -> str:
    """A checkout opened an attempt (``when`` is true): ``payment_status → pending``, from
    where the table allows it (``not_paid``; an order already ``pending`` stays)."""
    return (f"UPDATE orders SET payment_status = 'pending', updated_at = {now} "
            f"WHERE id = {order_id} AND {when} AND payment_status = ANY({_PENDING_FROM})")


def add_amounts(column: str) -> str:
    """Per-order amounts added to a running total on the order (``amount_refunded``,
    ``dispute_losses``): ``$1`` the order ids, ``$2`` the amounts, an order possibly more
    than once in a batch. Returns each order's id and new total."""
    return f"""
    UPDATE orders o SET {column} = o.{column} + a.amount
    FROM (SELECT order_id, SUM(amount) AS amount
          FROM unnest($1::uuid[], $2::bigint[]) AS a(order_id, amount) GROUP BY order_id) a
    WHERE o.id = a.order_id
    RETURNING o.id, o.{column}
"""

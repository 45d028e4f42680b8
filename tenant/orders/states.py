"""The order lifecycle: 14 states and the ONE transition table every change goes through.

Two fulfilment paths share the table. Physical goods ship (paid → processing →
ready_for_shipment → shipped → (in_transit) → delivered); services and digital goods are
done once paid (paid → completed). Each edge says which paths may take it and whether a
tenant admin may take it by hand (``POST /v1/orders/{id}/transition``) or only the system
may (payments, refunds, disputes, the scheduler): an admin must not be able to declare an
order ``paid`` or ``refunded`` without the money having moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.errors import Conflict
from core.transitions import Transitions


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAYMENT_FAILED = "payment_failed"
    PAID = "paid"
    PROCESSING = "processing"
    READY_FOR_SHIPMENT = "ready_for_shipment"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    ARCHIVED = "archived"


class PaymentStatus(StrEnum):
    """Where the money is, independent of fulfilment."""

    NOT_PAID = "not_paid"
    PENDING = "pending"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


class Fulfillment(StrEnum):
    """Which path an order follows after payment (decided by its items at creation)."""

    PHYSICAL = "physical"  # at least one physical product: it ships
    DIRECT = "direct"  # services, digital goods, free-text lines: done once paid


#: States an order can be paid from (checkout, webhooks, cash).
PAYABLE = frozenset({OrderStatus.PENDING_PAYMENT, OrderStatus.PAYMENT_FAILED})
#: States after which nothing but archiving happens.
FINAL = frozenset({OrderStatus.ARCHIVED})


@dataclass(frozen=True)
class Edge:
    source: OrderStatus
    target: OrderStatus
    paths: frozenset[Fulfillment]
    #: True: an admin may take it through the API; False: only the system.
    manual: bool


_BOTH = frozenset(Fulfillment)
_PHYSICAL = frozenset({Fulfillment.PHYSICAL})
_DIRECT = frozenset({Fulfillment.DIRECT})
S = OrderStatus

#: Paid states a refund or a dispute can start from.
_CAPTURED = (S.PAID, S.PROCESSING, S.READY_FOR_SHIPMENT, S.SHIPPED, S.IN_TRANSIT,
             S.DELIVERED, S.COMPLETED)

EDGES: tuple[Edge, ...] = (
    # payment
    Edge(S.PENDING_PAYMENT, S.PAID, _BOTH, manual=False),
    Edge(S.PENDING_PAYMENT, S.PAYMENT_FAILED, _BOTH, manual=False),
    Edge(S.PAYMENT_FAILED, S.PENDING_PAYMENT, _BOTH, manual=False),  # a new checkout
    Edge(S.PAYMENT_FAILED, S.PAID, _BOTH, manual=False),  # a retried payment succeeded
    # cancellation: manual or the unpaid auto-cancel
    Edge(S.PENDING_PAYMENT, S.CANCELLED, _BOTH, manual=True),
    Edge(S.PAYMENT_FAILED, S.CANCELLED, _BOTH, manual=True),
    # fulfilment of physical goods
    Edge(S.PAID, S.PROCESSING, _PHYSICAL, manual=True),
    Edge(S.PROCESSING, S.READY_FOR_SHIPMENT, _PHYSICAL, manual=True),
    Edge(S.READY_FOR_SHIPMENT, S.SHIPPED, _PHYSICAL, manual=True),
    Edge(S.SHIPPED, S.IN_TRANSIT, _PHYSICAL, manual=True),
    Edge(S.SHIPPED, S.DELIVERED, _PHYSICAL, manual=True),
    Edge(S.IN_TRANSIT, S.DELIVERED, _PHYSICAL, manual=True),
    # services and digital goods
    Edge(S.PAID, S.COMPLETED, _DIRECT, manual=True),
    # refunds and disputes (driven by the refund and dispute services)
    *(Edge(s, S.PARTIALLY_REFUNDED, _BOTH, manual=False) for s in _CAPTURED),
    *(Edge(s, S.REFUNDED, _BOTH, manual=False) for s in (*_CAPTURED, S.PARTIALLY_REFUNDED)),
    *(Edge(s, S.DISPUTED, _BOTH, manual=False) for s in (*_CAPTURED, S.PARTIALLY_REFUNDED)),
    # dispute outcomes: won → back on the path, lost → refunded (in part or whole)
    Edge(S.DISPUTED, S.PAID, _BOTH, manual=False),
    Edge(S.DISPUTED, S.DELIVERED, _PHYSICAL, manual=False),
    Edge(S.DISPUTED, S.COMPLETED, _DIRECT, manual=False),
    Edge(S.DISPUTED, S.PARTIALLY_REFUNDED, _BOTH, manual=False),
    Edge(S.DISPUTED, S.REFUNDED, _BOTH, manual=False),
    # archiving closes the books on finished orders
    *(Edge(s, S.ARCHIVED, _BOTH, manual=True)
      for s in (S.CANCELLED, S.REFUNDED, S.DELIVERED, S.COMPLETED)),
)

_TABLE: dict[tuple[OrderStatus, OrderStatus], Edge] = {(e.source, e.target): e for e in EDGES}
assert len(_TABLE) == len(EDGES), "duplicate edge in the transition table"


def edge(source: OrderStatus, target: OrderStatus, path: Fulfillment) -> Edge | None:
    found = _TABLE.get((source, target))
    return found if found is not None and path in found.paths else None


def allowed_targets(source: OrderStatus, path: Fulfillment, *, manual_only: bool) -> list[str]:
    """Targets reachable from ``source`` on ``path`` (by hand only, or by anyone)."""
    return [e.target.value for e in EDGES
            if e.source is source and path in e.paths and (e.manual or not manual_only)]


class InvalidTransition(Conflict):
    code = "invalid_transition"


def check(source: OrderStatus, target: OrderStatus, path: Fulfillment, *, manual: bool) -> Edge:
    """The edge ``source → target`` or a 409 that lists where the order may go instead."""
    found = edge(source, target, path)
    if found is not None and (found.manual or not manual):
        return found
    allowed = allowed_targets(source, path, manual_only=manual)
    hint = ""
    if found is not None:  # exists, but only the system takes it
        hint = f" ('{target}' is set by the payment, refund or dispute flow, not by hand)"
    listed = ", ".join(allowed) or "none"
    raise InvalidTransition(
        f"an order in '{source}' ({path} fulfilment) cannot move to '{target}'{hint}; "
        f"allowed: {listed}",
        param="to",
        extra={"allowed": allowed, "current": source.value},
    )


P = PaymentStatus

#: Where an order's money may go: the ONE table every ``payment_status`` write goes
#: through (:func:`tenant.orders.lifecycle.set_payment_status` in Python,
#: :mod:`tenant.orders.sql` in set-based SQL). ``not_paid`` is where an order starts.
#:
#: - a checkout opens an attempt: ``not_paid → pending``; the last open attempt gone (the
#:   order cancelled, the payment failed, the customer gave up): ``pending → not_paid``;
#: - money captured: ``not_paid | pending → paid`` (also on a closed order: the money is
#:   kept and flagged, see :mod:`tenant.payments.settle`);
#: - refunds: ``paid | partially_refunded | disputed → partially_refunded | refunded``
#:   (``partially_refunded → partially_refunded``: another partial refund);
#: - disputes: ``paid | partially_refunded → disputed`` (``disputed → disputed``: a second
#:   dispute on the same payment); won: back to ``paid`` or ``partially_refunded`` (what
#:   the refunds left), lost: ``refunded``.
#:
#: Decisions where the code before this table moved without asking:
#:
#: - ``refunded`` is final. A chargeback on a fully refunded payment is recorded (ledger,
#:   audit) but the status stays ``refunded``: the customer already has all the money back,
#:   and a ``disputed`` that no close could ever leave (the order itself cannot become
#:   ``disputed`` from ``refunded``) would be a lie. Before, the status became ``disputed``.
#: - a capture never moves a refunded order back to ``paid``: a success arriving for an
#:   order whose status the table does not let become ``paid`` is kept for review (the
#:   attempt ``needs_review``, the order flagged), like a second success; a failure after
#:   a success changes nothing (``succeeded`` is final in the attempt table).
#: - a dispute won on a partially refunded payment returns to ``partially_refunded``
#:   (before: ``paid``, which hid the refund).
PAYMENT_STATUS: Transitions[PaymentStatus] = Transitions("payment status", PaymentStatus, {
    P.NOT_PAID: (P.PENDING, P.PAID),
    P.PENDING: (P.NOT_PAID, P.PAID),
    P.PAID: (P.PARTIALLY_REFUNDED, P.REFUNDED, P.DISPUTED),
    P.PARTIALLY_REFUNDED: (P.PARTIALLY_REFUNDED, P.REFUNDED, P.DISPUTED),
    P.DISPUTED: (P.DISPUTED, P.PAID, P.PARTIALLY_REFUNDED, P.REFUNDED),
    P.REFUNDED: (),
})

"""The settlement-effects seam: what else happens when money moves, registered by code.

Settling code (:mod:`tenant.payments.settle` for captures, :mod:`tenant.refunds.service`
and :mod:`tenant.disputes.service` for provider refunds and disputes) records the
movement itself — statuses, the order — and then calls :func:`run_effects` once per batch
of movements of one kind, in the same transaction. Everything else a movement causes is
an *effect* registered for it in its own package:

    @effect(Movement.CAPTURED, order=10)
    async def post_captures(db, batch: Sequence[Captured]) -> None: ...

so a new capability (entitlements, coupon redemptions, commissions, outgoing events)
adds an effect and a line in :data:`EFFECT_MODULES`, not a change to settling code.

An effect:

- gets the transaction (plain SQL with :func:`core.sql.sql`; ORM objects the caller
  holds are flushed before it runs) and the whole batch, and writes it set-based: one
  statement per effect per batch, not one per movement (a worker settles hundreds of
  webhooks per batch);
- never commits; if it raises, the movement and every other effect roll back with it;
- is idempotent by its own keys (a ledger posting key, a notice's dedupe key): a movement
  is recorded once, but a replay must not double anything.

Effects run in ``order`` (lowest first; ties by registration).
"""

from __future__ import annotations

import enum
import importlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from core.audit import Actor
from core.sql import Transaction

Db = AsyncSession | Transaction


class Movement(enum.StrEnum):
    """What happened to money, as settling code reports it to the effects."""

    CAPTURED = "captured"  # a payment captured that pays its order (batch of Captured)
    REFUNDED = "refunded"  # a refund succeeded (batch of Refunded)
    DISPUTE_OPENED = "dispute_opened"  # batch of Disputed
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"


@dataclass(frozen=True, slots=True)
class Captured:
    """A capture that paid its order (written already: attempt succeeded, order paid)."""

    order_id: uuid.UUID
    payment_id: uuid.UUID
    number: str
    provider: str
    amount: int
    currency: str
    tax: int
    fee: int | None
    customer_email: str | None
    #: The capture moved the order to ``paid`` (not a capture on a closed order).
    paid_order: bool
    #: The order has stock-tracked items or holds to convert.
    stock: bool
    cash: bool
    actor: Actor
    now: datetime


@dataclass(frozen=True, slots=True)
class Refunded:
    """A refund that succeeded (its row is ``succeeded`` already)."""

    refund_id: uuid.UUID
    order_id: uuid.UUID
    payment_id: uuid.UUID
    provider: str
    provider_refund_id: str | None
    amount: int
    currency: str
    #: Nothing is left to refund on the payment after this one.
    full: bool
    keep_access: bool
    restock: bool
    actor: Actor
    now: datetime
    #: The items returned, ``(order_item_id, quantity)`` (restocked when ``restock``).
    items: tuple[tuple[uuid.UUID, int], ...] = ()
    #: The customer to send the refund receipt to (none: no receipt).
    customer_email: str | None = None


@dataclass(frozen=True, slots=True)
class Disputed:
    """A dispute opened, won or lost (its row shows the new status already)."""

    dispute_id: uuid.UUID
    order_id: uuid.UUID
    payment_id: uuid.UUID
    provider: str
    provider_dispute_id: str
    amount: int
    currency: str
    actor: Actor
    now: datetime
    #: The provider's dispute fee, where it reports one (a lost dispute posts it).
    fee: int | None = None


Effect = Callable[[Db, Sequence[Any]], Awaitable[None]]

#: Modules whose import registers the effects (loaded once, before the first run).
EFFECT_MODULES: tuple[str, ...] = (
    "tenant.ledger.effects",
    "tenant.orders.effects",
    "tenant.notifications.effects",
    "tenant.entitlements.effects",
    "tenant.referrals.effects",
    "tenant.coupons.effects",
    "tenant.outgoing.effects",
    "tenant.reports.effects",
)

_EFFECTS: dict[Movement, list[tuple[int, int, Effect]]] = {m: [] for m in Movement}
_seq = 0
_loaded = False


def effect(movement: Movement, *, order: int = 50) -> Callable[[Effect], Effect]:
    """Register the decorated coroutine as an effect of ``movement`` (once)."""

    def register(fn: Effect) -> Effect:
        global _seq
        if any(held is fn for _, _, held in _EFFECTS[movement]):
            raise ValueError(f"{fn.__qualname__} is an effect of {movement.value} already")
        _seq += 1
        _EFFECTS[movement].append((order, _seq, fn))
        _EFFECTS[movement].sort(key=lambda entry: entry[:2])
        return fn

    return register


def unregister(movement: Movement, fn: Effect) -> None:
    """Remove a registered effect (a test's own)."""
    _EFFECTS[movement][:] = [e for e in _EFFECTS[movement] if e[2] is not fn]


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in EFFECT_MODULES:
            importlib.import_module(module)
        _loaded = True


def effects_of(movement: Movement) -> list[Effect]:
    """The effects of ``movement`` in the order they run (for docs and tests)."""
    _load()
    return [fn for _, _, fn in _EFFECTS[movement]]


async def run_effects(db: Db, movement: Movement, batch: Sequence[Any]) -> None:
    """Run every effect of ``movement`` on ``batch`` (nothing for an empty batch)."""
    if not batch:
        return
    _load()
    for _, _, fn in list(_EFFECTS[movement]):
        await fn(db, batch)


def sync_loaded(db: Db, model: type[Any], ident: uuid.UUID, values: dict[str, Any]) -> None:
    """An object of this row the caller's session holds shows ``values`` (written already
    in plain SQL). Only a session the caller passed can hold one."""
    if not isinstance(db, AsyncSession) or not db.identity_map:
        return
    loaded = db.identity_map.get(db.identity_key(model, ident))
    if loaded is not None:
        for column, value in values.items():
            set_committed_value(loaded, column, value)

"""What each normalized event does: one registered handler per :class:`EventType`.

:func:`tenant.webhooks.processing.apply` looks the event's type up here and calls its
handler inside the event's transaction; it knows no event type itself. A capability that
reacts to provider events (refunds, disputes, entitlements …) registers its handler with
``@handles(EventType.…)`` in a module of its own and lists that module in
:data:`HANDLER_MODULES`; nothing in the processing loop changes.

A handler:

- is given the event and its transaction (:class:`Inbound`) and answers what it did
  (:class:`Applied`); it never commits, the processing loop does;
- raises :class:`NotReady` before writing anything when what the event depends on is not
  stored yet (a refund before its payment): the attempt is counted and retried later;
- is idempotent (a redelivery or a replay finds its effect there and changes nothing).

A type with no handler (``ignored``) is stored for the record and marked processed.
"""

from __future__ import annotations

import enum
import importlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.errors import ValidationError
from core.money import parse_major
from core.runtime import Runtime
from core.sql import Transaction, orm
from core.tenancy import TenantContext
from providers.base import EventType
from providers.redaction import redact
from tenant.payments import events as payments

log = logging.getLogger(__name__)
WORKER = Actor.system("worker")
#: Modules whose import registers more handlers (loaded once, before the first dispatch).
HANDLER_MODULES: tuple[str, ...] = ()


class NotReady(Exception):
    """What the event depends on is not there yet (e.g. a refund before its payment).

    Raised before anything is written for the event.
    """


class Applied(enum.StrEnum):
    """What a handler did with its event."""

    CHANGED = "changed"  # its effects were written
    NOTED = "noted"  # nothing to change (known, or nothing modelled for it yet)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One normalized event (see :class:`providers.base.NormalizedEvent`) being applied in
    the transaction ``db``: plain SQL on it, or the ORM session ``orm(db)`` makes for it."""

    runtime: Runtime
    db: AsyncSession | Transaction
    tenant: TenantContext
    provider: str
    event: dict[str, Any]

    @property
    def payment_id(self) -> str | None:
        """The provider's payment id (a bank feed only knows the reference)."""
        return self.event.get("provider_payment_id") or self.event.get("reference")


Handler = Callable[[Inbound], Awaitable[Applied]]
_HANDLERS: dict[EventType, Handler] = {}
_loaded = False


def handles(*kinds: EventType) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the handler of these event types (one each)."""

    def register(handler: Handler) -> Handler:
        for kind in kinds:
            held = _HANDLERS.setdefault(kind, handler)
            if held is not handler:
                raise ValueError(f"{kind.value} is handled by {held.__qualname__} already")
        return handler

    return register


def handler_for(kind: EventType) -> Handler | None:
    """The handler registered for ``kind``; None: nothing to apply."""
    global _loaded
    if not _loaded:
        for module in HANDLER_MODULES:
            importlib.import_module(module)
        _loaded = True
    return _HANDLERS.get(kind)


def registered() -> dict[EventType, Handler]:
    """Every registered handler by event type (for docs and tests)."""
    handler_for(EventType.IGNORED)
    return dict(_HANDLERS)


# ------------------------------------------------------------------------ the payment events


@handles(EventType.PAYMENT_SUCCEEDED)
async def payment_succeeded(inbound: Inbound) -> Applied:
    """The attempt succeeded: the order is paid and the capture posted (plain SQL)."""
    captured = captured_of(inbound.provider, inbound.event)
    # a bank feed may not know the currency: read in the attempt's
    if captured.amount is None and captured.currency is None:
        attempt = await payments.find_attempt(await orm(inbound.db), inbound.provider,
                                              inbound.payment_id)
        if attempt is None:
            raise NotReady(f"no payment attempt {inbound.provider}:{inbound.payment_id} yet")
        amount, currency = _received(inbound.event, attempt.currency)
        captured = replace(captured, amount=amount, currency=currency)
    changed, = await payments.mark_payments_succeeded(inbound.db, [captured], actor=WORKER)
    if changed is None:
        raise NotReady(f"no payment attempt {inbound.provider}:{inbound.payment_id} yet")
    return Applied.CHANGED if changed else Applied.NOTED


@handles(EventType.PAYMENT_FAILED)
async def payment_failed(inbound: Inbound) -> Applied:
    session = await orm(inbound.db)
    if await payments.find_attempt(session, inbound.provider, inbound.payment_id) is None:
        raise NotReady(f"no payment attempt {inbound.provider}:{inbound.payment_id} yet")
    data = inbound.event.get("data") or {}
    await payments.mark_payment_failed(
        session, provider=inbound.provider, provider_payment_id=inbound.payment_id,
        failure_code=data.get("failure_code"),
        failure_message=redact(data.get("failure_message")) or None,  # provider text
        actor=WORKER)
    return Applied.CHANGED


@handles(EventType.REFUND_SUCCEEDED, EventType.REFUND_FAILED, EventType.DISPUTE_OPENED,
         EventType.DISPUTE_CLOSED)
async def money_event(inbound: Inbound) -> Applied:
    """A refund or dispute reported by the provider, on its succeeded payment."""
    from tenant.webhooks.money_events import apply_money_event

    session = await orm(inbound.db)
    attempt = await payments.find_attempt(session, inbound.provider, inbound.payment_id) \
        if inbound.payment_id else None
    refund_id = inbound.event.get("provider_refund_id")
    if attempt is None and not inbound.payment_id and refund_id:
        # a refund webhook naming only the refund (Flutterwave's): the payment of the
        # refund Paymesh sent under that provider id
        # (read without a lock: money_events locks the order first, then the rows)
        from sqlalchemy import select

        from tenant.payments.models import Payment
        from tenant.refunds.models import Refund

        payment_id = (await session.scalars(select(Refund.payment_id).where(
            Refund.provider == inbound.provider,
            Refund.provider_refund_id == str(refund_id)))).first()
        attempt = await session.get(Payment, payment_id) if payment_id is not None else None
    if attempt is None or attempt.status != "succeeded":
        raise NotReady(f"{inbound.event['type']} for {inbound.provider}:{inbound.payment_id}"
                       " before its payment")
    changed = await apply_money_event(session, attempt_id=attempt.id, event=inbound.event,
                                      actor=WORKER)
    return Applied.CHANGED if changed else Applied.NOTED


@handles(EventType.ACCOUNT_UPDATED)
async def account_updated(inbound: Inbound) -> Applied:
    log.info("account.updated for %s noted (Connect accounts are not modelled yet)",
             inbound.event.get("provider_account_id"))
    return Applied.NOTED


def captured_of(provider: str, event: dict[str, Any]) -> payments.Captured:
    """What a normalized ``payment.succeeded`` event says was captured."""
    payment_id = event.get("provider_payment_id") or event.get("reference")
    return payments.Captured(provider, payment_id, event.get("amount"), event.get("currency"),
                             event.get("fee_amount"))


def _received(event: dict[str, Any], attempt_currency: str) -> tuple[int | None, str | None]:
    """What arrived, in minor units. A provider that cannot know the currency (a bank feed
    for an account without one configured) sends ``data.amount_major``: it is read in the
    attempt's currency; one that does not fit it stays unknown, so the attempt is flagged."""
    amount, currency = event.get("amount"), event.get("currency")
    major = (event.get("data") or {}).get("amount_major")
    if amount is None and currency is None and major is not None:
        try:
            return parse_major(str(major), attempt_currency), attempt_currency
        except (ValidationError, ArithmeticError, ValueError):
            return None, None
    return amount, currency

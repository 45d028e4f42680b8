"""The ledger's settlement effects: every movement of money is posted (one statement per
batch, :func:`tenant.ledger.service.post_many`; each posting idempotent by its key)."""

from __future__ import annotations

from collections.abc import Sequence

from tenant.ledger import accounts
from tenant.ledger.service import Line, Posting, capture, post_many
from tenant.settlement.effects import Captured, Db, Disputed, Movement, Refunded, effect


@effect(Movement.CAPTURED, order=10)
async def post_captures(db: Db, batch: Sequence[Captured]) -> None:
    await post_many(db, [capture(payment_id=c.payment_id, order_id=c.order_id,
                                 provider=c.provider, currency=c.currency, amount=c.amount,
                                 tax=c.tax, fee=c.fee, cash=c.cash) for c in batch])


def refund_key(provider: str, reference: str) -> str:
    """A refund's posting key (``reference``: the provider's refund id, else ours)."""
    return f"refund:{provider}:{reference}"


@effect(Movement.REFUNDED, order=10)
async def post_refunds(db: Db, batch: Sequence[Refunded]) -> None:
    await post_many(db, [Posting(
        key=refund_key(r.provider, r.provider_refund_id or str(r.refund_id)),
        kind="refund.succeeded", currency=r.currency, order_id=r.order_id,
        payment_id=r.payment_id, description=f"{r.provider} refund",
        data={"refund_id": str(r.refund_id)},
        lines=[Line(accounts.REFUNDS, debit=r.amount),
               Line(accounts.clearing(r.provider), credit=r.amount)]) for r in batch])


def _dispute_posting(d: Disputed, stage: str, lines: list[Line],
                     **data: object) -> Posting:
    """A dispute's posting at ``stage`` (opened, won, lost), keyed once per dispute and
    stage so a repeated event posts nothing."""
    return Posting(
        key=f"dispute:{d.provider}:{d.provider_dispute_id}:{stage}", kind=f"dispute.{stage}",
        currency=d.currency, order_id=d.order_id, payment_id=d.payment_id,
        description=f"{d.provider} dispute {stage}",
        data={"dispute_id": str(d.dispute_id), **data}, lines=lines)


@effect(Movement.DISPUTE_OPENED, order=10)
async def hold_disputes(db: Db, batch: Sequence[Disputed]) -> None:
    """The disputed amount leaves the provider's clearing for the disputes account."""
    await post_many(db, [_dispute_posting(d, "opened", [
        Line(accounts.DISPUTES, debit=d.amount),
        Line(accounts.clearing(d.provider), credit=d.amount)]) for d in batch])


@effect(Movement.DISPUTE_WON, order=10)
async def release_disputes(db: Db, batch: Sequence[Disputed]) -> None:
    """Won: the provider gives the money back (a lost dispute's money left at opening)."""
    await post_many(db, [_dispute_posting(d, "won", [
        Line(accounts.clearing(d.provider), debit=d.amount),
        Line(accounts.DISPUTES, credit=d.amount)]) for d in batch])


@effect(Movement.DISPUTE_LOST, order=10)
async def post_dispute_losses(db: Db, batch: Sequence[Disputed]) -> None:
    """Lost: the amount held since opening is a loss, and so is the provider's dispute
    fee where it reports one (the provider keeps it out of clearing)."""
    await post_many(db, [_dispute_posting(d, "lost", [
        Line(accounts.DISPUTE_LOSSES, debit=d.amount + (d.fee or 0)),
        Line(accounts.DISPUTES, credit=d.amount),
        *([Line(accounts.clearing(d.provider), credit=d.fee)] if d.fee else [])],
        fee=d.fee or 0) for d in batch])

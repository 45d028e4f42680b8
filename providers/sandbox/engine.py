"""The sandbox gateway's rules: accounts, payments, test cards, refunds, disputes.

The gateway behaves like an external gateway: it authenticates by secret key, dedupes
creates and refunds by ``Idempotency-Key`` for 24 h (a reused key with a different body
is refused), never refunds more than is left, refuses refunds during an open dispute, and
owes a webhook for every money-moving change (queued with it, see :mod:`.store`).
"""

from __future__ import annotations

import hashlib
import re

import msgspec
from redis.asyncio.client import Pipeline

from core.errors import ValidationError
from core.money import normalize_currency
from core.settings import get_settings
from providers.sandbox import store
from providers.sandbox.fees import fee_for
from providers.sandbox.models import (
    Dispute,
    DisputeBody,
    DisputeStatus,
    EventKind,
    GatewayError,
    Payment,
    PaymentBody,
    PaymentStatus,
    Refund,
    RefundBody,
    dispute_view,
    new_id,
    payment_view,
    refund_view,
)
from providers.sandbox.signing import webhook_secret_for
from providers.sandbox.store import IDEMPOTENCY_TTL, key, read, transact, write

#: Seconds a merchant has to answer a dispute (Stripe-like: about a week).
EVIDENCE_WINDOW = 7 * 24 * 3600

MAX_AMOUNT = 10**12
KEY_FORMAT = re.compile(r"^sk_sandbox_[A-Za-z0-9_]{8,120}$")

#: Test cards: number → (status, failure code, failure message).
TEST_CARDS: dict[str, tuple[PaymentStatus, str | None, str | None]] = {
    "4242424242424242": (PaymentStatus.SUCCEEDED, None, None),
    "4000000000000002": (PaymentStatus.FAILED, "card_declined", "Your card was declined."),
    "4000000000009995": (
        PaymentStatus.FAILED,
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
}


def _fingerprint(body: msgspec.Struct) -> str:
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()


def account_for(secret_key: str | None) -> str:
    """The account a secret key belongs to (accounts exist as soon as a key is used)."""
    if not secret_key or not KEY_FORMAT.match(secret_key):
        raise GatewayError(401, "invalid_api_key", "Invalid API key provided.")
    return "acct_" + hashlib.sha256(secret_key.encode()).hexdigest()[:16]


async def _account_secret(pipe: Pipeline, account: str) -> str | None:
    """The signing secret recorded for ``account`` when it last created a payment."""
    raw = await pipe.get(key("account", account))
    return raw.decode() if raw is not None else None


def public_url() -> str:
    return get_settings().public_url


# ------------------------------------------------------------------ payments


async def create_payment(
    secret_key: str | None, body: PaymentBody, idempotency_key: str | None
) -> Payment:
    """Create a payment; the same key with the same body returns the same payment."""
    account = account_for(secret_key)
    if not 0 < body.amount < MAX_AMOUNT:
        raise GatewayError(
            400, "invalid_amount", "amount must be a positive integer", param="amount"
        )
    try:
        currency = normalize_currency(body.currency)
    except ValidationError as exc:
        raise GatewayError(400, "invalid_currency", exc.message, param="currency") from exc
    # the endpoint's signing secret is not part of what the idempotency key compares
    fingerprint = _fingerprint(msgspec.structs.replace(body, webhook_secret=None))
    idem = key("idem", f"{account}:payment:{idempotency_key}") if idempotency_key else None
    account_key = key("account", account)
    payment = Payment(
        id=new_id("pay"),
        account=account,
        amount=body.amount,
        currency=currency,
        status=PaymentStatus.REQUIRES_PAYMENT,
        created=store.now(),
        request_hash=fingerprint,
        reference=body.reference,
        order_number=body.order_number,
        description=body.description,
        customer_email=body.customer_email,
        return_url=body.return_url,
        cancel_url=body.cancel_url,
        notify_url=body.notify_url,
        metadata=body.metadata,
    )

    stored = await store.create_once(
        "payment", payment, payment.id, Payment, idem,
        also=(account_key, body.webhook_secret or webhook_secret_for(secret_key or "")))
    if stored.id != payment.id and stored.request_hash != fingerprint:
        raise GatewayError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used with different parameters.",
        )
    return stored


async def get_payment(payment_id: str, *, account: str | None = None) -> Payment:
    """A payment by id; with ``account``, another account's payment is "not found"."""
    payment = await store.fetch(key("payment", payment_id), Payment)
    if payment is None or (account is not None and payment.account != account):
        raise GatewayError(404, "resource_missing", f"No such payment: '{payment_id}'")
    return payment


async def pay(payment_id: str, card_number: str) -> tuple[Payment, str | None]:
    """Charge a test card. Only a payment still awaiting payment changes; others replay."""
    outcome = TEST_CARDS.get(card_number)
    if outcome is None:
        raise GatewayError(400, "unknown_test_card", "That is not one of the sandbox test cards.")
    status, failure_code, failure_message = outcome
    payment_key = key("payment", payment_id)

    async def run(pipe: Pipeline) -> tuple[Payment, str | None]:
        payment = await read(pipe, payment_key, Payment)
        if payment is None:
            raise GatewayError(404, "resource_missing", f"No such payment: '{payment_id}'")
        if payment.status is not PaymentStatus.REQUIRES_PAYMENT:
            pipe.multi()
            return payment, None
        secret = await _account_secret(pipe, payment.account)
        payment.status = status
        payment.card_last4 = card_number[-4:]
        payment.failure_code, payment.failure_message = failure_code, failure_message
        if status is PaymentStatus.SUCCEEDED:
            payment.paid_at = store.now()
            payment.fee = fee_for(payment.amount, payment.currency)
        kind = (
            EventKind.PAYMENT_SUCCEEDED
            if status is PaymentStatus.SUCCEEDED
            else EventKind.PAYMENT_FAILED
        )
        pipe.multi()
        write(pipe, payment_key, payment)
        view = payment_view(payment, public_url())
        return payment, store.queue_event(pipe, payment, kind, view, secret)

    return await transact([payment_key], run)


async def cancel(payment_id: str) -> Payment:
    """The customer gave up on the hosted page. No webhook: nothing moved."""
    payment_key = key("payment", payment_id)

    async def run(pipe: Pipeline) -> Payment:
        payment = await read(pipe, payment_key, Payment)
        if payment is None:
            raise GatewayError(404, "resource_missing", f"No such payment: '{payment_id}'")
        pipe.multi()
        if payment.status is PaymentStatus.REQUIRES_PAYMENT:
            payment.status = PaymentStatus.CANCELLED
            write(pipe, payment_key, payment)
        return payment

    return await transact([payment_key], run)


# ------------------------------------------------------------------ refunds and disputes


async def refund(
    secret_key: str | None, body: RefundBody, idempotency_key: str | None
) -> tuple[Refund, Payment, str | None]:
    """Refund part or all of what is left; never more. Same key → the same refund."""
    account = account_for(secret_key)
    if body.amount is not None and body.amount <= 0:
        raise GatewayError(400, "invalid_amount", "amount must be positive", param="amount")
    fingerprint = _fingerprint(body)
    pay_key = key("payment", body.payment_id)
    idem = key("idem", f"{account}:refund:{idempotency_key}") if idempotency_key else None

    async def run(pipe: Pipeline) -> tuple[Refund, Payment, str | None]:
        payment = await read(pipe, pay_key, Payment)
        if payment is None or payment.account != account:
            raise GatewayError(404, "resource_missing", f"No such payment: '{body.payment_id}'")
        if idem and (existing_id := await pipe.get(idem)) is not None:
            existing = await read(pipe, key("refund", existing_id.decode()), Refund)
            if existing is not None:
                if existing.request_hash != fingerprint:
                    raise GatewayError(
                        422,
                        "idempotency_key_reused",
                        "This Idempotency-Key was used with different parameters.",
                    )
                pipe.multi()
                return existing, payment, None
        if payment.status is not PaymentStatus.SUCCEEDED:
            raise GatewayError(
                400, "payment_not_captured", "Only a succeeded payment can be refunded."
            )
        if body.currency and body.currency.upper() != payment.currency:
            raise GatewayError(
                400, "currency_mismatch", f"The payment is in {payment.currency}.", param="currency"
            )
        if payment.open_dispute is not None:
            raise GatewayError(409, "charge_disputed", "The payment has an open dispute.")
        amount = payment.refundable if body.amount is None else body.amount
        if amount <= 0 or amount > payment.refundable:
            raise GatewayError(
                400,
                "amount_too_large",
                f"Refund of {amount} exceeds the {payment.refundable} left to refund.",
                param="amount",
            )
        record = Refund(
            id=new_id("re"),
            account=account,
            payment_id=payment.id,
            amount=amount,
            currency=payment.currency,
            created=store.now(),
            request_hash=fingerprint,
            reason=body.reason,
        )
        payment.amount_refunded += amount
        payment.refund_ids.append(record.id)
        secret = await _account_secret(pipe, account)
        pipe.multi()
        write(pipe, key("refund", record.id), record)
        write(pipe, pay_key, payment)
        if idem:
            pipe.set(idem, record.id, ex=IDEMPOTENCY_TTL)
        # Answered ``pending``, like a card network: the money is on its way back once the
        # signed ``refund.succeeded`` webhook says so, never by the API call's answer.
        obj = refund_view(msgspec.structs.replace(record, status="succeeded"), payment)
        delivery = store.queue_event(pipe, payment, EventKind.REFUND_SUCCEEDED, obj, secret)
        return record, payment, delivery

    keys = [pay_key, idem] if idem else [pay_key]
    return await transact(keys, run)


async def dispute(
    secret_key: str | None, payment_id: str, body: DisputeBody
) -> tuple[Payment, str | None]:
    """Open a dispute (no outcome) or close the open one as ``won``/``lost``."""
    account = account_for(secret_key)
    payment_key = key("payment", payment_id)

    async def run(pipe: Pipeline) -> tuple[Payment, str | None]:
        payment = await read(pipe, payment_key, Payment)
        if payment is None or payment.account != account:
            raise GatewayError(404, "resource_missing", f"No such payment: '{payment_id}'")
        open_dispute = payment.open_dispute
        if body.outcome is None:
            if open_dispute is not None:
                raise GatewayError(409, "dispute_open", "The payment already has an open dispute.")
            if payment.refundable <= 0:
                raise GatewayError(
                    400, "not_disputable", "Nothing left on this payment to dispute."
                )
            record = Dispute(
                id=new_id("dp"),
                amount=payment.refundable,
                currency=payment.currency,
                reason=body.reason,
                status=DisputeStatus.NEEDS_RESPONSE,
                created=store.now(),
                evidence_due_by=store.now() + EVIDENCE_WINDOW,
            )
            payment.disputes.append(record)
            kind = EventKind.DISPUTE_CREATED
        else:
            if open_dispute is None:
                raise GatewayError(409, "no_open_dispute", "The payment has no open dispute.")
            if body.outcome is DisputeStatus.NEEDS_RESPONSE:
                raise GatewayError(400, "invalid_outcome", "outcome must be won or lost")
            open_dispute.status = body.outcome
            open_dispute.closed_at = store.now()
            record, kind = open_dispute, EventKind.DISPUTE_CLOSED
        secret = await _account_secret(pipe, account)
        pipe.multi()
        write(pipe, payment_key, payment)
        obj = dispute_view(record, payment)
        return payment, store.queue_event(pipe, payment, kind, obj, secret)

    return await transact([payment_key], run)

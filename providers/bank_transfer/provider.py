"""``BankTransferProvider``: bank details + a transfer reference, confirmed by a bank feed.

There is no payment API: the customer wires money quoting a short reference, and a bank
feed (SePay style) posts each incoming transfer. The reference is derived from the order
id alone, so it is stable across retries and can be recomputed; it is short and uses the
base32 alphabet (no 0/O, 1/I confusion) because people type it into banking apps, which
often upper-case it, drop separators or wrap it in other text. Whether the amount is
short or over is the tenant's decision: the event carries what arrived, exactly.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core import jsonbody
from core.errors import ValidationError
from core.money import parse_major
from providers.base import (
    CreatePayment,
    CredentialCheck,
    EventType,
    InvalidProviderRequest,
    MalformedWebhook,
    NormalizedEvent,
    PaymentResult,
    PaymentState,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.offline import OfflineProvider
from providers.transport import constant_time_equal

REFERENCE_PREFIX = "PM"
_REFERENCE_STRICT = re.compile(r"(?<![A-Z0-9])PM[A-Z2-7]{10}(?![A-Z0-9])")
_REFERENCE_LOOSE = re.compile(r"PM[A-Z2-7]{10}")
#: ISO-4217 "no currency": what a provider without an API reports for an unknown amount.


def transfer_reference(order_id: str) -> str:
    """``PM`` + 10 base32 characters, deterministic per order id (50 bits of hash)."""
    digest = hashlib.sha256(f"paymesh-transfer:{order_id}".encode()).digest()
    return REFERENCE_PREFIX + base64.b32encode(digest).decode()[:10]


def find_reference(*texts: str | None) -> str | None:
    """The first transfer reference in the texts: a standalone token first, then anywhere
    (banks often glue the transfer text together)."""
    cleaned = [(t or "").upper() for t in texts]
    for pattern in (_REFERENCE_STRICT, _REFERENCE_LOOSE):
        for text in cleaned:
            if match := pattern.search(text):
                return match.group(0)
    return None


class BankTransferProvider(OfflineProvider):
    code = "bank_transfer"
    #: The feed's API key (``webhook_secret``) is needed only to accept bank-feed webhooks.
    required_keys = ()
    #: Extra settings (the catalog's ``config_schema``).
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["account_name", "account_number", "bank_name"],
        "properties": {
            "account_name": {"type": "string", "minLength": 1},
            "account_number": {"type": "string", "minLength": 1},
            "bank_name": {"type": "string", "minLength": 1},
            "iban": {"type": "string"},
            "swift": {"type": "string"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "timezone": {"type": "string"},
        },
    }

    def _bank_details(self) -> dict[str, str]:
        cfg = self.config.config
        missing = [k for k in ("account_name", "account_number", "bank_name") if not cfg.get(k)]
        if missing:
            raise InvalidProviderRequest(f"bank_transfer is missing {', '.join(missing)}")
        details = {k: str(cfg[k]) for k in ("account_name", "account_number", "bank_name")}
        details.update({k: str(cfg[k]) for k in ("iban", "swift") if cfg.get(k)})
        return details

    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        details = self._bank_details()
        account_currency = self.config.config.get("currency")
        if account_currency and account_currency.upper() != request.currency.upper():
            raise InvalidProviderRequest(
                f"the bank account receives {account_currency.upper()}, not {request.currency}"
            )
        reference = transfer_reference(request.order_id)
        return PaymentResult(
            provider_payment_id=reference,
            state=PaymentState.PENDING,
            amount=request.amount,
            currency=request.currency,
            instructions={
                "method": "bank_transfer",
                **details,
                "reference": reference,
                "amount": request.amount,
                "currency": request.currency,
                "message": f"Transfer the amount quoting {reference} in the transfer description.",
            },
        )

    # ------------------------------------------------------------ bank feed

    def verify_webhook(self, request: WebhookRequest, *, now: datetime | None = None) -> None:
        """``Authorization: Apikey <webhook_secret>``, compared in constant time."""
        if not self.config.webhook_secret:
            raise WebhookVerificationError("bank feed API key (webhook_secret) is not configured")
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "apikey" or not token:
            raise WebhookVerificationError("missing 'Authorization: Apikey …' header")
        if not constant_time_equal(token.strip(), self.config.webhook_secret):
            raise WebhookVerificationError("bank feed API key does not match")
        self._decode(request.body)

    @staticmethod
    def _decode(body: bytes) -> dict[str, Any]:
        try:
            payload = jsonbody.loads(body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedWebhook("bank feed body is not JSON") from exc
        if not isinstance(payload, dict) or payload.get("id") is None:
            raise MalformedWebhook("bank feed transaction has no id")
        if payload.get("transferType") not in ("in", "out"):
            raise MalformedWebhook("bank feed transferType must be 'in' or 'out'")
        amount = payload.get("transferAmount")
        if isinstance(amount, bool) or not isinstance(amount, int | Decimal | str):
            raise MalformedWebhook("bank feed transferAmount is missing")
        return payload

    def _occurred_at(self, value: Any) -> datetime | None:
        """The feed's local ``YYYY-MM-DD HH:MM:SS`` in the configured time zone (UTC default)."""
        if not isinstance(value, str):
            return None
        try:
            zone = ZoneInfo(self.config.config.get("timezone") or "UTC")
            return datetime.fromisoformat(value).replace(tzinfo=zone)
        except (ValueError, ZoneInfoNotFoundError):
            return None

    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        payload = self._decode(request.body)
        event_id = str(payload["id"])
        raw = {
            "feed_id": payload["id"],
            "gateway": payload.get("gateway"),
            "account_number": payload.get("accountNumber"),
            "content": payload.get("content"),
            "code": payload.get("code"),
            "transfer_type": payload["transferType"],
            "transfer_amount": str(payload["transferAmount"]),
            "reference_code": payload.get("referenceCode"),
            "transaction_date": payload.get("transactionDate"),
        }
        if payload["transferType"] != "in":
            return NormalizedEvent(provider_event_id=event_id, type=EventType.IGNORED, data=raw)
        reference = find_reference(payload.get("code"), payload.get("content"))
        if reference is None:
            return NormalizedEvent(
                provider_event_id=event_id,
                type=EventType.IGNORED,
                data={**raw, "unmatched": True},
            )
        currency = self.config.config.get("currency") or payload.get("currency")
        amount = None
        if currency:
            currency = str(currency).upper()
            try:
                amount = parse_major(str(payload["transferAmount"]), currency)
            except (ValidationError, ArithmeticError, ValueError) as exc:
                raise MalformedWebhook(f"bank feed amount is not a {currency} amount") from exc
        account = self.config.config.get("account_number")
        if amount is None:
            # No currency for this account: keep the exact figure; the attempt's currency
            # gives it meaning when the event is applied (tenant.webhooks.processing).
            raw["amount_major"] = raw["transfer_amount"]
        return NormalizedEvent(
            provider_event_id=event_id,
            type=EventType.PAYMENT_SUCCEEDED,
            provider_payment_id=reference,
            amount=amount,
            currency=currency,
            reference=reference,
            occurred_at=self._occurred_at(payload.get("transactionDate")),
            data={
                **raw,
                "account_matches": account is None or str(account) == str(raw["account_number"]),
            },
        )

    async def test_credentials(self) -> CredentialCheck:
        try:
            self._bank_details()
        except InvalidProviderRequest as exc:
            return CredentialCheck(ok=False, message=exc.message)
        return CredentialCheck(ok=True, message="bank details are complete (no API to call)")

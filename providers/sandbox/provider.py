"""``SandboxProvider``: talks to the sandbox gateway over HTTP, like to any real gateway.

Going through HTTP (not calling the engine directly) keeps the sandbox honest: the demo and
end-to-end tests exercise the same paths — timeouts, error mapping, idempotency keys,
signed webhooks — a real provider would. One shortcut: in a process that serves the
gateway itself (the API), creating and reading a payment call the gateway's API
operations in-process instead of looping back over HTTP to the same process; the request
body, the gateway's validation, idempotency and JSON view, and the mapping of its
refusals onto the provider error tree are the same as over HTTP.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, NoReturn

import msgspec

from providers.base import (
    BadCredentials,
    CreatePayment,
    CredentialCheck,
    EventType,
    InvalidProviderRequest,
    MalformedWebhook,
    NormalizedEvent,
    PaymentProvider,
    PaymentResult,
    PaymentState,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    RefundState,
    WebhookRequest,
    WebhookVerificationError,
)
from providers.sandbox import gateway
from providers.sandbox.engine import KEY_FORMAT
from providers.sandbox.models import GatewayError
from providers.sandbox.signing import verify_signature, webhook_secret_for
from providers.transport import credential_check, decode_json, send

log = logging.getLogger(__name__)

_STATES = {
    "requires_payment": PaymentState.PENDING,
    "succeeded": PaymentState.SUCCEEDED,
    "failed": PaymentState.FAILED,
    "cancelled": PaymentState.CANCELLED,
}

_EVENTS = {
    "payment.succeeded": EventType.PAYMENT_SUCCEEDED,
    "payment.failed": EventType.PAYMENT_FAILED,
    "refund.succeeded": EventType.REFUND_SUCCEEDED,
    "dispute.created": EventType.DISPUTE_OPENED,
    "dispute.closed": EventType.DISPUTE_CLOSED,
}


#: Gateway error codes callers may branch on (others keep the class's default code).
_ERROR_CODES = {
    "idempotency_key_reused": "idempotency_key_reused",
    "amount_too_large": "amount_too_large",
    "charge_disputed": "charge_disputed",
}


def _refused(status: int, code: str | None, message: str | None) -> NoReturn:
    """Raise what a gateway answer with this error status means (as :func:`send` and the
    HTTP path map it)."""
    if status >= 500 or status == 429:
        raise ProviderUnavailable(f"sandbox answered HTTP {status}")
    if status in (401, 403):
        raise BadCredentials(f"sandbox rejected the credentials (HTTP {status})")
    mapped = _ERROR_CODES.get(code or "") or ("payment_not_found" if status == 404 else None)
    raise InvalidProviderRequest(f"sandbox refused the request: {message or status}", code=mapped)


class _EventData(msgspec.Struct):
    object: dict[str, Any]


class _Event(msgspec.Struct):
    """The envelope every sandbox webhook has; anything else is malformed."""

    id: str
    type: str
    created: int
    data: _EventData


class SandboxProvider(PaymentProvider):
    code = "sandbox"
    required_keys = ("secret_key",)

    @property
    def base_url(self) -> str:
        base = self.config.api_base_url or f"{self.config.public_base_url}/sandbox/api/v1"
        return base.rstrip("/")

    @property
    def notify_url(self) -> str:
        """Paymesh's webhook endpoint for this tenant and provider."""
        return f"{self.config.public_base_url}/webhooks/{self.config.tenant}/{self.code}"

    async def _call(
        self, method: str, path: str, *, body: Any = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.config.secret_key or ''}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = await send(
            self.http, method, self.base_url + path, provider="sandbox", headers=headers, json=body
        )
        data = decode_json(response, provider="sandbox")
        if response.status_code >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            _refused(response.status_code, error.get("code"), error.get("message"))
        return data

    async def _payment_call(
        self, payment_id: str | None, body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Create (``payment_id`` None) or read a payment: in-process when this process
        serves the gateway at :attr:`base_url`, else over HTTP."""
        if not gateway.serves(self.base_url):
            if payment_id is None:
                return await self._call(
                    "POST", "/payments", body=body, idempotency_key=idempotency_key
                )
            return await self._call("GET", f"/payments/{payment_id}")
        key = self.config.secret_key
        try:
            if payment_id is None:
                return await gateway.api_create_payment(key, body, idempotency_key)
            return await gateway.api_read_payment(key, payment_id)
        except GatewayError as exc:
            _refused(exc.status, exc.code, exc.message)
        except Exception as exc:  # what the HTTP endpoint would have answered with a 500
            log.exception("sandbox gateway failed in-process")
            raise ProviderUnavailable("sandbox answered HTTP 500") from exc

    @staticmethod
    def _result(view: dict[str, Any]) -> PaymentResult:
        state = _STATES.get(view["status"], PaymentState.PROCESSING)
        return PaymentResult(
            provider_payment_id=view["id"],
            state=state,
            amount=view["amount"],
            currency=view["currency"],
            redirect_url=view["checkout_url"] if state is PaymentState.PENDING else None,
            fee_amount=view.get("fee") if state is PaymentState.SUCCEEDED else None,
            failure_code=view.get("failure_code"),
            failure_message=view.get("failure_message"),
        )

    async def create_payment(self, request: CreatePayment) -> PaymentResult:
        body = {
            "amount": request.amount,
            "currency": request.currency,
            "reference": request.order_id,
            "order_number": request.order_number,
            "description": request.description,
            "customer_email": request.customer_email,
            "return_url": request.return_url,
            "cancel_url": request.cancel_url,
            "notify_url": self.notify_url,
            "metadata": {"tenant": self.config.tenant, **request.metadata},
        }
        if self.config.webhook_secret:  # the endpoint's secret, as a dashboard would hold it
            body["webhook_secret"] = self.config.webhook_secret
        view = await self._payment_call(None, body, request.idempotency_key)
        return self._result(view)

    async def fetch_payment(self, provider_payment_id: str) -> PaymentResult:
        return self._result(await self._payment_call(provider_payment_id))

    async def refund(self, request: RefundRequest) -> RefundResult:
        body = {
            "payment_id": request.provider_payment_id,
            "amount": request.amount,
            "currency": request.currency,
            "reason": request.reason,
        }
        view = await self._call(
            "POST", "/refunds", body=body, idempotency_key=request.idempotency_key
        )
        state = RefundState.SUCCEEDED if view["status"] == "succeeded" else RefundState.PENDING
        return RefundResult(
            provider_refund_id=view["id"],
            state=state,
            amount=view["amount"],
            currency=view["currency"],
        )

    @classmethod
    def check_key(cls, name: str, value: str) -> str | None:
        if name == "secret_key" and not KEY_FORMAT.match(value):
            return ("secret_key must be a sandbox key: sk_sandbox_ followed by 8 to 120 "
                    "letters, digits or underscores")
        return None

    def _signing_secret(self) -> str:
        if self.config.webhook_secret:
            return self.config.webhook_secret
        if self.config.secret_key:
            return webhook_secret_for(self.config.secret_key)
        raise WebhookVerificationError("sandbox has no webhook secret or secret key configured")

    def verify_webhook(self, request: WebhookRequest, *, now: datetime | None = None) -> None:
        header = request.headers.get("sandbox-signature")
        verify_signature(header, request.body, self._signing_secret(), now=now)
        self._decode(request.body)

    @staticmethod
    def _decode(body: bytes) -> _Event:
        try:
            return msgspec.json.decode(body, type=_Event)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedWebhook(f"not a sandbox event: {exc}") from exc
        except RecursionError:
            raise MalformedWebhook("not a sandbox event: nested too deeply") from None

    def parse_webhook(self, request: WebhookRequest) -> NormalizedEvent:
        event = self._decode(request.body)
        obj = event.data.object
        kind = _EVENTS.get(event.type, EventType.IGNORED)
        common: dict[str, Any] = {
            "provider_event_id": event.id,
            "type": kind,
            "occurred_at": datetime.fromtimestamp(event.created, UTC),
            "amount": obj.get("amount"),
            "currency": obj.get("currency"),
            "reference": obj.get("reference"),
        }
        if kind in (EventType.PAYMENT_SUCCEEDED, EventType.PAYMENT_FAILED):
            data = {k: obj[k] for k in ("failure_code", "failure_message") if obj.get(k)}
            fee = obj.get("fee") if kind is EventType.PAYMENT_SUCCEEDED else None
            return NormalizedEvent(
                **common, provider_payment_id=obj.get("id"), fee_amount=fee, data=data
            )
        if kind is EventType.REFUND_SUCCEEDED:
            return NormalizedEvent(
                **common,
                provider_payment_id=obj.get("payment_id"),
                provider_refund_id=obj.get("id"),
                data={"reason": obj.get("reason")},
            )
        if kind in (EventType.DISPUTE_OPENED, EventType.DISPUTE_CLOSED):
            data = {"status": obj.get("status"), "reason": obj.get("reason"),
                    "evidence_due_by": obj.get("evidence_due_by")}
            if kind is EventType.DISPUTE_CLOSED:
                data["outcome"] = obj.get("status")
            fee = obj.get("fee") if kind is EventType.DISPUTE_CLOSED else None
            return NormalizedEvent(
                **common,
                provider_payment_id=obj.get("payment_id"),
                provider_dispute_id=obj.get("id"),
                fee_amount=fee if isinstance(fee, int) and not isinstance(fee, bool) else None,
                data=data,
            )
        return NormalizedEvent(
            provider_event_id=event.id, type=EventType.IGNORED, data={"type": event.type}
        )

    def public_config(self) -> dict[str, Any]:
        return {"publishable_key": self.config.public_key} if self.config.public_key else {}

    async def test_credentials(self) -> CredentialCheck:
        return await credential_check(
            self._call("GET", "/account"), ok_message="sandbox accepted the secret key"
        )

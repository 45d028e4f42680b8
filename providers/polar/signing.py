"""Standard Webhooks verification of Polar's deliveries (the scheme itself:
:mod:`core.standard_webhooks`).

Two keys are accepted, as ``polar.webhooks.validate_event`` accepts them: the UTF-8 bytes of
the whole secret (Polar's original derivation) and the base64-decoded part after
``whsec_`` (the Standard Webhooks one). The SDK's verifier reads the wall clock; this one
takes ``now``, so the 5-minute window is one rule here, tested against the SDK's own.
"""

from __future__ import annotations

from datetime import datetime

from core import standard_webhooks as sw
from providers.base import MalformedWebhook, StaleWebhook, WebhookVerificationError

TOLERANCE_SECONDS = sw.TOLERANCE_SECONDS
ID_HEADER = sw.ID_HEADER
TIMESTAMP_HEADER = sw.TIMESTAMP_HEADER
SIGNATURE_HEADER = sw.SIGNATURE_HEADER


def signing_keys(secret: str) -> tuple[bytes, ...]:
    """The HMAC keys ``secret`` stands for: its raw bytes, and its ``whsec_`` payload
    base64-decoded when it decodes (as the SDK derives them)."""
    raw = secret.encode()
    decoded = sw.secret_key(secret)
    return (raw, decoded) if decoded and decoded != raw else (raw,)


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` for one delivery under the Standard Webhooks key of
    ``secret`` (what Polar sends today); used by the docs' examples and the tests."""
    return sw.sign(signing_keys(secret)[-1], webhook_id, timestamp, body)


def verify(headers: dict[str, str], body: bytes, secret: str | None, *,
           now: datetime | None = None) -> str:
    """The delivery's ``webhook-id`` when one signature matches a key of ``secret`` and its
    timestamp is within the window; :class:`WebhookVerificationError` otherwise."""
    if not secret:
        raise WebhookVerificationError("polar webhook secret is not configured")
    try:
        return sw.verify(headers, body, signing_keys(secret), now=now)
    except sw.StaleSignature as exc:
        raise StaleWebhook(f"polar {exc}") from None
    except sw.MalformedHeaders as exc:
        if "missing" in str(exc):
            raise WebhookVerificationError(str(exc)) from None
        raise MalformedWebhook(str(exc)) from None
    except sw.SignatureError as exc:
        raise WebhookVerificationError(f"polar {exc}") from None

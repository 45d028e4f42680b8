"""The sandbox gateway's webhook signature scheme, shared by the gateway and the provider.

It mirrors Stripe's: ``Sandbox-Signature: t=<unix ts>,v1=<hex HMAC-SHA256(secret,
"{t}.{body}")>``. The signing secret is derived from the account's secret key, so a tenant
who pastes only the secret key still gets verifiable webhooks (like a real gateway handing
out a ``whsec_`` per endpoint, without a dashboard to copy it from). A tenant who set
their own ``webhook_secret`` gets it used instead: the provider hands it to the gateway
with each payment (``PaymentBody.webhook_secret``) and verifies with it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from datetime import UTC, datetime

from providers.base import MalformedWebhook, StaleWebhook, WebhookVerificationError

SIGNATURE_HEADER = "Sandbox-Signature"
#: Signatures older (or newer) than this are refused, as Stripe does by default.
TOLERANCE_SECONDS = 300


@functools.lru_cache(maxsize=1024)
def webhook_secret_for(secret_key: str) -> str:
    """The signing secret of the account that owns ``secret_key`` (a pure function,
    memoized: every incoming webhook needs it)."""
    digest = hmac.new(secret_key.encode(), b"paymesh-sandbox-webhook", hashlib.sha256)
    return "whsec_" + digest.hexdigest()[:40]


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={compute_signature(secret, timestamp, body)}"


def verify_signature(
    header: str | None, body: bytes, secret: str, *, now: datetime | None = None
) -> None:
    """Raise unless ``header`` signs ``body`` with ``secret`` within the tolerance window.

    Missing or wrong signature → :class:`WebhookVerificationError`; unparseable header →
    :class:`MalformedWebhook`; right signature but too old/new → :class:`StaleWebhook`.
    The signature is checked before the timestamp, so a forged stale request is "forged".
    """
    if not header:
        raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise MalformedWebhook(f"bad timestamp in {SIGNATURE_HEADER}") from None
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise MalformedWebhook(f"{SIGNATURE_HEADER} needs t= and v1=")
    expected = compute_signature(secret, timestamp, body)
    # Compare against every candidate (no early exit) so timing says nothing.
    matches = [hmac.compare_digest(expected.encode(), c.encode()) for c in candidates]
    if not any(matches):
        raise WebhookVerificationError("signature does not match")
    current = (now or datetime.now(UTC)).timestamp()
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        raise StaleWebhook("signature timestamp is outside the tolerance window")

"""Standard Webhooks verification of Polar's deliveries.

Polar signs ``"{webhook-id}.{webhook-timestamp}.{body}"`` with HMAC-SHA256 and sends
``webhook-signature: v1,<base64>`` (several space-separated while a secret rotates). Two
keys are accepted, as ``polar.webhooks.validate_event`` accepts them: the UTF-8 bytes of
the whole secret (Polar's original derivation) and the base64-decoded part after
``whsec_`` (the Standard Webhooks one). The SDK's verifier reads the wall clock; this one
takes ``now``, so the 5-minute window is one rule here, tested against the SDK's own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime

from providers.base import MalformedWebhook, StaleWebhook, WebhookVerificationError

TOLERANCE_SECONDS = 5 * 60
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def signing_keys(secret: str) -> tuple[bytes, ...]:
    """The HMAC keys ``secret`` stands for: its raw bytes, and its ``whsec_`` payload
    base64-decoded when it decodes (as the SDK derives them)."""
    keys = [secret.encode()]
    remainder = secret.removeprefix("whsec_")
    try:
        decoded = base64.b64decode(remainder + "=" * (-len(remainder) % 4), validate=True)
    except (binascii.Error, ValueError):
        return tuple(keys)
    if decoded and decoded != keys[0]:
        keys.append(decoded)
    return tuple(keys)


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature`` for one delivery under the Standard Webhooks key of
    ``secret`` (what Polar sends today); used by the docs' examples and the tests."""
    key = signing_keys(secret)[-1]
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(headers: dict[str, str], body: bytes, secret: str | None, *,
           now: datetime | None = None) -> str:
    """The delivery's ``webhook-id`` when one signature matches a key of ``secret`` and its
    timestamp is within the window; :class:`WebhookVerificationError` otherwise."""
    if not secret:
        raise WebhookVerificationError("polar webhook secret is not configured")
    webhook_id = headers.get(ID_HEADER, "").strip()
    stamp = headers.get(TIMESTAMP_HEADER, "").strip()
    signatures = headers.get(SIGNATURE_HEADER, "")
    if not webhook_id or not stamp or not signatures.strip():
        raise WebhookVerificationError(
            f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise MalformedWebhook(f"{TIMESTAMP_HEADER} is not a Unix time in seconds")
    signed = f"{webhook_id}.{stamp}.".encode() + body
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in signing_keys(secret)]
    matched = False
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        for mac in expected:  # every key is compared: no early exit to time
            matched |= hmac.compare_digest(mac, given)
    if not matched:
        raise WebhookVerificationError("polar signature does not match")
    current = (now or datetime.now(UTC)).timestamp()
    if abs(current - int(stamp)) > TOLERANCE_SECONDS:
        raise StaleWebhook("polar signature timestamp is outside the 5-minute window")
    return webhook_id

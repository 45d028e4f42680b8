"""The Standard Webhooks signature scheme (https://www.standardwebhooks.com), once: what
Paymesh verifies (Polar's deliveries, ``providers/polar/signing.py``) and what it signs
(its own outgoing webhooks, ``tenant/outgoing/``).

A delivery carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, several
space-separated while a secret rotates. A secret is ``whsec_`` + base64 of random bytes;
its HMAC key is the base64-decoded part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

PREFIX = "whsec_"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
#: How far a delivery's timestamp may be from now, either way.
TOLERANCE_SECONDS = 5 * 60


class SignatureError(ValueError):
    """No signature matches (forged, tampered, or signed with another secret)."""


class MalformedHeaders(SignatureError):
    """The headers are missing or not what the scheme says."""


class StaleSignature(SignatureError):
    """The timestamp is outside the tolerance window (a replay, or a wrong clock)."""


def new_secret(random_bytes: int = 32) -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(random_bytes)).decode()


def secret_key(secret: str) -> bytes | None:
    """The HMAC key of a ``whsec_`` secret (its base64 part decoded), or None when that part
    is not base64."""
    payload = secret.removeprefix(PREFIX)
    try:
        decoded = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded or None


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of a delivery under ``key``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(headers: dict[str, str], body: bytes, keys: Sequence[bytes], *,
           now: datetime | None = None, tolerance: int = TOLERANCE_SECONDS) -> str:
    """The delivery's ``webhook-id`` when one of its signatures matches one of ``keys`` and
    its timestamp is within ``tolerance``; else :class:`SignatureError` (or a subclass).
    ``headers`` are lower-cased."""
    msg_id = headers.get(ID_HEADER, "").strip()
    stamp = headers.get(TIMESTAMP_HEADER, "").strip()
    signatures = headers.get(SIGNATURE_HEADER, "")
    if not msg_id or not stamp or not signatures.strip():
        raise MalformedHeaders(
            f"missing {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise MalformedHeaders(f"{TIMESTAMP_HEADER} is not a Unix time in seconds")
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in keys]
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
        raise SignatureError("signature does not match")
    current = (now or datetime.now(UTC)).timestamp()
    if abs(current - int(stamp)) > tolerance:
        raise StaleSignature("signature timestamp is outside the 5-minute window")
    return msg_id

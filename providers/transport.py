"""HTTP plumbing shared by the httpx-based providers (sandbox, Paystack, Flutterwave).

One place decides how transport failures map onto the provider error tree, so every
gateway behaves the same for callers that fail over or retry: network errors, timeouts,
429 and 5xx are :class:`ProviderUnavailable` (retryable), 401/403 are
:class:`BadCredentials`; other 4xx answers go back to the provider, which reads its own
error body and raises :class:`InvalidProviderRequest`. Response bodies are parsed with
``Decimal`` for non-integers, so no float ever carries an amount.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Awaitable
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from core import jsonbody
from providers.base import (
    BadCredentials,
    CredentialCheck,
    MalformedWebhook,
    ProviderError,
    ProviderUnavailable,
)

#: Every provider call carries this timeout, whatever the shared client's default is.
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

_UNSAFE_REFERENCE_CHARS = re.compile(r"[^A-Za-z0-9.=-]")


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; raise for transport failures, 5xx, 429, 401 and 403.

    Other 4xx responses are returned so each provider can read its own error body.
    """
    try:
        response = await http.request(method, url, timeout=timeout, **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderUnavailable(f"{provider} timed out") from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{provider} is unreachable ({type(exc).__name__})") from exc
    status = response.status_code
    if status >= 500 or status == 429:
        raise ProviderUnavailable(f"{provider} answered HTTP {status}")
    if status in (401, 403):
        raise BadCredentials(f"{provider} rejected the credentials (HTTP {status})")
    return response


def decode_json(response: httpx.Response, *, provider: str) -> Any:
    """The JSON body with non-integers as ``Decimal``; a non-JSON body is an outage."""
    try:
        return json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProviderUnavailable(
            f"{provider} sent a non-JSON answer (HTTP {response.status_code})"
        ) from exc


def webhook_object(body: bytes, *, provider: str, **loads: Any) -> dict[str, Any]:
    """A webhook body that must be a JSON object; :class:`MalformedWebhook` otherwise."""
    try:
        event = jsonbody.loads(body, **loads)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWebhook(f"{provider} webhook body is not JSON") from exc
    if not isinstance(event, dict):
        raise MalformedWebhook(f"{provider} webhook body is not an object")
    return event


def iso_datetime(value: Any) -> datetime | None:
    """A payload's ISO 8601 time, or None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def integer(value: Any, *, digit_strings: bool = False) -> int | None:
    """A payload's integer (never a bool); ``digit_strings``: also ``"1500"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if digit_strings and isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def safe_reference(key: str, *, max_length: int = 64) -> str:
    """A provider transaction reference derived deterministically from an idempotency key.

    Paystack allows only ``-``, ``.``, ``=`` and alphanumerics. A key that already fits is
    used verbatim (readable in the provider's dashboard); anything else keeps a readable
    sanitized prefix plus a hash of the whole key, so two keys never share a reference.
    """
    cleaned = _UNSAFE_REFERENCE_CHARS.sub("-", key)
    if cleaned == key and 0 < len(key) <= max_length:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    prefix = cleaned[: max_length - len(digest) - 1].strip("-")
    return f"{prefix}-{digest}" if prefix else digest


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets without leaking where they differ."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


async def credential_check(call: Awaitable[Any], *, ok_message: str) -> CredentialCheck:
    """Run a cheap authenticated call and turn its outcome into a :class:`CredentialCheck`.

    The credential test is a report for an admin, so failures are results, not errors.
    """
    try:
        await call
    except ProviderError as exc:
        return CredentialCheck(ok=False, message=f"{exc.code}: {exc.message}")
    return CredentialCheck(ok=True, message=ok_message)

"""Decoding of Flutterwave v3 webhook bodies (``{"event": ..., "data": {...}}``).

Flutterwave sends no event id and may resend an event, and a transaction can report
``pending`` and later ``successful``: the provider event id is therefore the event name,
the transaction id and its status, so each distinct fact is stored exactly once.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from providers.base import MalformedWebhook
from providers.transport import webhook_object


def decode_event(body: bytes) -> tuple[str, dict[str, Any], str]:
    """``(event name, data, provider event id)``; raise :class:`MalformedWebhook` otherwise."""
    event = webhook_object(body, provider="flutterwave", parse_float=Decimal)
    name = event.get("event") or event.get("event.type")
    data = event.get("data")
    if not isinstance(name, str) or not isinstance(data, dict):
        raise MalformedWebhook("flutterwave webhook needs event and data")
    ident = data.get("id")
    if ident is None:
        ident = hashlib.sha256(body).hexdigest()[:32]
    status = str(data.get("status", "")).lower()
    return name, data, f"{name}:{ident}:{status}"

"""Build signed sandbox webhook requests the way the sandbox gateway does."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from providers.sandbox.signing import SIGNATURE_HEADER, signature_header, webhook_secret_for

SANDBOX_KEY = "sk_sandbox_worker_tests_key_0001"


def event_body(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    return json.dumps({
        "id": event_id or f"evt_{uuid.uuid4().hex}", "type": event_type,
        "created": int(time.time()), "data": {"object": obj},
    }).encode()


def signed(body: bytes, *, secret_key: str = SANDBOX_KEY, timestamp: int | None = None,
           secret: str | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {SIGNATURE_HEADER: signature_header(secret or webhook_secret_for(secret_key), ts, body),
            "Content-Type": "application/json"}

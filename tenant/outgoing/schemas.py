from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Description = Annotated[str, msgspec.Meta(max_length=500)]
EventList = Annotated[list[Annotated[str, msgspec.Meta(max_length=40)]],
                      msgspec.Meta(max_length=20)]


class EndpointIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /v1/webhook-endpoints`` (SPEC 3a). No ``events`` (or an empty
    list): every event type."""

    url: Url
    events: EventList | None = None
    description: Description | None = None


class EndpointPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: Url | msgspec.UnsetType = msgspec.UNSET
    events: EventList | None | msgspec.UnsetType = msgspec.UNSET
    description: Description | None | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class RotateIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: How long the old secret keeps signing beside the new one (default one day).
    overlap_seconds: Annotated[int, msgspec.Meta(ge=0, le=30 * 86400)] = 86_400


class EndpointOut(msgspec.Struct, kw_only=True):
    """An endpoint; ``secret`` only in the answers of create and rotate-secret."""

    id: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = None
    #: Until when the secret before the last rotation still signs (else null).
    previous_secret_expires_at: datetime | None = None


class DeliveryOut(msgspec.Struct, kw_only=True):
    """One attempt to deliver one event (SPEC 3a)."""

    id: str
    event_id: str
    event_type: str
    endpoint_id: str
    attempt: int
    status: str
    response_status: int | None
    latency_ms: int | None
    error: str | None
    next_attempt_at: datetime | None
    created_at: datetime

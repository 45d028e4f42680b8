"""Paymesh's built-in offline gateway: hosted test checkout, refunds, disputes, webhooks.

The gateway half (:mod:`.gateway`, :mod:`.engine`) plays an external system with its own
Redis state; the provider half (:mod:`.provider`) talks to it over HTTP like to any gateway.
"""

from providers.sandbox.gateway import (
    UnknownDelivery,
    WebhookDeliveryFailed,
    create_gateway_router,
    deliver_webhook,
)
from providers.sandbox.provider import SandboxProvider
from providers.sandbox.signing import SIGNATURE_HEADER, webhook_secret_for
from providers.sandbox.store import pending_deliveries

__all__ = [
    "SIGNATURE_HEADER",
    "SandboxProvider",
    "UnknownDelivery",
    "WebhookDeliveryFailed",
    "create_gateway_router",
    "deliver_webhook",
    "pending_deliveries",
    "webhook_secret_for",
]

"""The names of the worker actors, the one place callers and :mod:`workers.actors` agree on.

Callers below the workers (the webhook door, the sandbox gateway's dispatch, the
scheduler, the CLI) enqueue by name through :meth:`core.runtime.Runtime.enqueue` and never
import the actors; ``tests/test_composition_root.py`` checks every name here has its actor.
"""

from __future__ import annotations

#: Applies one inbox event: ``(tenant_slug, event_id)``.
PROCESS_WEBHOOK_EVENT = "process_webhook_event"
#: Sends one of the sandbox gateway's outgoing webhooks: ``(delivery_id,)``.
DELIVER_SANDBOX_WEBHOOK = "deliver_sandbox_webhook"
#: Sends one tenant notification: ``(tenant_slug, notification_id)``.
DELIVER_NOTIFICATION = "deliver_notification"

#: Syncs a coupon's provider-side discount for one paid order: ``(tenant_slug, order_id)``.
SYNC_COUPON_DISCOUNT = "sync_coupon_discount"

ALL = (PROCESS_WEBHOOK_EVENT, DELIVER_SANDBOX_WEBHOOK, DELIVER_NOTIFICATION,
       SYNC_COUPON_DISCOUNT)

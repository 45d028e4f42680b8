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

#: Sends one outgoing webhook delivery (an attempt) to a tenant's endpoint:
#: ``(tenant_slug, delivery_id)``. On its own queue (:data:`QUEUES`): a slow receiver
#: never holds up the inbox.
DELIVER_OUTGOING_WEBHOOK = "deliver_outgoing_webhook"

ALL = (PROCESS_WEBHOOK_EVENT, DELIVER_SANDBOX_WEBHOOK, DELIVER_NOTIFICATION,
       SYNC_COUPON_DISCOUNT, DELIVER_OUTGOING_WEBHOOK)

#: The Dramatiq queue of each actor not on the default one.
QUEUES = {DELIVER_OUTGOING_WEBHOOK: "outgoing"}

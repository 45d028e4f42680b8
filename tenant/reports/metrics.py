"""Operational metrics of a period (T17): payment success, checkout abandonment, refund
and dispute rates, reservation health and the webhook inbox, each one SQL aggregate.

Rates are fractions in [0, 1] (not percents), as decimal strings with four places, like
every other rate in the API; ``None`` when nothing was there to divide by. Webhook lag is
seconds (a duration, not money) as a JSON number with millisecond precision.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from core.period import Period
from core.sql import Sql
from tenant.reports.schemas import MetricsReport, ReservationStats, WebhookStats

_METRICS = """
    SELECT
      (SELECT count(*) FROM payments
        WHERE created_at >= $1 AND created_at < $2 AND status = 'succeeded') AS attempts_ok,
      (SELECT count(*) FROM payments
        WHERE created_at >= $1 AND created_at < $2 AND status = 'failed') AS attempts_failed,
      (SELECT count(*) FROM orders o
        WHERE o.created_at >= $1 AND o.created_at < $2
          AND EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id)) AS checkouts,
      (SELECT count(*) FROM orders o
        WHERE o.created_at >= $1 AND o.created_at < $2 AND o.paid_at IS NULL
          AND o.payment_status <> 'paid'
          AND EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id)) AS abandoned,
      (SELECT count(*) FROM orders
        WHERE paid_at IS NOT NULL AND paid_at >= $1 AND paid_at < $2) AS paid,
      (SELECT count(*) FROM orders
        WHERE paid_at IS NOT NULL AND paid_at >= $1 AND paid_at < $2
          AND amount_refunded > 0) AS refunded,
      (SELECT count(*) FROM orders o
        WHERE o.paid_at IS NOT NULL AND o.paid_at >= $1 AND o.paid_at < $2
          AND EXISTS (SELECT 1 FROM disputes d WHERE d.order_id = o.id)) AS disputed,
      (SELECT count(*) FROM inventory_reservations
        WHERE created_at >= $1 AND created_at < $2 AND status = 'active') AS res_active,
      (SELECT count(*) FROM inventory_reservations
        WHERE created_at >= $1 AND created_at < $2 AND status = 'expired') AS res_expired,
      (SELECT count(*) FROM inventory_reservations
        WHERE created_at >= $1 AND created_at < $2 AND status = 'converted') AS res_converted
"""

_WEBHOOKS = """
    SELECT count(*) AS received,
           count(*) FILTER (WHERE status = 'processed') AS processed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'dead') AS dead,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))
               FILTER (WHERE processed_at IS NOT NULL) AS lag_p50,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))
               FILTER (WHERE processed_at IS NOT NULL) AS lag_p99
    FROM webhook_events WHERE received_at >= $1 AND received_at < $2
"""

_PLACES = Decimal("0.0001")


def rate(part: int, whole: int) -> str | None:
    """``part ÷ whole`` as a decimal string with four places (half away from zero)."""
    if whole == 0:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(_PLACES, rounding=ROUND_HALF_UP))


def _seconds(value: object) -> float | None:
    return None if value is None else round(float(value), 3)  # type: ignore[arg-type]


async def build(db: Sql, period: Period) -> MetricsReport:
    m = await db.fetchrow(_METRICS, period.start, period.end)
    w = await db.fetchrow(_WEBHOOKS, period.start, period.end)
    assert m is not None and w is not None
    return MetricsReport(
        from_=period.start, to=period.end,
        payment_success_rate=rate(m["attempts_ok"], m["attempts_ok"] + m["attempts_failed"]),
        checkout_abandonment_rate=rate(m["abandoned"], m["checkouts"]),
        refund_rate=rate(m["refunded"], m["paid"]),
        dispute_rate=rate(m["disputed"], m["paid"]),
        reservations=ReservationStats(active=m["res_active"], expired=m["res_expired"],
                                      converted=m["res_converted"]),
        webhooks=WebhookStats(received=w["received"], processed=w["processed"],
                              failed=w["failed"], dead=w["dead"],
                              lag_p50_seconds=_seconds(w["lag_p50"]),
                              lag_p99_seconds=_seconds(w["lag_p99"])))

"""Prometheus metrics Paymesh defines (exposed at ``/metrics`` with the HTTP ones)."""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS_RECEIVED = Counter(
    "paymesh_webhooks_received_total", "Verified webhooks stored in an inbox", ["provider"])
WEBHOOKS_DUPLICATE = Counter(
    "paymesh_webhooks_duplicate_total", "Verified webhooks already in the inbox", ["provider"])
WEBHOOKS_REJECTED = Counter(
    "paymesh_webhooks_rejected_total", "Webhooks refused before storage", ["provider", "reason"])
EVENTS_PROCESSED = Counter(
    "paymesh_webhook_events_processed_total", "Inbox events applied", ["provider"])
EVENTS_FAILED = Counter(
    "paymesh_webhook_events_failed_total", "Inbox event attempts that failed", ["provider"])
EVENTS_DEAD = Counter(
    "paymesh_webhook_events_dead_total", "Inbox events given up on", ["provider"])
PROCESSING_LAG = Histogram(
    "paymesh_webhook_processing_lag_seconds", "From receipt to applied",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600))
ENQUEUE_FAILURES = Counter(
    "paymesh_enqueue_failures_total", "Messages the broker did not take (swept later)")

HTTP_REQUESTS = Counter(
    "paymesh_requests_total", "HTTP requests answered",
    ["method", "path", "status_code", "app_name"])
HTTP_ERRORS = Counter(
    "paymesh_requests_error_total", "HTTP requests answered with a 5xx",
    ["method", "path", "status_code", "app_name"])
HTTP_DURATION = Histogram(
    "paymesh_request_duration_seconds", "HTTP request duration",
    ["method", "path", "status_code", "app_name"])
HTTP_IN_PROGRESS = Gauge(
    "paymesh_requests_in_progress", "HTTP requests being served",
    ["method", "path", "app_name"], multiprocess_mode="livesum")


class HttpMetricsMiddleware(ASGIMiddleware):
    """Request count, errors, duration and in-flight requests per route template.

    The same series Litestar's Prometheus middleware writes, with the label children
    cached per (method, route, status): on the webhook door the per-request label
    lookups were a tenth of the API's CPU. Paths are route templates, so there is one
    series per endpoint, never one per tenant or order id.
    """

    scopes = (ScopeType.HTTP,)
    should_bypass_for_scope = staticmethod(
        lambda scope: scope["path"] in ("/metrics", "/healthz", "/readyz"))

    def __init__(self, app_name: str = "paymesh") -> None:
        self.app_name = app_name
        self._in_progress: dict[tuple[str, str], Any] = {}
        self._done: dict[tuple[str, str, int], tuple[Any, Any, Any | None]] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        route = (scope["method"], scope.get("path_template") or scope["path"])
        in_progress = self._in_progress.get(route)
        if in_progress is None:
            in_progress = self._in_progress[route] = HTTP_IN_PROGRESS.labels(
                *route, self.app_name)
        status = 500  # unless a response starts
        started = time.perf_counter()

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress.inc()
        try:
            await next_app(scope, receive, record_status)
        finally:
            in_progress.dec()
            count, duration, errors = self._series(route, status)
            count.inc()
            duration.observe(time.perf_counter() - started)
            if errors is not None:
                errors.inc()

    def _series(self, route: tuple[str, str], status: int) -> tuple[Any, Any, Any | None]:
        key = (*route, status)
        series = self._done.get(key)
        if series is None:
            labels = (*route, str(status), self.app_name)
            series = self._done[key] = (
                HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels),
                HTTP_ERRORS.labels(*labels) if status >= 500 else None)
        return series

"""Prometheus metrics Paymesh defines (exposed at ``/metrics`` with the HTTP ones)."""

from __future__ import annotations

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
FX_API_FAILURES = Counter(
    "paymesh_fx_api_failures_total", "Rate API calls that gave no rates (then the next layer)",
    ["reason"])  # timeout | unreachable | http_status | garbage
FX_API_FETCHES = Counter(
    "paymesh_fx_api_fetches_total", "Rate API calls that gave rates (stored with history)")
FX_QUOTES = Counter(
    "paymesh_fx_quotes_total", "Rates looked up for conversions, by the layer that answered",
    ["source"])  # native | manual | cached | api | expired | fallback | unavailable
ENQUEUE_FAILURES = Counter(
    "paymesh_enqueue_failures_total", "Messages the broker did not take (swept later)")
OUTGOING_ATTEMPTS = Counter(
    "paymesh_outgoing_webhook_attempts_total", "Outgoing webhook deliveries sent, by outcome "
    "(succeeded, http_error, error, refused)", ["outcome"])
OUTGOING_FAILURES = Counter(
    "paymesh_outgoing_webhook_failures_total", "Outgoing webhook attempts that failed")
OUTGOING_EXHAUSTED = Counter(
    "paymesh_outgoing_webhook_exhausted_total", "Outgoing webhooks given up on (schedule over)")
OUTGOING_LATENCY = Histogram(
    "paymesh_outgoing_webhook_latency_seconds", "From sending an outgoing webhook to its answer",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15))
OUTGOING_ENDPOINTS_DISABLED = Counter(
    "paymesh_outgoing_webhook_endpoints_disabled_total", "Endpoints disabled by Paymesh",
    ["reason"])

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

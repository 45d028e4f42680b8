"""The error object in the OpenAPI document.

Litestar documents a ``400`` in its own default shape (``status_code``, ``detail``) on
every operation that takes input; Paymesh answers every error with its error object
(``core.http``). :func:`document_errors` declares, on each documented operation of the
API, the error statuses it can answer with :class:`ErrorBody` as their schema (an
explicit response replaces Litestar's default one for the same status).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute


class ErrorDetail(msgspec.Struct, kw_only=True):
    #: ``invalid_request_error``, ``authentication_error``, ``permission_error``,
    #: ``rate_limit_error`` or ``api_error``.
    type: str
    #: A stable machine code (``validation_error``, ``not_found``, ``conflict`` …).
    code: str
    message: str
    #: The offending field or parameter, if any.
    param: str | None


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error answer: ``{"error": {"type", "code", "message", "param"}}``."""

    error: ErrorDetail


DESCRIPTIONS = {
    400: "Invalid request (bad JSON, a value of the wrong type or out of range)",
    401: "Missing or invalid API key",
    403: "The key may not do this (wrong kind, suspended tenant)",
    404: "Not found",
    409: "Conflicts with existing data or the resource's state",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Understood but cannot be processed (unsupported, not payable …)",
    429: "Too many requests; retry later",
    503: "A dependency (database, provider) is temporarily unavailable; retry",
}

_API = (400, 401, 403, 404, 422, 429, 503)
_WRITE = (409, 413, 415)
_WEBHOOK = (400, 403, 404, 409, 413, 429, 503)


def statuses_for(path: str, method: str) -> tuple[int, ...]:
    """The error statuses an operation can answer (none outside the API and its webhooks:
    health checks answer their own bodies)."""
    if path.startswith("/webhooks/"):
        return _WEBHOOK
    if not path.startswith("/v1/"):
        return ()
    return _API + (_WRITE if method in ("POST", "PUT", "PATCH", "DELETE") else ())


def error_responses(statuses: tuple[int, ...]) -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(data_container=ErrorBody, description=DESCRIPTIONS[status],
                                 generate_examples=False)
            for status in statuses}


def document_errors(app: Any) -> None:
    """Declare the error responses on every route handler of ``app`` (a Litestar app).

    Run before the document is first built (it is built lazily, on the first request for
    it); a handler's own ``responses`` win over these.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                statuses = statuses_for(route.path, method)
                if statuses:
                    handler.responses = {**error_responses(statuses), **(handler.responses or {})}

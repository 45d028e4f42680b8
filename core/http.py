"""HTTP plumbing shared by every controller: error translation, pagination, state access."""

from __future__ import annotations

import logging
from typing import Any, Generic, TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError

from core.audit import Actor
from core.errors import PaymeshError, ServiceUnavailable
from core.tenancy import TenantContext

log = logging.getLogger("paymesh.http")
T = TypeVar("T")

MAX_LIMIT = 100


class Page(msgspec.Struct, Generic[T]):
    data: list[T]
    page: int
    limit: int
    has_more: bool


def page_params(page: int, limit: int) -> tuple[int, int]:
    from core.errors import ValidationError

    if page < 1:
        raise ValidationError("page must be >= 1", param="page")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", param="limit")
    return page, limit


def tenant_of(request: Request[Any, Any, Any]) -> TenantContext:
    return request.state.tenant  # set by TenancyMiddleware


def actor_of(request: Request[Any, Any, Any]) -> Actor:
    return request.state.get("actor") or Actor(kind="public")


def _error(status: int, type_: str, code: str, message: str, param: str | None = None,
           **extra: Any) -> Response[Any]:
    body = {"type": type_, "code": code, "message": message, "param": param, **extra}
    return Response({"error": body}, status_code=status)


def handle_paymesh_error(_: Request[Any, Any, Any], exc: PaymeshError) -> Response[Any]:
    return Response(exc.to_dict(), status_code=exc.status_code,
                    headers=getattr(exc, "headers", None))  # Retry-After of a 429


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, ValidationException) or status == 400:
        extra = exc.extra if isinstance(exc.extra, list) else []
        param = None
        message = exc.detail or "invalid request"
        if extra and isinstance(extra[0], dict):
            first = extra[0]
            param = first.get("key") or None
            message = f"{first.get('message', message)}"
            if param:
                message = f"{message} (at '{param}')"
        return _error(400, "invalid_request_error", "validation_error", message, param)
    codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
             409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
             429: "rate_limited"}
    if status == 429:  # Litestar's rate limit: our error object, its Retry-After
        return Response({"error": {"type": "rate_limit_error", "code": "rate_limited",
                                   "message": "too many requests; retry later",
                                   "param": None}},
                        status_code=429, headers=exc.headers or None)
    if status >= 500:
        log.error("HTTP %s: %s", status, exc.detail)
        return _error(status, "api_error", "internal_error", "internal error")
    return _error(status, "invalid_request_error", codes.get(status, "http_error"),
                  exc.detail or "request failed")


def handle_db_error(_: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
    """Constraint → 409, bad data → 400, a bug → 500, anything else: the database is away."""
    if isinstance(exc, IntegrityError):
        log.warning("integrity error surfaced to HTTP: %s", exc.orig)
        return _error(409, "invalid_request_error", "conflict",
                      "the request conflicts with existing data")
    if isinstance(exc, DataError):
        return _error(400, "invalid_request_error", "invalid_value",
                      "a value is out of range for this field")
    if isinstance(exc, ProgrammingError):
        return handle_internal_error(_, exc)
    log.error("database unavailable: %s", exc.orig)
    err = ServiceUnavailable("database temporarily unavailable; retry")
    return Response(err.to_dict(), status_code=err.status_code)


def handle_connection_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("dependency unavailable: %r", exc)
    err = ServiceUnavailable("a dependency is temporarily unavailable; retry")
    return Response(err.to_dict(), status_code=err.status_code)


def handle_internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", exc_info=exc)
    return _error(HTTP_500_INTERNAL_SERVER_ERROR, "api_error", "internal_error", "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    PaymeshError: handle_paymesh_error,
    HTTPException: handle_http_exception,
    DBAPIError: handle_db_error,
    ConnectionError: handle_connection_error,
    OSError: handle_connection_error,
    Exception: handle_internal_error,
}

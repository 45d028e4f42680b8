"""HTTP plumbing shared by every controller: error translation, pagination, state access."""

from __future__ import annotations

import logging
from typing import Any, Generic, TypeVar

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from core.audit import Actor
from core.errors import PaymeshError, ServiceUnavailable
from core.tenancy import TenantContext

log = logging.getLogger("paymesh.http")
T = TypeVar("T")

MAX_LIMIT = 100
#: The last page a list serves: its offset ``(page - 1) * limit`` fits a Postgres bigint.
MAX_PAGE = (2**63 - 1) // MAX_LIMIT


class Page(msgspec.Struct, Generic[T]):
    data: list[T]
    page: int
    limit: int
    has_more: bool


def page_params(page: int, limit: int) -> tuple[int, int]:
    from core.errors import ValidationError

    if not 1 <= page <= MAX_PAGE:
        raise ValidationError(f"page must be between 1 and {MAX_PAGE}", param="page")
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


#: SQLSTATE classes of a database that is away or overloaded (the client may retry):
#: connection exceptions, transaction rollbacks (serialization failures, deadlocks),
#: insufficient resources, operator intervention (shutdown, statement timeout), system errors.
_UNAVAILABLE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_UNAVAILABLE_STATES = frozenset({"55P03"})  # lock_not_available


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error: SQLAlchemy's ``exc.orig`` or asyncpg's own error
    (``.sqlstate``), looked up along the chain of causes."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str) and state:
            return state
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def _client_data_error(exc: BaseException) -> bool:
    """asyncpg refused a value before sending it (``invalid input for query argument``:
    an integer past int64, a string where a number goes): the data's fault."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, asyncpg.InterfaceError) and isinstance(seen, ValueError):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def _looks_disconnected(exc: BaseException) -> bool:
    if getattr(exc, "connection_invalidated", False) or isinstance(exc, OperationalError):
        return True
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ConnectionError | OSError | TimeoutError
                      | asyncpg.exceptions.ConnectionDoesNotExistError
                      | asyncpg.exceptions.InterfaceError):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def handle_db_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Classified by SQLSTATE: bad data (class 22) → 400, a constraint (class 23) → 409
    (a duplicate, a reference in use) or 400 (a check, a missing value), an outage
    (connection, timeout, deadlock …) → 503, anything else is a bug → 500. SQLAlchemy's
    errors (``exc.orig``) and asyncpg's (plain-SQL paths) alike."""
    state = _sqlstate(exc)
    if state is None and _client_data_error(exc):
        state = "22000"
    if state is None and isinstance(exc, IntegrityError):
        state = "23000"
    if state is None and isinstance(exc, DataError):
        state = "22000"
    if state and state.startswith("22"):
        log.info("data error surfaced to HTTP: %s", state)
        return _error(400, "invalid_request_error", "invalid_value",
                      "a value is invalid or out of range for this field")
    if state and state.startswith("23"):
        log.warning("integrity error surfaced to HTTP: %s", state)
        if state in ("23502", "23514"):  # not null, check
            return _error(400, "invalid_request_error", "invalid_value",
                          "a value is not allowed for this field")
        return _error(409, "invalid_request_error", "conflict",
                      "the request conflicts with existing data")
    if (state and (state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES)) or (
            state is None and _looks_disconnected(exc)):
        log.error("database unavailable: %r", getattr(exc, "orig", exc))
        err = ServiceUnavailable("database temporarily unavailable; retry")
        return Response(err.to_dict(), status_code=err.status_code)
    return handle_internal_error(_, exc)


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
    asyncpg.PostgresError: handle_db_error,
    asyncpg.InterfaceError: handle_db_error,
    ConnectionError: handle_connection_error,
    OSError: handle_connection_error,
    Exception: handle_internal_error,
}

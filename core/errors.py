"""The one error hierarchy. Translated to HTTP once, in :mod:`core.http`."""

from __future__ import annotations

from typing import Any


class PaymeshError(Exception):
    """A domain error with a stable machine code and an HTTP status."""

    status_code = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.param = param
        self.extra = extra or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        body.update(self.extra)
        return {"error": body}


class ValidationError(PaymeshError):
    status_code = 400
    code = "validation_error"


class UnprocessableError(PaymeshError):
    status_code = 422
    code = "unprocessable"


class AuthenticationError(PaymeshError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(PaymeshError):
    status_code = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(PaymeshError):
    status_code = 404
    code = "not_found"


class Conflict(PaymeshError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(PaymeshError):
    status_code = 413
    code = "payload_too_large"


class RateLimited(PaymeshError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limited"


class ServiceUnavailable(PaymeshError):
    """A dependency (database, provider) is down; the client may retry."""

    status_code = 503
    type = "api_error"
    code = "service_unavailable"


class MasterKeyUnavailable(ServiceUnavailable):
    """A tenant's secrets are wrapped by a master key this process lacks (an operator fix:
    add the key to ``PAYMESH_MASTER_KEYS``); the log names the key id."""

    code = "master_key_unavailable"

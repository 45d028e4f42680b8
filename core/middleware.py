"""The API's ASGI middleware: request metrics, and who is calling on which tenant.

:class:`TenancyMiddleware` runs before routing to any tenant handler. It needs two
lookups the owner package provides (keys by hash, tenants by slug); the composition root
hands them in, so ``core`` does not import ``owner``.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from core.audit import Actor
from core.clientip import client_ip
from core.errors import AuthenticationError, NotFound, PermissionDenied
from core.metrics import HTTP_DURATION, HTTP_ERRORS, HTTP_IN_PROGRESS, HTTP_REQUESTS
from core.ratelimit import SharedCounter, rate_limited
from core.tenancy import KeyLookup, Principal, TenantContext, TenantLookup, done_working, work_for

OWNER_PREFIX = "/v1/owner"
TENANT_PREFIX = "/v1/"
PATH_TENANT_PREFIXES = ("/pay/", "/webhooks/")


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
        in_progress = self.in_progress(route)
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
            self.record(route, status, started)

    def in_progress(self, route: tuple[str, str]) -> Any:
        """The in-flight gauge of ``(method, route template)``."""
        gauge = self._in_progress.get(route)
        if gauge is None:
            gauge = self._in_progress[route] = HTTP_IN_PROGRESS.labels(*route, self.app_name)
        return gauge

    def record(self, route: tuple[str, str], status: int, started: float) -> None:
        """Count a finished request (``started``: its ``time.perf_counter()``); also for
        requests answered before Litestar (:mod:`core.lanes`)."""
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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def actor_from_scope(scope: Scope, principal: Principal | None) -> Actor:
    return Actor(
        key_id=principal.key_id if principal else None,
        kind=principal.kind if principal else "public",
        ip=client_ip(scope),
        user_agent=_header(scope, b"user-agent"),
    )


class TenancyMiddleware(ASGIMiddleware):
    """Authenticate the key and resolve the tenant; store both in ``scope["state"]``.

    - ``/v1/owner/…``: owner key required.
    - ``/v1/…``: a tenant key acts on its own tenant; an owner key names one with the
      ``Paymesh-Tenant`` header. A tenant key naming another tenant gets 404.
    - ``/pay/{tenant}/…`` and ``/webhooks/{tenant}/…``: tenant from the path, no key.
    Unknown tenant → 404; suspended tenant → 403. No other tenant's database is touched.
    """

    def __init__(self, keys: KeyLookup, tenants: TenantLookup,
                 auth_failures: SharedCounter | None = None) -> None:
        self.keys = keys
        self.tenants = tenants
        #: Failed key checks per client address: over the limit → 429 before the check.
        self.auth_failures = auth_failures

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        path: str = scope["path"]
        state = State(scope.setdefault("state", {}))
        if path.startswith(PATH_TENANT_PREFIXES):
            slug = path.split("/", 3)[2] if path.count("/") >= 2 else ""
            state.tenant = await self._tenant(slug=slug)
            state.principal = None
            state.actor = actor_from_scope(scope, None)
        elif path.startswith(TENANT_PREFIX):
            principal = await self._principal(scope)
            state.principal = principal
            state.actor = actor_from_scope(scope, principal)
            if path == OWNER_PREFIX or path.startswith(OWNER_PREFIX + "/"):
                if principal.kind != "owner":
                    raise PermissionDenied("this endpoint needs an owner key")
            else:
                state.tenant = await self._tenant_for(scope, principal)
        token = work_for(state.get("tenant"))
        try:
            await next_app(scope, receive, send)
        finally:
            done_working(token)

    async def _principal(self, scope: Scope) -> Principal:
        header = _header(scope, b"authorization") or ""
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
        client = client_ip(scope) or "unknown"
        limit = self.auth_failures
        if limit is not None and (retry_after := limit.blocked(client)) is not None:
            raise rate_limited(retry_after, "failed authentications from this address")
        principal = await self.keys(raw.strip())
        if principal is None:
            if limit is not None and (retry_after := await limit.hit(client)) is not None:
                raise rate_limited(retry_after, "failed authentications from this address")
            raise AuthenticationError("invalid or revoked API key")
        return principal

    async def _tenant_for(self, scope: Scope, principal: Principal) -> TenantContext:
        named = _header(scope, b"paymesh-tenant")
        if principal.kind == "owner":
            if not named:
                raise NotFound("owner keys must name a tenant with the Paymesh-Tenant header")
            return await self._tenant(slug=named)
        tenant = await self._tenant(tenant_id=principal.tenant_id)
        if named and named != tenant.slug:
            raise NotFound(f"tenant '{named}' not found")
        return tenant

    async def _tenant(self, **lookup: object) -> TenantContext:
        return await resolve_tenant(self.tenants, **lookup)


async def resolve_tenant(tenants: TenantLookup, **lookup: object) -> TenantContext:
    """The tenant a request names: 404 if unknown, 403 if suspended."""
    tenant = await tenants(**lookup)
    if tenant is None:
        raise NotFound("tenant not found")
    if tenant.is_suspended:
        raise PermissionDenied("tenant is suspended", code="tenant_suspended")
    return tenant

"""The composition root: wires core, providers, owner and tenant into one Litestar app.

Nothing imports this module except the CLI, the workers' entry point and the tests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Litestar, Response, get
from litestar.config.response_cache import ResponseCacheConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusController
from sqlalchemy import text

from core import actors, docs_ui
from core.clientip import set_trusted_proxies
from core.deps import DEPENDENCIES
from core.http import EXCEPTION_HANDLERS
from core.jsonbody import JsonRequest
from core.lanes import FastLanes
from core.memory import collect_frozen, freeze_long_lived
from core.middleware import HttpMetricsMiddleware, TenancyMiddleware
from core.openapi import document_errors
from core.ratelimit import SharedCounter
from core.redis import close_redis, get_redis
from core.runtime import Runtime, set_runtime
from core.security import SecurityHeaders
from core.settings import Settings, get_settings
from owner import changes as owner_changes
from owner.catalog.controllers import CatalogController
from owner.fx.controllers import FxRateController
from owner.keys import service as keys
from owner.reports.controllers import PlatformReportController
from owner.tenants import service as tenants
from owner.tenants.controllers import ClusterController, TenantController
from providers.registry import close_shared_clients
from providers.sandbox.gateway import create_gateway_router
from tenant.audit.controllers import AuditController
from tenant.coupons.controllers import CouponController
from tenant.disputes.controllers import DisputeController
from tenant.entitlements.controllers import EntitlementController
from tenant.ledger.controllers import LedgerController
from tenant.orders.controllers import OrderController
from tenant.outgoing.controllers import WebhookDeliveryController, WebhookEndpointController
from tenant.pages.controllers import pay_router
from tenant.payments.controllers import OrderPaymentController, PaymentController
from tenant.products.controllers import ProductController
from tenant.provider_configs.controllers import ProviderConfigController
from tenant.referrals.controllers import CommissionController, ReferralCodeController
from tenant.refunds.controllers import OrderRefundController, RefundController
from tenant.reports.controllers import ReportController
from tenant.settings.controllers import SettingsController
from tenant.webhooks.controllers import (
    WebhookEventController,
    WebhookIngestController,
    ingest_lane,
)
from workers.runtime import build_runtime

log = logging.getLogger("paymesh")


@get("/healthz", tags=["ops"], include_in_schema=True)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@get("/readyz", tags=["ops"])
async def readyz(state: State) -> Response[dict[str, Any]]:
    """Readiness: the owner database and Redis answer."""
    checks: dict[str, str] = {}
    runtime: Runtime = state.runtime
    try:
        async with runtime.owner_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return Response({"status": "ready" if ready else "not_ready", "checks": checks},
                    status_code=200 if ready else 503)


class MetricsController(PrometheusController):
    path = "/metrics"
    openapi_config = None
    include_in_schema = False  # Prometheus text for the scraper, not part of the JSON API


def create_app(settings: Settings | None = None) -> FastLanes:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(settings.log_level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    runtime = build_runtime(settings)
    set_trusted_proxies(settings.trusted_proxies)  # X-Forwarded-For (core/clientip.py)

    async def sandbox_dispatch(delivery_id: str) -> None:
        """The sandbox gateway sends its webhooks through a worker, like a real gateway."""
        await runtime.enqueue(actors.DELIVER_SANDBOX_WEBHOOK, delivery_id)

    async def lookup_key(raw: str):  # type: ignore[no-untyped-def]
        return await keys.authenticate(runtime.owner_engine, raw)

    async def lookup_tenant(**kw: Any):  # type: ignore[no-untyped-def]
        return await tenants.lookup(runtime, **kw)

    async def housekeeping() -> None:
        minutes = 0
        while True:
            await asyncio.sleep(60)
            minutes += 1
            try:
                await runtime.tenants.prune()
                if minutes % 10 == 0:
                    collect_frozen()  # garbage cycles among frozen objects, every 10 min
            except Exception:
                log.exception("API housekeeping failed")

    async def on_startup(app: Litestar) -> None:
        set_runtime(runtime)
        # what startup built (routes, mappers, compiled SQL) and what survives full
        # collections lives as long as the process: keep it out of later full passes,
        # whose pauses show up as p99 (core/memory.py)
        freeze_long_lived()
        loop = asyncio.get_running_loop()
        app.state.background = [loop.create_task(housekeeping()),
                                loop.create_task(owner_changes.watch(runtime))]

    async def on_shutdown(app: Litestar) -> None:
        for task in app.state.get("background", ()):
            task.cancel()
        await runtime.close()
        await close_redis()
        await close_shared_clients()
        set_runtime(None)

    metrics = HttpMetricsMiddleware()
    app = Litestar(
        route_handlers=[
            healthz, readyz, MetricsController,
            CatalogController, TenantController, ClusterController, FxRateController,
            PlatformReportController,
            ProviderConfigController, AuditController,
            WebhookIngestController, WebhookEventController,
            create_gateway_router(sandbox_dispatch),
            ProductController, OrderController, OrderPaymentController, PaymentController,
            LedgerController, SettingsController, pay_router,
            RefundController, OrderRefundController, DisputeController, EntitlementController,
            CouponController, ReportController, ReferralCodeController, CommissionController,
            WebhookEndpointController, WebhookDeliveryController,
            docs_ui.assets_router(),
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[metrics, TenancyMiddleware(
            lookup_key, lookup_tenant,
            SharedCounter("paymesh:ratelimit:authfail", settings.auth_failure_limit))],
        state=State({"runtime": runtime}),
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=OpenAPIConfig(
            title="Paymesh", version="0.1.0", path="/schema",
            render_plugins=[docs_ui.swagger_plugin()],  # served offline: core/docs_ui.py
        ),
        response_cache_config=ResponseCacheConfig(),
        request_max_body_size=settings.webhook_max_bytes * 4,
        request_class=JsonRequest,  # strict JSON bodies, bad ones a 400 (core/jsonbody.py)
        logging_config=None,  # logging is configured above, from PAYMESH_LOG_LEVEL
        debug=False,
    )
    document_errors(app)  # the error object on every operation (core/openapi.py)
    # the webhook door is answered before Litestar (core/lanes.py); the rest goes through it
    # security headers on every HTML page, error pages raised by middleware included
    secured = SecurityHeaders(app, https=settings.public_url.startswith("https://"))
    return FastLanes(secured, [ingest_lane(runtime)], lookup_tenant, metrics)



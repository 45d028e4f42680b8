"""All configuration, read from the environment in one place.

Every setting is documented here and in README.md. Nothing else in the code base reads
``os.environ`` for Paymesh settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from decimal import Decimal
from pathlib import Path

from core.fx import parse_fallback


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)))  # type: ignore[arg-type]


def _positive_float(name: str, default: float) -> float:
    value = float(_env(name, str(default)))  # type: ignore[arg-type]
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds")
    return value
def _seconds_list(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = _env(name)
    if raw is None:
        return default
    return tuple(max(0, int(part)) for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Process settings. Construct with :func:`get_settings`, not directly."""

    #: ``postgresql://`` URL of the owner database; its server is the default tenant server.
    database_url: str | None = None
    #: ``redis://`` URL of the broker, caches and rate-limit store.
    redis_url: str | None = None
    #: Base64 AES-256 master keys, newest first, comma separated.
    master_keys: tuple[str, ...] = ()
    #: Where the demo keeps its embedded servers and generated master key.
    data_dir: Path = Path(".paymesh")
    host: str = "127.0.0.1"
    port: int = 8000
    #: Public base URL used in pay links and provider callbacks.
    public_url: str = "http://127.0.0.1:8000"
    #: Hard cap of connections this process opens to tenant databases (all servers).
    max_tenant_connections: int = 40
    #: Pool size of one tenant engine (connections are opened lazily).
    tenant_pool_size: int = 5
    #: Tenant engines idle longer than this are disposed.
    tenant_engine_idle_seconds: int = 300
    owner_pool_size: int = 10
    #: Name of the migrated template every tenant database is cloned from (empty: the
    #: default ``paymesh_template_<installation id>``, see ``owner.tenants.naming``).
    template_db: str = ""
    #: Prefix of tenant database names (tests use it to keep runs apart; empty: the
    #: default ``paymesh_t_<installation id>_``).
    tenant_db_prefix: str = ""
    #: Maximum accepted webhook body, bytes.
    webhook_max_bytes: int = 256 * 1024
    #: Payment attempts still pending after this long are checked with the provider.
    reconcile_after_seconds: int = 600
    #: Inbox events still ``received`` after this long are re-enqueued by the sweeper.
    sweep_stuck_after_seconds: int = 60
    #: Tries of an inbox event before it is ``dead`` (then visible and replayable).
    webhook_max_attempts: int = 16
    #: Wait after an event's first failed try, doubled after each next one (at most 1 h).
    webhook_retry_base_ms: int = 1_000
    #: Tries of a coupon's provider-discount sync before it is ``failed`` (replayable).
    coupon_sync_max_attempts: int = 8
    #: Wait after a sync's first failed try, doubled after each next one (2 s, 4 s, 8 s …).
    coupon_sync_retry_base_ms: int = 2_000
    #: ``smtp://user:pass@host:port``: notifications go by SMTP (else to the log).
    smtp_url: str | None = None
    log_level: str = "INFO"
    #: Proxies whose ``X-Forwarded-For`` is believed (IPs/CIDRs); none by default.
    trusted_proxies: tuple[str, ...] = ()
    #: Webhooks accepted per tenant and provider per minute (0: no limit).
    webhook_rate_limit: int = 100_000
    #: Failed API-key authentications per client IP per minute before 429.
    auth_failure_limit: int = 20
    #: The FX rate API (``PAYMESH_FX_API_URL``): answers ``{"rates": {"EUR": 0.92, …}}`` per
    #: USD; unset, conversions use manual, stored and fallback rates only (docs/fx.md).
    fx_api_url: str | None = None
    #: A fetched rate younger than this is used as ``cached`` without asking the API.
    fx_ttl_seconds: int = 3600
    #: Total time one rate API call may take before it counts as failed.
    fx_timeout_seconds: float = 5.0
    #: ``PAYMESH_FX_FALLBACK`` (``VND=24500,EUR=0.92``): the last resort, source ``fallback``.
    fx_fallback: dict[str, Decimal] = field(default_factory=dict)
    #: Outgoing webhooks may target private, loopback and link-local addresses (tests,
    #: the demo); off in production (the server-side request forgery guard).
    webhook_allow_private: bool = False
    #: Waits before each retry of an outgoing webhook, seconds (SPEC 3a's schedule; a
    #: shorter list means fewer retries). ``PAYMESH_OUTGOING_RETRY_SCHEDULE=5,300,…``.
    outgoing_retry_schedule: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000, 86400)
    #: An outgoing delivery that has no 2xx answer within this many seconds failed.
    outgoing_timeout_seconds: int = 15
    #: An endpoint failing for this long without a success is disabled (5 days).
    outgoing_disable_after_seconds: int = 5 * 86400
    #: Deliveries sent to one endpoint at the same time, across all workers (others wait
    #: their turn without holding a worker thread).
    outgoing_endpoint_concurrency: int = 2
    extra: dict[str, str] = field(default_factory=dict)


RUNTIME_ENV = "runtime.env"
MASTER_KEY_FILE = "master.key"


def _local_defaults(data_dir: Path) -> dict[str, str]:
    """Values ``paymesh demo`` left in the data dir (embedded server URLs, demo key).

    They apply only where the environment says nothing, so a second terminal can run
    ``paymesh keys create --owner`` against the running demo.
    """
    found: dict[str, str] = {}
    env_file = data_dir / RUNTIME_ENV
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name.startswith("PAYMESH_"):
                found[name.strip()] = value.strip()
    key_file = data_dir / MASTER_KEY_FILE
    if key_file.exists() and "PAYMESH_MASTER_KEYS" not in found:
        found["PAYMESH_MASTER_KEYS"] = ",".join(key_file.read_text().split())
    return found


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    data_dir = Path(_env("PAYMESH_DATA_DIR", ".paymesh") or ".paymesh")
    for name, value in _local_defaults(data_dir).items():
        os.environ.setdefault(name, value)
    keys = tuple(k.strip() for k in (_env("PAYMESH_MASTER_KEYS", "") or "").split(",") if k.strip())
    host = _env("PAYMESH_HOST", "127.0.0.1") or "127.0.0.1"
    port = _int("PAYMESH_PORT", 8000)
    return Settings(
        database_url=_env("PAYMESH_DATABASE_URL"),
        redis_url=_env("PAYMESH_REDIS_URL"),
        master_keys=keys,
        data_dir=data_dir,
        host=host,
        port=port,
        public_url=(_env("PAYMESH_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/"),
        max_tenant_connections=_int("PAYMESH_MAX_TENANT_CONNECTIONS", 40),
        tenant_pool_size=_int("PAYMESH_TENANT_POOL_SIZE", 5),
        tenant_engine_idle_seconds=_int("PAYMESH_TENANT_ENGINE_IDLE_SECONDS", 300),
        owner_pool_size=_int("PAYMESH_OWNER_POOL_SIZE", 10),
        template_db=_env("PAYMESH_TEMPLATE_DB", "") or "",
        tenant_db_prefix=_env("PAYMESH_TENANT_DB_PREFIX", "") or "",
        webhook_max_bytes=_int("PAYMESH_WEBHOOK_MAX_BYTES", 256 * 1024),
        reconcile_after_seconds=_int("PAYMESH_RECONCILE_AFTER_SECONDS", 600),
        sweep_stuck_after_seconds=_int("PAYMESH_SWEEP_STUCK_AFTER_SECONDS", 60),
        webhook_max_attempts=max(1, _int("PAYMESH_WEBHOOK_MAX_ATTEMPTS", 16)),
        webhook_retry_base_ms=max(1, _int("PAYMESH_WEBHOOK_RETRY_BASE_MS", 1_000)),
        coupon_sync_max_attempts=max(1, _int("PAYMESH_COUPON_SYNC_MAX_ATTEMPTS", 8)),
        coupon_sync_retry_base_ms=max(1, _int("PAYMESH_COUPON_SYNC_RETRY_BASE_MS", 2_000)),
        smtp_url=_env("PAYMESH_SMTP_URL"),
        log_level=_env("PAYMESH_LOG_LEVEL", "INFO") or "INFO",
        trusted_proxies=tuple(p.strip() for p in (_env("PAYMESH_TRUSTED_PROXIES", "") or "")
                              .split(",") if p.strip()),
        webhook_rate_limit=_int("PAYMESH_WEBHOOK_RATE_LIMIT", 100_000),
        auth_failure_limit=_int("PAYMESH_AUTH_FAILURE_LIMIT", 20),
        fx_api_url=_env("PAYMESH_FX_API_URL"),
        fx_ttl_seconds=max(0, _int("PAYMESH_FX_TTL_SECONDS", 3600)),
        fx_timeout_seconds=_positive_float("PAYMESH_FX_TIMEOUT_SECONDS", 5.0),
        fx_fallback=parse_fallback(_env("PAYMESH_FX_FALLBACK", "") or ""),
        webhook_allow_private=_env("PAYMESH_WEBHOOK_ALLOW_PRIVATE", "0") in ("1", "true", "yes"),
        outgoing_retry_schedule=_seconds_list("PAYMESH_OUTGOING_RETRY_SCHEDULE",
                                              Settings.outgoing_retry_schedule),
        outgoing_timeout_seconds=max(1, _int("PAYMESH_OUTGOING_TIMEOUT_SECONDS", 15)),
        outgoing_disable_after_seconds=_int("PAYMESH_OUTGOING_DISABLE_AFTER_SECONDS",
                                            5 * 86400),
        outgoing_endpoint_concurrency=max(1, _int("PAYMESH_OUTGOING_ENDPOINT_CONCURRENCY", 2)),
    )


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI change the environment first)."""
    get_settings.cache_clear()

"""Is a database server fit to host tenant databases? Checked before it is registered,
and (reachability only) before a tenant is placed on it."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from core.db import async_url, autocommit_connection, redact
from core.errors import UnprocessableError

#: Seconds to wait for a server to answer (registration, placement, ``db upgrade``).
CONNECT_TIMEOUT = 5.0
#: Oldest supported server major version.
MIN_SERVER_VERSION = 13
#: Seconds a server found unreachable is skipped by placement without asking again.
DOWN_SECONDS = 30.0
_down: dict[str, float] = {}


class ServerUnfit(UnprocessableError):
    """The server cannot host tenant databases (unreachable, too old, no CREATEDB)."""


async def _facts(url: str, timeout: float) -> tuple[int, bool]:
    engine = create_async_engine(async_url(url), poolclass=NullPool,
                                 connect_args={"timeout": timeout})
    try:
        async with asyncio.timeout(timeout * 2):
            async with engine.connect() as conn:
                version = int(await conn.scalar(text("SHOW server_version_num")))
                can_create = bool(await conn.scalar(text(
                    "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")))
        return version, can_create
    finally:
        await engine.dispose()


async def reach(url: str, timeout: float = CONNECT_TIMEOUT) -> tuple[int, bool]:
    """(server_version_num, may create databases); :class:`ServerUnfit` if unreachable."""
    try:
        return await _facts(url, timeout)
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
        raise ServerUnfit(f"cannot connect to {redact(url)}: {_reason(exc)}",
                          code="cluster_unreachable", param="url") from exc
    except Exception as exc:  # noqa: BLE001 - auth, unknown database, …: all "cannot use it"
        raise ServerUnfit(f"cannot connect to {redact(url)}: {_reason(exc)}",
                          code="cluster_unreachable", param="url") from exc


async def check(url: str) -> None:
    """Reachable, a supported version, and allowed to ``CREATE DATABASE``."""
    version, can_create = await reach(url)
    if version // 10000 < MIN_SERVER_VERSION:
        raise ServerUnfit(
            f"the server runs PostgreSQL {version // 10000}; {MIN_SERVER_VERSION} or newer "
            "is required", code="cluster_version_unsupported", param="url")
    if not can_create:
        raise ServerUnfit("the URL's role may not create databases (it needs CREATEDB)",
                          code="cluster_privilege_missing", param="url")


def recently_down(url: str) -> bool:
    """Whether :func:`is_up` found ``url`` down less than :data:`DOWN_SECONDS` ago."""
    since = _down.get(url)
    return since is not None and time.monotonic() - since < DOWN_SECONDS


async def is_up(url: str) -> bool:
    """Placement's quick check: ``SELECT 1`` on the pooled connection that the clone
    will use (no new connection per tenant: opening one is a fifth of a clone's cost).
    A failure is remembered for :data:`DOWN_SECONDS` (see :func:`recently_down`)."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            async with autocommit_connection(url, pooled=True) as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - refused, auth, too many clients, timeout: not usable now
        _down[url] = time.monotonic()
        return False
    _down.pop(url, None)
    return True


def _reason(exc: BaseException) -> str:
    while exc.__cause__ is not None and not str(exc):
        exc = exc.__cause__
    orig = getattr(exc, "orig", None)
    text_ = str(orig or exc).strip().splitlines()
    return (text_[0] if text_ else type(exc).__name__)[:300]

"""Session fixtures: real Postgres and Redis for every test.

Embedded by default (``pgserver`` shared by all xdist workers, one ``redis-server`` per
worker); ``PAYMESH_TEST_DATABASE_URL`` / ``PAYMESH_TEST_REDIS_URL`` point at real servers.
Each xdist worker gets its own owner database, template and tenant-name prefix.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.embedded import EmbeddedPostgres, EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = ROOT / ".paymesh" / "test"
FAST_PG = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres | None]:
    """The embedded server, or ``None`` when a real one is configured."""
    if os.environ.get("PAYMESH_TEST_DATABASE_URL"):
        yield None
        return
    yield EmbeddedPostgres.start(TEST_DATA / "pg", tuning=FAST_PG)


@pytest.fixture(scope="session")
def pg_url(pg_server: EmbeddedPostgres | None) -> str:
    """URL of the server's maintenance database (``postgres``)."""
    return os.environ.get("PAYMESH_TEST_DATABASE_URL") or pg_server.url  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    configured = os.environ.get("PAYMESH_TEST_REDIS_URL")
    if configured:
        index = int(worker_id().removeprefix("gw") or 0) + 1
        base = configured.rsplit("/", 1)[0] if configured.count("/") > 2 else configured
        yield f"{base}/{index}"
        return
    server = EmbeddedRedis.start(TEST_DATA / f"redis-{worker_id()}-{os.getpid()}", persist=False)
    try:
        yield server.url
    finally:
        server.stop()


# ----------------------------------------------------------------------------- platform

import itertools  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402

import pytest_asyncio  # noqa: E402
from sqlalchemy import text  # noqa: E402

from core.crypto import generate_key  # noqa: E402
from core.db import autocommit_connection, with_database  # noqa: E402
from core.settings import reset_settings  # noqa: E402

MASTER_KEY = generate_key()


def worker_tag() -> str:
    """Unique per test process: concurrent runs on one server never share a database."""
    return f"{worker_id().replace('gw', 'w')}p{os.getpid()}"


def _dead_run_prefixes(names: list[str]) -> set[str]:
    """Database-name prefixes of earlier test processes that are gone (crashed runs)."""
    import re

    dead = set()
    for name in names:
        match = re.match(r"^(?:pmt_|paymesh_owner_|paymesh_tmpl_)(w\d+p(\d+))", name)
        if match and not _alive(int(match.group(2))):
            dead.add(match.group(1))
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def platform_env(pg_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """Environment of a Paymesh process under test (own owner DB, template, prefix)."""
    tag = worker_tag()
    port = free_port()
    env = {
        "PAYMESH_PORT": str(port),
        "PAYMESH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PAYMESH_DATABASE_URL": with_database(pg_url, f"paymesh_owner_{tag}"),
        "PAYMESH_REDIS_URL": redis_url,
        "PAYMESH_MASTER_KEYS": MASTER_KEY,
        "PAYMESH_TEMPLATE_DB": f"paymesh_tmpl_{tag}",
        "PAYMESH_TENANT_DB_PREFIX": f"pmt_{tag}_",
        "PAYMESH_DATA_DIR": str(TEST_DATA / f"data-{tag}"),
        "PAYMESH_MAX_TENANT_CONNECTIONS": "40",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_settings()
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset_settings()


async def drop_databases(server_url: str, prefix: str) -> None:
    async with autocommit_connection(server_url) as conn:
        names = (await conn.execute(
            text("SELECT datname FROM pg_database WHERE left(datname, length(:p)) = :p"),
            {"p": prefix}
        )).scalars().all()
        for name in names:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture(scope="session")
async def platform(platform_env: dict[str, str], pg_url: str) -> AsyncIterator[dict[str, str]]:
    """A fresh owner database, migrated and seeded, and no leftover tenant databases."""
    from core import migrate
    from core.runtime import Runtime
    from owner.catalog.seed import seed_catalog
    from owner.tenants.service import ensure_default_cluster

    tag = worker_tag()
    async with autocommit_connection(pg_url) as conn:
        names = list((await conn.execute(text("SELECT datname FROM pg_database"))).scalars())
        stale = _dead_run_prefixes(names) | {tag}
        for name in names:
            if any(name in (f"paymesh_owner_{p}", f"paymesh_tmpl_{p}")
                   or name.startswith(f"pmt_{p}_") for p in stale):
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "paymesh_owner_{tag}"'))
    await migrate.upgrade(platform_env["PAYMESH_DATABASE_URL"], "owner")
    runtime = Runtime.create()
    async with runtime.owner_session() as session:
        await seed_catalog(session)
        await ensure_default_cluster(session, pg_url)
    await runtime.close()
    yield platform_env
    await drop_databases(pg_url, f"pmt_{tag}_")
    async with autocommit_connection(pg_url) as conn:
        for name in (f"paymesh_owner_{tag}", f"paymesh_tmpl_{tag}"):
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture(scope="session")
async def app(platform: dict[str, str]) -> AsyncIterator[object]:
    from app import create_app

    application = create_app()
    yield application


@pytest_asyncio.fixture(scope="session")
async def client(app: object) -> AsyncIterator[object]:
    """An HTTP client calling the app in-process, on the test event loop."""
    import httpx

    from core.redis import close_redis
    from core.runtime import set_runtime

    set_runtime(app.state.runtime)  # what the app's startup hook does
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local",
                                 timeout=60) as test_client:
        yield test_client
    await app.state.runtime.close()
    await close_redis()
    set_runtime(None)


@pytest_asyncio.fixture(scope="session")
async def owner_key(client: object) -> str:
    from core.audit import Actor
    from core.runtime import get_runtime
    from owner.keys.service import issue

    async with get_runtime().owner_session() as session:
        _, raw = await issue(session, kind="owner", tenant_id=None, name="tests",
                             actor=Actor.system("tests"))
    return raw


_slugs = itertools.count(1)


def unique_slug(stem: str = "t") -> str:
    return f"{stem}-{worker_tag()}-{next(_slugs)}-{uuid.uuid4().hex[:6]}"


class TenantHandle:
    def __init__(self, slug: str, key: str, data: dict) -> None:
        self.slug, self.key, self.data = slug, key, data

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest_asyncio.fixture(scope="session")
async def make_tenant(client, owner_key):  # type: ignore[no-untyped-def]
    async def factory(stem: str = "t", currency: str = "USD", **extra: object) -> TenantHandle:
        slug = unique_slug(stem)
        response = await client.post(
            "/v1/owner/tenants",
            json={"slug": slug, "name": f"Tenant {slug}", "default_currency": currency, **extra},
            headers={"Authorization": f"Bearer {owner_key}"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return TenantHandle(slug, body["api_key"], body["tenant"])

    return factory


@pytest.fixture
def owner_headers(owner_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {owner_key}"}




logging.getLogger("pgserver").setLevel(logging.WARNING)


# ----------------------------------------------------------------------------- processes


def _wait_http(url: str, process: "subprocess.Popen[bytes]", timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def start_paymesh(args: list[str], env: dict[str, str], log_name: str) -> "subprocess.Popen[bytes]":
    """A real ``paymesh`` process (API, worker, scheduler) with its output in a log file."""
    log_dir = TEST_DATA / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{log_name}-{worker_tag()}.log", "ab")  # noqa: SIM115
    binary = str(Path(sys.executable).parent / "paymesh")
    return subprocess.Popen([binary, *args], env={**os.environ, **env}, stdout=log,
                            stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def stop_process(process: "subprocess.Popen[bytes]", sig: int = signal.SIGTERM,
                 grace: float = 20) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="session")
def live_api(platform: dict[str, str]) -> Iterator[str]:
    """The API as a real uvicorn process on ``PAYMESH_PUBLIC_URL`` (webhooks, pages)."""
    base = platform["PAYMESH_PUBLIC_URL"]
    process = start_paymesh(["run", "--port", platform["PAYMESH_PORT"]], {}, "api")
    try:
        _wait_http(f"{base}/readyz", process)
        yield base
    finally:
        stop_process(process)


@pytest.fixture
def start_worker(platform: dict[str, str]) -> Iterator[object]:
    """Starts real Dramatiq worker processes; all are stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def factory(threads: int = 4, env: dict[str, str] | None = None) -> "subprocess.Popen[bytes]":
        process = start_paymesh(["worker", "--processes", "1", "--threads", str(threads)],
                                env or {}, "worker")
        started.append(process)
        return process

    yield factory
    for process in started:  # workers are disposable: a short grace, then SIGKILL
        stop_process(process, grace=5)

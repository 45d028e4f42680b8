"""The servers a bench run needs: Postgres, Redis, the owner database and the API process.

Embedded Postgres and Redis live under ``./.paymesh/bench/`` (wiped at the start of each
run) unless ``PAYMESH_BENCH_DATABASE_URL`` / ``PAYMESH_BENCH_REDIS_URL`` are set; on a real
server the bench only creates and drops databases whose names start with ``paymesh_bench_``.
Every child process is started by this module, recorded with its start time in
``bench.pid`` (so a crashed run's leftovers can be recognised and stopped by pid), and
stopped by pid at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import pg

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".paymesh" / "bench"
PIDFILE = "bench.pid"

OWNER_DB = "paymesh_bench_owner"
TEMPLATE_DB = "paymesh_bench_template"
PGBENCH_DB = "paymesh_bench_pgbench"
TENANT_PREFIX = "paymesh_bench_t_"
REF_PREFIX = "paymesh_bench_ref_"
OUR_DATABASES = (OWNER_DB, TEMPLATE_DB, PGBENCH_DB)
OUR_PREFIXES = (TENANT_PREFIX, REF_PREFIX)

#: Server settings of the API process, identical for every row (printed under the table).
SERVER_SETTINGS: dict[str, str] = {
    "PAYMESH_MAX_TENANT_CONNECTIONS": "40",
    "PAYMESH_TENANT_POOL_SIZE": "5",
    "PAYMESH_OWNER_POOL_SIZE": "10",
    "PAYMESH_TENANT_ENGINE_IDLE_SECONDS": "300",
    "PAYMESH_LOG_LEVEL": "WARNING",
    # the webhook limit is counted (its cost is in the ingest row) but never reached
    "PAYMESH_WEBHOOK_RATE_LIMIT": "10000000",
    # outgoing webhooks may target the bench's loopback receiver (the outgoing delivery
    # row); the request forgery guard still resolves and checks every address
    "PAYMESH_WEBHOOK_ALLOW_PRIVATE": "1",
}

log = logging.getLogger("bench")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


#: Paymesh's own packages and modules (what an installed wheel would hold compiled).
SOURCES = ("core", "owner", "tenant", "providers", "workers", "app.py", "cli.py", "demo.py")


def compile_sources() -> None:
    """Byte-compile Paymesh's sources up front, as installing a wheel does.

    With ``PYTHONDONTWRITEBYTECODE`` set (some shells and CI images set it) imports never
    cache bytecode, so every process the bench starts (each worker row spawns two) would
    compile every module again: that is start-up, not Paymesh, being measured.
    """
    import compileall

    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            compileall.compile_dir(path, quiet=1)
        elif path.exists():
            compileall.compile_file(path, quiet=1)


def free_port() -> int:
    from core.embedded import free_port as _free_port

    return _free_port()


# ----------------------------------------------------------------------------- processes


@dataclass
class Child:
    """A child process this run started (own session, so Ctrl-C reaches us first)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)

    def log_tail(self, chars: int = 1500) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class PidFile:
    """``bench.pid``: this run's pid and its children (pid + start time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.children: list[dict[str, Any]] = []

    def check_and_clean_stale(self) -> None:
        """Refuse if another run is alive; stop the children of a dead run (by pid)."""
        import psutil

        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        owner = data.get("pid")
        if owner and owner != os.getpid() and _create_time(owner) == data.get("create_time"):
            raise SystemExit(f"another bench run is active (pid {owner}); wait for it or stop it")
        for child in reversed(data.get("children", [])):  # API before Redis and Postgres
            if _create_time(child["pid"]) != child.get("create_time"):
                continue  # gone, or the pid was reused by something else
            say(f"stopping {child['name']} (pid {child['pid']}) left by a crashed bench run")
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(child["pid"])
                proc.send_signal(signal.SIGINT if child["name"] == "postgres" else signal.SIGTERM)
                try:
                    proc.wait(20)
                except psutil.TimeoutExpired:
                    proc.kill()

    def add(self, name: str, pid: int) -> None:
        self.children.append({"name": name, "pid": pid, "create_time": _create_time(pid)})
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({
            "pid": os.getpid(), "create_time": _create_time(os.getpid()),
            "children": self.children,
        }))

    def remove(self) -> None:
        """Remove the file if this process wrote it: a run refused because another is
        active must not take that run's file away (the next run would then start on top
        of it and delete its data directory)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if data.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def wait_http(url: str, child: Child, *, seconds: float = 60) -> None:
    """Poll ``url`` until it answers 200 (bounded); fail early if the child exits."""
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited with {child.popen.returncode}:\n"
                               f"{child.log_tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer {url} within {seconds:.0f} s ({last}):\n"
                       f"{child.log_tail()}")


# ----------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    keep_data: bool = False
    server_url: str = ""               # maintenance database (postgres) of the server
    redis_url: str = ""
    embedded_pg: Any = None
    embedded_redis: Any = None
    api: Child | None = None
    api_url: str = ""
    api_env: dict[str, str] = field(default_factory=dict)
    owner_key: str = ""
    master_key: str = ""
    external_pg: bool = False
    external_redis: bool = False
    pidfile: PidFile = field(default_factory=lambda: PidFile(BENCH_DIR / PIDFILE))
    children: list[Child] = field(default_factory=list)

    # -- paths
    @property
    def logs_dir(self) -> Path:
        return BENCH_DIR / "logs"

    @property
    def pgbench(self) -> Path:
        """``pgbench`` from the Postgres build pgserver ships (also used for a real server)."""
        if self.embedded_pg is not None:
            return self.embedded_pg.bin_dir / "pgbench"
        from pgserver._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH) / "pgbench"

    @property
    def owner_url(self) -> str:
        return pg.with_database(self.server_url, OWNER_DB)

    # -- start
    async def start(self) -> None:
        self.pidfile.check_and_clean_stale()
        if BENCH_DIR.exists():
            shutil.rmtree(BENCH_DIR)
        BENCH_DIR.mkdir(parents=True)
        self.logs_dir.mkdir()
        self.pidfile.write()
        self._start_servers()
        await self._prepare_owner()
        compile_sources()
        self.start_api()

    def _start_servers(self) -> None:
        from core.embedded import EmbeddedPostgres, EmbeddedRedis

        db_url = os.environ.get("PAYMESH_BENCH_DATABASE_URL")
        redis_url = os.environ.get("PAYMESH_BENCH_REDIS_URL")
        if db_url:
            self.external_pg, self.server_url = True, pg.with_database(db_url, "postgres")
            say("Postgres: PAYMESH_BENCH_DATABASE_URL")
        else:
            say("starting embedded Postgres under ./.paymesh/bench/pg")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning
                logging.getLogger("pgserver").setLevel(logging.WARNING)
                self.embedded_pg = EmbeddedPostgres.start(BENCH_DIR / "pg")
            self.server_url = self.embedded_pg.url
            # the postmaster's pid from its own pid file (EmbeddedPostgres may have restarted it)
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid_line = (BENCH_DIR / "pg" / "postmaster.pid").read_text().splitlines()[0]
                self.pidfile.add("postgres", int(pid_line))
        if redis_url:
            self.external_redis, self.redis_url = True, redis_url
            say("Redis: PAYMESH_BENCH_REDIS_URL")
        else:
            self.embedded_redis = EmbeddedRedis.start(BENCH_DIR / "redis", persist=False)
            self.redis_url = self.embedded_redis.url
            self.pidfile.add("redis", self.embedded_redis.process.pid)

    async def _prepare_owner(self) -> None:
        """A fresh owner database, migrated, seeded, with the default cluster and owner key."""
        from core import migrate
        from core.audit import Actor
        from core.crypto import generate_key
        from core.runtime import Runtime
        from core.settings import Settings
        from owner.catalog.seed import seed_catalog
        from owner.keys.service import issue
        from owner.tenants.service import ensure_default_cluster

        async with pg.connect(self.server_url) as conn:
            dropped = await pg.drop_databases(conn, names=OUR_DATABASES, prefixes=OUR_PREFIXES)
            if dropped:
                say(f"dropped {dropped} database(s) left by an earlier bench run")
            await conn.execute(f"CREATE DATABASE {pg.quote_ident(OWNER_DB)}")
        await migrate.upgrade(self.owner_url, "owner")
        self.master_key = generate_key()
        settings = Settings(database_url=self.owner_url, redis_url=self.redis_url,
                            master_keys=(self.master_key,), data_dir=BENCH_DIR / "data",
                            template_db=TEMPLATE_DB, tenant_db_prefix=TENANT_PREFIX)
        runtime = Runtime.create(settings)
        try:
            async with runtime.owner_session() as session:
                await seed_catalog(session)
                await ensure_default_cluster(session, self.server_url)
            async with runtime.owner_session() as session:
                _, self.owner_key = await issue(session, kind="owner", tenant_id=None,
                                                name="bench", actor=Actor.system("bench"))
        finally:
            await runtime.close()

    def start_api(self) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        (BENCH_DIR / "data").mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}
        env.update(SERVER_SETTINGS)
        env.update({
            "PAYMESH_DATABASE_URL": self.owner_url,
            "PAYMESH_REDIS_URL": self.redis_url,
            "PAYMESH_MASTER_KEYS": self.master_key,
            "PAYMESH_TEMPLATE_DB": TEMPLATE_DB,
            "PAYMESH_TENANT_DB_PREFIX": TENANT_PREFIX,
            # its own data dir, so a demo's runtime.env or master.key never leaks in
            "PAYMESH_DATA_DIR": str(BENCH_DIR / "data"),
            "PAYMESH_HOST": "127.0.0.1",
            "PAYMESH_PORT": str(port),
            "PAYMESH_PUBLIC_URL": self.api_url,
            "PYTHONUNBUFFERED": "1",
        })
        self.api_env = env
        binary = Path(sys.executable).parent / "paymesh"
        if not binary.exists():
            binary = ROOT / ".venv" / "bin" / "paymesh"
        self.api = self.spawn("api", [str(binary), "run", "--host", "127.0.0.1",
                                      "--port", str(port)], env=env)
        wait_http(f"{self.api_url}/healthz", self.api, seconds=90)
        wait_http(f"{self.api_url}/readyz", self.api, seconds=30)
        say(f"API up (pid {self.api.pid}) on {self.api_url}")

    def spawn(self, name: str, args: list[str], *, env: dict[str, str] | None = None) -> Child:
        log_path = self.logs_dir / f"{name}.log"
        out = log_path.open("ab")
        try:
            popen = subprocess.Popen(args, cwd=ROOT, env=env or os.environ.copy(),
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        child = Child(name=name, popen=popen, log_path=log_path)
        self.children.append(child)
        self.pidfile.add(name, popen.pid)
        return child

    # -- stop
    async def close(self) -> None:
        """Stop everything this run started; drop its databases on a real server."""
        for child in reversed(self.children):
            if child.alive():
                say(f"stopping {child.name} (pid {child.pid})")
                child.stop()
        if self.external_pg and self.server_url:
            with contextlib.suppress(Exception):
                async with pg.connect(self.server_url) as conn:
                    n = await pg.drop_databases(conn, names=OUR_DATABASES, prefixes=OUR_PREFIXES)
                    say(f"dropped {n} bench database(s) on the configured server")
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
        if self.embedded_pg is not None:
            say("stopping embedded Postgres")
            with contextlib.suppress(Exception):
                self.embedded_pg.stop()
            with contextlib.suppress(Exception):  # de-register pgserver's exit handler
                self.embedded_pg.server.cleanup()
        if not self.keep_data and self.embedded_pg is not None:
            say("removing ./.paymesh/bench/pg (--keep-data keeps it)")
            shutil.rmtree(BENCH_DIR / "pg", ignore_errors=True)
        # last: until the data directory is gone, a new run must wait (it would start by
        # deleting the same directory under this one)
        self.pidfile.remove()

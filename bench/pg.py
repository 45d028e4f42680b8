"""Postgres helpers: admin connections, ``pgbench``, and the connection/RSS monitor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import asyncpg

BENCH_APP_NAME = "paymesh-bench"


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextlib.asynccontextmanager
async def connect(url: str, database: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    """One autocommit connection (asyncpg has no implicit transaction)."""
    dsn = with_database(url, database) if database else url
    conn = await asyncpg.connect(dsn, timeout=15,
                                 server_settings={"application_name": BENCH_APP_NAME})
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 10)


async def drop_database(conn: asyncpg.Connection, name: str) -> None:
    await conn.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


async def recreate_database(conn: asyncpg.Connection, name: str) -> None:
    """An empty database ``name`` (dropped first if a crashed run left one)."""
    await drop_database(conn, name)
    await conn.execute(f"CREATE DATABASE {quote_ident(name)}")


async def drop_databases(conn: asyncpg.Connection, *, names: tuple[str, ...] = (),
                         prefixes: tuple[str, ...] = ()) -> int:
    found = [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")]
    doomed = [n for n in found if n in names or any(n.startswith(p) for p in prefixes)]
    for name in doomed:
        await drop_database(conn, name)
    return len(doomed)


async def create_from_template(conn: asyncpg.Connection, name: str, template: str,
                               *, attempts: int = 20) -> tuple[float, int]:
    """``CREATE DATABASE name TEMPLATE template``: seconds of the successful statement, retries."""
    for attempt in range(attempts):
        t0 = time.perf_counter()
        try:
            await conn.execute(f"CREATE DATABASE {quote_ident(name)} "
                               f"TEMPLATE {quote_ident(template)}")
            return time.perf_counter() - t0, attempt
        except asyncpg.ObjectInUseError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def database_counters(url: str, prefix: str) -> dict[str, float]:
    """``pg_stat_database`` counters summed over databases named ``prefix…``.

    Backends report them with their other statistics, i.e. within about a second (at once
    when they disconnect), so deltas over a multi-second load are close, not exact.
    """
    async with connect(url) as conn:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(sessions), 0) AS sessions, "
            "coalesce(sum(xact_commit), 0) AS xact_commit, "
            "coalesce(sum(xact_rollback), 0) AS xact_rollback "
            "FROM pg_stat_database WHERE starts_with(datname, $1)", prefix)
    return {k: float(v) for k, v in row.items()}


# ----------------------------------------------------------------------------- pgbench


@dataclass
class PgbenchResult:
    mode: str
    tps: float
    latency_ms: float | None
    transactions: int
    failed: int
    clients: int
    threads: int
    seconds: int
    command: str


def libpq_args(url: str) -> tuple[list[str], dict[str, str]]:
    """``-h -p -U`` arguments and ``PGPASSWORD`` for a ``postgresql://`` URL."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
    port = query.get("port", [str(parts.port or 5432)])[0]
    args = ["-h", host, "-p", port, "-U", unquote(parts.username or "postgres")]
    env = {"PGPASSWORD": unquote(parts.password)} if parts.password else {}
    return args, env


async def _run(args: list[str], env: dict[str, str], timeout: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, **env, "PGAPPNAME": BENCH_APP_NAME})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed (exit {proc.returncode}): {text[-800:]}")
    return text


async def pgbench_init(binary: Path, url: str, database: str, scale: int = 1) -> None:
    conn_args, env = libpq_args(url)
    await _run([str(binary), *conn_args, "-i", "-q", "-s", str(scale), database], env, 600)


async def pgbench_run(binary: Path, url: str, database: str, *, mode: str, clients: int,
                      threads: int, seconds: int) -> PgbenchResult:
    """``mode``: ``"-S"`` (select only) or ``"-N"`` (simple update)."""
    conn_args, env = libpq_args(url)
    args = [str(binary), *conn_args, mode, "-c", str(clients), "-j", str(threads),
            "-T", str(seconds), database]
    text = await _run(args, env, seconds + 120)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text)
    if tps is None:
        raise RuntimeError(f"could not read pgbench output: {text[-800:]}")
    latency = re.search(r"latency average = ([\d.]+) ms", text)
    done = re.search(r"number of transactions actually processed: (\d+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    shown = " ".join(["pgbench", mode, "-c", str(clients), "-j", str(threads), "-T",
                      str(seconds), "<scratch db>"])
    return PgbenchResult(
        mode=mode, tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else None,
        transactions=int(done.group(1)) if done else 0,
        failed=int(failed.group(1)) if failed else 0,
        clients=clients, threads=threads, seconds=seconds, command=shown,
    )


# ----------------------------------------------------------------------------- monitor


@dataclass
class MonitorStats:
    samples: int = 0
    peak_tenant_connections: int = 0
    peak_paymesh_connections: int = 0
    peak_rss_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Monitor(threading.Thread):
    """Polls ``pg_stat_activity`` and the API's RSS every ``interval`` seconds.

    Tenant connections = backends with ``application_name = 'paymesh'`` on a database whose
    name starts with the bench tenant prefix. Bounded: stops after ``max_seconds`` anyway.
    """

    QUERY = """
        SELECT count(*) FILTER (WHERE starts_with(datname, $1)) AS tenant,
               count(*) AS total
        FROM pg_stat_activity WHERE application_name = 'paymesh'
    """

    def __init__(self, url: str, tenant_prefix: str, pid: int | None, *,
                 interval: float = 0.1, max_seconds: float = 3600) -> None:
        super().__init__(name="bench-monitor", daemon=True)
        self.url, self.prefix, self.pid = url, tenant_prefix, pid
        self.interval, self.max_seconds = interval, max_seconds
        self.stats = MonitorStats()
        self._stop_event = threading.Event()
        self._ready = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            self.stats.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        import psutil

        proc = psutil.Process(self.pid) if self.pid else None
        start = time.monotonic()
        async with connect(self.url) as conn:
            self._ready.set()
            while not self._stop_event.is_set() and time.monotonic() - start < self.max_seconds:
                row = await conn.fetchrow(self.QUERY, self.prefix)
                st = self.stats
                st.samples += 1
                st.peak_tenant_connections = max(st.peak_tenant_connections, row["tenant"])
                st.peak_paymesh_connections = max(st.peak_paymesh_connections, row["total"])
                if proc is not None:
                    with contextlib.suppress(Exception):
                        st.peak_rss_bytes = max(st.peak_rss_bytes, tree_rss(proc))
                await asyncio.sleep(self.interval)
        self.stats.seconds = time.monotonic() - start

    def __enter__(self) -> Monitor:
        self.start()
        self._ready.wait(20)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_event.set()
        self.join(10)


def tree_rss(proc: object) -> int:
    """RSS of a process and its children, bytes."""
    import psutil

    assert isinstance(proc, psutil.Process)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total

"""What every row gets: the profile (sizes, durations), the servers and API helpers."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.load import Generator, LoadResult, LoadSpec
from bench.reference_app import UVICORN_SETTINGS
from bench.stack import Child, Stack, free_port, say, wait_http


@dataclass(frozen=True)
class Profile:
    quick: bool
    duration_s: float          # one measured load
    warmup_s: float            # warm-up load before each measurement (not recorded)
    connections: int = 64
    threads: int = 2
    provision_count: int = 15  # sequential tenant creations timed (and bare clones)
    spread_tenants: int = 1000
    setup_concurrency: int = 8  # tenants created at a time when it is setup, not measured
    pgbench_seconds: int = 10
    pgbench_clients: int = 8
    pgbench_threads: int = 2

    @classmethod
    def make(cls, *, quick: bool, duration: float | None = None,
             tenants: int | None = None) -> Profile:
        if quick:
            base = cls(quick=True, duration_s=3, warmup_s=1, provision_count=5,
                       spread_tenants=50, pgbench_seconds=3)
        else:
            base = cls(quick=False, duration_s=10, warmup_s=2)
        changes: dict[str, Any] = {}
        if duration is not None:
            changes.update(duration_s=duration, pgbench_seconds=max(1, round(duration)))
        if tenants is not None:
            changes["spread_tenants"] = tenants
        return dataclasses.replace(base, **changes)


@dataclass
class Tenant:
    slug: str
    key: str


@dataclass
class Context:
    profile: Profile
    stack: Stack
    generator: Generator
    #: values rows share (``ref.litestar``: LoadResult, ``ref.pgbench``: dict of TPS)
    values: dict[str, Any] = field(default_factory=dict)
    #: per-row raw figures for the JSON file
    details: dict[str, Any] = field(default_factory=dict)
    tenants: list[Tenant] = field(default_factory=list)
    #: exact commands behind the figures (printed under the table), e.g. the wrk line
    commands: list[str] = field(default_factory=list)
    _client: httpx.AsyncClient | None = None
    _slugs: itertools.count = field(default_factory=lambda: itertools.count(1))
    _t0: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self._t0
        print(f"[bench {int(elapsed // 60):02d}:{int(elapsed % 60):02d}] {message}",
              file=sys.stderr, flush=True)

    # -- API
    @property
    def api(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
            self._client = httpx.AsyncClient(base_url=self.stack.api_url, timeout=120,
                                             limits=limits)
        return self._client

    @property
    def owner_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.owner_key}"}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def create_tenant(self) -> tuple[Tenant, float]:
        """``POST /v1/owner/tenants``; returns the tenant and the request's wall seconds."""
        slug = f"bench-{next(self._slugs):05d}"
        body = {"slug": slug, "name": f"Bench tenant {slug}", "default_currency": "USD"}
        t0 = time.perf_counter()
        resp = await self.api.post("/v1/owner/tenants", json=body, headers=self.owner_headers)
        seconds = time.perf_counter() - t0
        if resp.status_code != 201:
            raise RuntimeError(f"creating tenant {slug} answered {resp.status_code}: "
                               f"{resp.text[:300]}")
        tenant = Tenant(slug=slug, key=resp.json()["api_key"])
        self.tenants.append(tenant)
        return tenant, seconds

    async def ensure_tenants(self, count: int) -> list[Tenant]:
        """At least ``count`` tenants exist (setup: bounded concurrency, progress, deadline)."""
        missing = count - len(self.tenants)
        if missing > 0:
            self.log(f"provisioning {missing} tenant(s), {self.profile.setup_concurrency} "
                     f"at a time (setup, not measured)")
            gate = asyncio.Semaphore(self.profile.setup_concurrency)
            done = 0
            started = time.monotonic()
            last_report = started

            async def one() -> None:
                nonlocal done, last_report
                async with gate:
                    await self.create_tenant()
                done += 1
                if time.monotonic() - last_report > 10 or done == missing:
                    last_report = time.monotonic()
                    self.log(f"  {done}/{missing} tenants ({last_report - started:.0f} s)")

            deadline = max(300.0, missing * 5.0)  # bounded: far above the expected time
            async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
                for _ in range(missing):
                    group.create_task(one())
        return self.tenants[:count]

    async def touch(self, tenants: list[Tenant], path: str = "/v1/providers") -> int:
        """GET ``path`` once per tenant (bounded concurrency); returns how many answered 200."""
        gate = asyncio.Semaphore(self.profile.setup_concurrency)
        ok = 0

        async def one(t: Tenant) -> None:
            nonlocal ok
            async with gate:
                resp = await self.api.get(path, headers={"Authorization": f"Bearer {t.key}"})
                ok += resp.status_code == 200

        async with asyncio.timeout(max(120.0, len(tenants) * 1.0)), \
                asyncio.TaskGroup() as group:
            for t in tenants:
                group.create_task(one(t))
        return ok

    def note_command(self, command: str) -> None:
        if command not in self.commands:
            self.commands.append(command)

    def api_rss(self) -> int:
        import psutil

        from bench.pg import tree_rss

        assert self.stack.api is not None
        return tree_rss(psutil.Process(self.stack.api.pid))

    # -- load
    async def measure(self, spec: LoadSpec, *, label: str | None = None,
                      server_pid: int | None = None,
                      probe: Callable[[], Awaitable[dict[str, float]]] | None = None,
                      warmup_spec: LoadSpec | None = None) -> LoadResult:
        """A warm-up load (discarded, kept as ``result.warmup``), then the measured one.

        ``warmup_spec`` (default: ``spec``) lets a row warm up on other requests, e.g. on
        other unique webhook ids so the measured load never replays one.

        ``server_pid`` (default: the API) is watched for CPU time during the measured load;
        ``probe`` (counters, e.g. from ``pg_stat_database``) is read before and after it and
        the deltas land in ``result.probes``.
        """
        label = label or spec.name
        warm: LoadResult | None = None
        if self.profile.warmup_s > 0:
            self.log(f"{label}: warm-up {self.profile.warmup_s:g} s")
            warm = await self.generator.run(warmup_spec or spec, self.profile.warmup_s)
        self.log(f"{label}: measuring {self.profile.duration_s:g} s "
                 f"({self.generator.name}, {self.profile.connections} connections)")
        pid = server_pid or (self.stack.api.pid if self.stack.api else None)
        before: dict[str, float] = {}
        if probe:
            await asyncio.sleep(1.5)  # let the warm-up's statistics land before reading
            before = await probe()
        cpu_before = _cpu_seconds(pid)
        result = await self.generator.run(spec, self.profile.duration_s)
        cpu_after = _cpu_seconds(pid)
        if probe:
            await asyncio.sleep(1.5)  # idle backends flush their statistics within ~1 s
            after = await probe()
            result.probes = {k: after[k] - before.get(k, 0.0) for k in after}
        if cpu_before is not None and cpu_after is not None:
            result.server_cpu_s = cpu_after - cpu_before
        result.warmup = warm
        self.log(f"{label}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.1f} ms"
                 + (f", {result.cpu_text()}" if result.server_cpu_s is not None else "")
                 + (f", errors: {result.error_text()}" if result.error_count else ""))
        return result

    @contextlib.asynccontextmanager
    async def reference_app(self, module: str = "bench.reference_app",
                            env: dict[str, str] | None = None
                            ) -> AsyncIterator[tuple[str, int]]:
        """Serve :mod:`bench.reference_app` (or another reference ``module`` taking
        ``--port``; same uvicorn settings as the API) for a while."""
        port = free_port()
        args = [sys.executable, "-m", module, "--port", str(port)]
        name = module.rpartition(".")[2].replace("_", "-")
        child: Child = self.stack.spawn(name, args, env={**os.environ, **(env or {})})
        try:
            base = f"http://127.0.0.1:{port}"
            await asyncio.to_thread(wait_http, f"{base}/healthz", child, seconds=60)
            say(f"{name} up (pid {child.pid}, uvicorn {UVICORN_SETTINGS})")
            yield base, child.pid
        finally:
            child.stop()


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process and its children."""
    import psutil

    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return total
    except psutil.Error:
        return None

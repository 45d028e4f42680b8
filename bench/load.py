"""HTTP load: ``wrk`` driven by generated Lua scripts, or a bounded asyncio fallback.

A :class:`LoadSpec` is a list of requests replayed round-robin (each wrk thread starts at
its own offset, so a list of 1,000 tenant keys is spread evenly). The requests are
pre-formatted as raw HTTP/1.1 bytes into a data file that the Lua script reads once per
thread; any number of requests (say 100,000 unique signed webhooks) fits. Rows that need
dependent requests can pass their own Lua source instead (``LoadSpec.lua``) as long as it
keeps the ``done`` function of :data:`LUA_DONE` (that is how figures come back). A custom
script may define ``bench_extra()`` (in the main Lua state, where ``done`` runs) returning a
JSON object as a string; it lands in :attr:`LoadResult.extra` (per-kind counters, statuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

WRK_TIMEOUT_S = 30  # per request; wrk's default (2 s) would drop slow requests from p99


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def raw(self, host: str) -> bytes:
        headers = {"Host": host, **self.headers}
        if self.body is not None or self.method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(self.body or b""))
        head = f"{self.method} {self.path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        ) + "\r\n"
        return head.encode("latin-1") + (self.body or b"")


@dataclass
class LoadSpec:
    """What to send. ``requests`` are replayed round-robin for the whole duration."""

    name: str
    base_url: str                       # http://127.0.0.1:<port>
    requests: list[Request]
    lua: str | None = None              # a custom wrk script (must keep LUA_DONE's output)
    #: the wrk script written for this spec (kept on the spec itself: a cache keyed by
    #: ``id(spec)`` handed a freed spec's script to the next spec at the same address)
    script: Path | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        host = urlsplit(self.base_url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"bench loads target loopback only, not {host!r}")
        if not self.requests and self.lua is None:
            raise ValueError("a load needs at least one request")


@dataclass
class LoadResult:
    name: str
    generator: str
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    connections: int
    threads: int
    #: CPU seconds the server process spent during the measured load (when watched)
    server_cpu_s: float | None = None
    #: deltas of counters read before and after the measured load (``Context.measure``)
    probes: dict[str, float] = field(default_factory=dict)
    #: what a custom Lua script's ``bench_extra()`` reported (wrk only)
    extra: dict[str, object] = field(default_factory=dict)
    #: the discarded warm-up load before this one (``Context.measure``)
    warmup: LoadResult | None = None

    @property
    def server_cpu_percent(self) -> float | None:
        """Server CPU as % of one core over the load (100 = one core saturated)."""
        if self.server_cpu_s is None or not self.duration_s:
            return None
        return 100 * self.server_cpu_s / self.duration_s

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return 1000 * self.server_cpu_s / self.requests

    def cpu_text(self) -> str:
        if self.server_cpu_s is None:
            return ""
        return (f"server CPU {self.server_cpu_percent:.0f}% of a core, "
                f"{self.server_cpu_ms_per_request:.2f} ms/request")

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def error_text(self) -> str:
        bad = {k: v for k, v in self.errors.items() if v}
        return ", ".join(f"{v} {k}" for k, v in bad.items())

    @property
    def ok_responses(self) -> int:
        """Completed responses below 400 (wrk counts ≥ 400 as ``status`` errors)."""
        return self.requests - self.errors.get("status", 0)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["warmup"] = self.warmup.as_dict() if self.warmup else None
        return {**data, "server_cpu_percent": self.server_cpu_percent,
                "server_cpu_ms_per_request": self.server_cpu_ms_per_request}


# ----------------------------------------------------------------------------- wrk

LUA_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_us":%d,"requests":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  if bench_extra then
    io.write("BENCHEXTRA " .. bench_extra() .. "\n")
  end
end
"""

LUA_ROUND_ROBIN = r"""
-- generated by bench/load.py: replay pre-formatted requests round-robin
local DATA_FILE = %(data_file)s
local THREADS = %(threads)d
local reqs = {}
local idx = 0
local counter = 0

function setup(thread)
  thread:set("thread_no", counter)
  counter = counter + 1
end

function init(args)
  local f = assert(io.open(DATA_FILE, "rb"))
  local blob = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #blob do
    local nl = string.find(blob, "\n", pos, true)
    local len = tonumber(string.sub(blob, pos, nl - 1))
    reqs[#reqs + 1] = string.sub(blob, nl + 1, nl + len)
    pos = nl + len + 1
  end
  local share = math.floor(#reqs / THREADS)
  idx = ((thread_no or 0) * share) %% #reqs
end

function request()
  idx = idx %% #reqs + 1
  return reqs[idx]
end
"""


def lua_string(value: str) -> str:
    """A Lua string literal (3-digit decimal escapes for anything unusual)."""
    out = []
    for byte in value.encode():
        if 32 <= byte < 127 and byte not in (34, 92):
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


class Generator:
    """Base class: ``run(spec, seconds)`` → :class:`LoadResult`."""

    name = "?"
    description = "?"

    def __init__(self, *, connections: int, threads: int, workdir: Path) -> None:
        self.connections = connections
        self.threads = threads
        self.workdir = workdir

    async def run(self, spec: LoadSpec, seconds: float) -> LoadResult:  # pragma: no cover
        raise NotImplementedError


class WrkGenerator(Generator):
    name = "wrk"

    def __init__(self, binary: str, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.binary = binary
        self.version = _wrk_version(binary)
        self.description = f"{self.version} ({self.connections} connections, " \
                           f"{self.threads} threads, Lua scripts)"
        self._written = 0

    def _script(self, spec: LoadSpec) -> Path:
        if spec.script is not None:
            return spec.script
        stem = re.sub(r"[^a-z0-9_-]+", "_", spec.name.lower()) + f"_{self._written}"
        self._written += 1
        script = self.workdir / f"{stem}.lua"
        if spec.lua is not None:
            script.write_text(spec.lua + "\n" + LUA_DONE)
        else:
            host = urlsplit(spec.base_url).netloc
            data = self.workdir / f"{stem}.data"
            with data.open("wb") as out:
                for req in spec.requests:
                    raw = req.raw(host)
                    out.write(f"{len(raw)}\n".encode() + raw)
            script.write_text(LUA_ROUND_ROBIN % {"data_file": lua_string(data.name),
                                                 "threads": self.threads} + LUA_DONE)
        spec.script = script
        return script

    async def run(self, spec: LoadSpec, seconds: float) -> LoadResult:
        script = self._script(spec)
        seconds = max(1, round(seconds))
        args = [self.binary, "-t", str(self.threads), "-c", str(self.connections),
                "-d", f"{seconds}s", "--timeout", f"{WRK_TIMEOUT_S}s", "-s", script.name,
                spec.base_url.rstrip("/") + "/"]
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), seconds + WRK_TIMEOUT_S + 30)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(proc.wait(), 5)
        text = out.decode(errors="replace")
        match = re.search(r"^BENCHJSON (\{.*\})$", text, re.M)
        if proc.returncode != 0 or match is None:
            raise RuntimeError(f"wrk failed (exit {proc.returncode}): "
                               f"{(err.decode(errors='replace') or text)[-800:]}")
        data = json.loads(match.group(1))
        extra_match = re.search(r"^BENCHEXTRA (\{.*\})$", text, re.MULTILINE)
        extra = json.loads(extra_match.group(1)) if extra_match else {}
        duration = data["duration_us"] / 1e6
        return LoadResult(
            name=spec.name, generator=self.name, duration_s=duration,
            requests=data["requests"], rps=data["requests"] / duration if duration else 0.0,
            p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000, max_ms=data["max_us"] / 1000,
            errors={k: data[k] for k in ("connect", "read", "write", "status", "timeout")},
            connections=self.connections, threads=self.threads, extra=extra,
        )


def _wrk_version(binary: str) -> str:
    with contextlib.suppress(Exception):
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).splitlines()[0]
        match = re.match(r"(wrk \S+)", first)
        if match:
            return match.group(1)
    return "wrk"


# ----------------------------------------------------------------------------- asyncio fallback


class ResponseError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; returns (status, server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise ResponseError(f"bad status line {lines[0][:80]!r}") from exc
    length, chunked, close = None, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    elif length is None and status not in (204, 304) and not 100 <= status < 200:
        close = True  # body until EOF: not worth supporting, reconnect
    return status, close


class AsyncioGenerator(Generator):
    """``connections`` asyncio tasks, one keep-alive connection each, in this process.

    Sends the same pre-formatted bytes wrk would. Slower than wrk (Python shares the two
    cores with the server), so its figures can be generator-bound; the table says which
    generator produced them. (httpx was tried first: 1.7 ms of client CPU per request and
    ~60 req/s at 64 connections here, i.e. it measured itself, not the server.)
    """

    name = "asyncio"
    MAX_SAMPLES = 2_000_000

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.description = (f"asyncio raw HTTP/1.1 fallback ({self.connections} connections, "
                            f"in-process; may be generator-bound)")

    async def run(self, spec: LoadSpec, seconds: float) -> LoadResult:
        if spec.lua is not None:
            raise RuntimeError(f"load {spec.name!r} needs wrk (custom Lua script)")
        target = urlsplit(spec.base_url)
        host, port = target.hostname or "127.0.0.1", target.port or 80
        raws = [req.raw(target.netloc) for req in spec.requests]
        n = len(raws)
        latencies: list[float] = []
        errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
        start = time.perf_counter()
        deadline = start + seconds

        async def worker(k: int) -> None:
            idx = (k * max(1, n // self.connections)) % n
            writer: asyncio.StreamWriter | None = None
            reader: asyncio.StreamReader | None = None
            try:
                while time.perf_counter() < deadline and len(latencies) < self.MAX_SAMPLES:
                    if writer is None:
                        try:
                            reader, writer = await asyncio.wait_for(
                                asyncio.open_connection(host, port), 5)
                        except (OSError, asyncio.TimeoutError):
                            errors["connect"] += 1
                            await asyncio.sleep(0.05)
                            continue
                    assert reader is not None
                    raw = raws[idx]
                    idx = (idx + 1) % n
                    t0 = time.perf_counter()
                    try:
                        async with asyncio.timeout(WRK_TIMEOUT_S):
                            writer.write(raw)
                            await writer.drain()
                            status, close = await read_response(reader)
                    except TimeoutError:
                        errors["timeout"] += 1
                        close = True
                    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                            ResponseError, ValueError):
                        errors["read"] += 1
                        close = True
                    else:
                        latencies.append(time.perf_counter() - t0)
                        if status > 399:
                            errors["status"] += 1
                    if close:
                        writer.close()
                        writer = reader = None
            finally:
                if writer is not None:
                    writer.close()

        async with asyncio.timeout(seconds + WRK_TIMEOUT_S + 30), asyncio.TaskGroup() as group:
            for k in range(self.connections):
                group.create_task(worker(k))
        duration = time.perf_counter() - start
        latencies.sort()

        def pct(p: float) -> float:
            if not latencies:
                return 0.0
            rank = min(len(latencies) - 1, math.ceil(p / 100 * len(latencies)) - 1)
            return latencies[rank] * 1000

        return LoadResult(
            name=spec.name, generator=self.name, duration_s=duration, requests=len(latencies),
            rps=len(latencies) / duration if duration else 0.0, p50_ms=pct(50), p90_ms=pct(90),
            p99_ms=pct(99), max_ms=latencies[-1] * 1000 if latencies else 0.0, errors=errors,
            connections=self.connections, threads=1,
        )


# ----------------------------------------------------------------------------- choice


def find_wrk(*, install: bool, log: object = print) -> str | None:
    """``wrk`` on PATH; if missing and we are root with apt-get, install it once."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return None
    log("wrk is missing: running 'apt-get install -y wrk' once")  # type: ignore[operator]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in ([apt, "install", "-y", "wrk"], [apt, "update"], [apt, "install", "-y", "wrk"]):
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if args[1] == "install" and done.returncode == 0:
            return shutil.which("wrk")
    print(f"apt-get could not install wrk: {done.stderr[-300:]}", file=sys.stderr)
    return None


def make_generator(choice: str, *, connections: int, threads: int, workdir: Path,
                   log: object = print) -> Generator:
    if choice in ("auto", "wrk"):
        binary = find_wrk(install=True, log=log)
        if binary:
            return WrkGenerator(binary, connections=connections, threads=threads, workdir=workdir)
        if choice == "wrk":
            raise SystemExit("wrk is not installed (Debian package 'wrk') and could not be "
                             "installed; use --generator asyncio")
        log("wrk unavailable: falling back to the asyncio generator")  # type: ignore[operator]
    return AsyncioGenerator(connections=connections, threads=threads, workdir=workdir)

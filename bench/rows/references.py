"""References every later row compares with: the framework ceiling and the database ceiling."""

from __future__ import annotations

from bench import pg
from bench.context import Context
from bench.load import LoadSpec, Request
from bench.reference_app import SAMPLE_BODY
from bench.registry import Line, row
from bench.stack import PGBENCH_DB


@row("references", title="References (Litestar JSON POST, pgbench)", issue=2)
async def references(ctx: Context) -> list[Line]:
    """Plain Litestar JSON POST (req/s, p99) and pgbench -S / -N TPS on the same Postgres."""
    # (a) framework ceiling: same uvicorn settings as the API, same load shape as API rows
    async with ctx.reference_app() as (base_url, pid):
        spec = LoadSpec("litestar JSON POST", base_url, [
            Request("POST", "/echo", {"Content-Type": "application/json"}, SAMPLE_BODY),
        ])
        litestar = await ctx.measure(spec, server_pid=pid)
    ctx.values["ref.litestar"] = litestar

    # (b) database ceiling: a scratch pgbench database on the very server tenants live on
    p = ctx.profile
    async with pg.connect(ctx.stack.server_url) as conn:
        await pg.recreate_database(conn, PGBENCH_DB)
    try:
        ctx.log("pgbench: init -s 1")
        await pg.pgbench_init(ctx.stack.pgbench, ctx.stack.server_url, PGBENCH_DB, scale=1)
        results = {}
        for mode in ("-S", "-N"):
            ctx.log(f"pgbench {mode}: warm-up 1 s, then {p.pgbench_seconds} s")
            await pg.pgbench_run(ctx.stack.pgbench, ctx.stack.server_url, PGBENCH_DB, mode=mode,
                                 clients=p.pgbench_clients, threads=p.pgbench_threads, seconds=1)
            results[mode] = await pg.pgbench_run(
                ctx.stack.pgbench, ctx.stack.server_url, PGBENCH_DB, mode=mode,
                clients=p.pgbench_clients, threads=p.pgbench_threads, seconds=p.pgbench_seconds)
            ctx.log(f"pgbench {mode}: {results[mode].tps:,.0f} TPS")
    finally:
        async with pg.connect(ctx.stack.server_url) as conn:
            await pg.drop_database(conn, PGBENCH_DB)
    ctx.values["ref.pgbench"] = {"select_only_tps": results["-S"].tps,
                                 "simple_update_tps": results["-N"].tps}
    ctx.details["references"] = {
        "litestar": litestar.as_dict(),
        "pgbench": {m: vars(r) for m, r in results.items()},
    }

    shape = f"{p.connections} conns"
    bad = litestar.error_count > 0
    note = "; ".join(x for x in (
        f"load errors: {litestar.error_text()}" if bad else "", litestar.cpu_text()) if x)
    pgb = f"-c {p.pgbench_clients} -j {p.pgbench_threads} -T {p.pgbench_seconds}"
    return [
        Line("ref: Litestar JSON POST throughput", litestar.rps, "req/s", kind="reference",
             reference_label=shape, note=note, valid=not bad),
        Line("ref: Litestar JSON POST p99", litestar.p99_ms, "ms", kind="reference",
             reference_label=shape),
        Line("ref: pgbench -S (select only)", results["-S"].tps, "TPS", kind="reference",
             reference_label=pgb),
        Line("ref: pgbench -N (simple update)", results["-N"].tps, "TPS", kind="reference",
             reference_label=pgb),
    ]

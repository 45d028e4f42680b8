"""Provisioning: a tenant through the API vs a bare ``CREATE DATABASE … TEMPLATE``."""

from __future__ import annotations

import statistics

from bench import pg
from bench.context import Context
from bench.registry import Line, Target, row
from bench.stack import REF_PREFIX, TEMPLATE_DB


@row("provisioning", title="Tenant provisioning", issue=2)
async def provisioning(ctx: Context) -> list[Line]:
    """Median seconds per ``POST /v1/owner/tenants`` (sequential) vs a bare template clone."""
    n = ctx.profile.provision_count
    # warm-up: the first creation creates and migrates the template; the second is warm
    ctx.log("provisioning: warm-up (2 API creations, 1 bare clone)")
    for _ in range(2):
        await ctx.create_tenant()
    api_s: list[float] = []
    bare_s: list[float] = []
    retries = 0
    names = [f"{REF_PREFIX}{i:04d}" for i in range(n + 1)]
    try:
        async with pg.connect(ctx.stack.server_url) as conn:
            await pg.create_from_template(conn, names[0], TEMPLATE_DB)
            ctx.log(f"provisioning: {n} × (API create, bare clone), alternating")
            for i in range(n):  # alternate so drift on a noisy box hits both sides alike
                _, seconds = await ctx.create_tenant()
                api_s.append(seconds)
                seconds, again = await pg.create_from_template(conn, names[i + 1], TEMPLATE_DB)
                bare_s.append(seconds)
                retries += again
    finally:
        async with pg.connect(ctx.stack.server_url) as conn:
            await pg.drop_databases(conn, prefixes=(REF_PREFIX,))

    api_median, bare_median = statistics.median(api_s), statistics.median(bare_s)
    ctx.log(f"provisioning: API median {api_median:.3f} s, bare clone median "
            f"{bare_median:.3f} s")
    ctx.details["provisioning"] = {
        "count": n, "api_seconds": api_s, "bare_clone_seconds": bare_s,
        "bare_clone_retries": retries, "api_median": api_median, "bare_median": bare_median,
    }
    note = (f"API {min(api_s):.3f}–{max(api_s):.3f} s, bare {min(bare_s):.3f}–"
            f"{max(bare_s):.3f} s over {n} each")
    return [
        Line(f"provisioning: median s/tenant (API vs CREATE DATABASE TEMPLATE, n={n})",
             api_median, "s", reference=bare_median, reference_label="bare clone",
             target=Target("<=", 2.0), note=note),
    ]

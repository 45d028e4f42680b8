"""Tenant spread: a cheap tenant read spread over N tenants vs the same load on one."""

from __future__ import annotations

from bench.context import Context, Tenant
from bench.load import LoadResult, LoadSpec, Request
from bench.pg import Monitor, database_counters
from bench.registry import Line, Target, row
from bench.stack import SERVER_SETTINGS, TENANT_PREFIX

PATH = "/v1/providers"
RSS_LIMIT_MB = 250.0


def _spec(ctx: Context, name: str, tenants: list[Tenant]) -> LoadSpec:
    return LoadSpec(name, ctx.stack.api_url, [
        Request("GET", PATH, {"Authorization": f"Bearer {t.key}", "Accept": "application/json"})
        for t in tenants
    ])


@row("spread", title="Tenant spread", issue=2)
async def spread(ctx: Context) -> list[Line]:
    """GET /v1/providers round-robin over N tenant keys vs one key (measured before and
    after; the faster counts); connections; API RSS."""
    n = ctx.profile.spread_tenants
    cap = int(SERVER_SETTINGS["PAYMESH_MAX_TENANT_CONNECTIONS"])
    tenants = await ctx.ensure_tenants(n)
    assert ctx.stack.api is not None

    async def counters() -> dict[str, float]:
        return await database_counters(ctx.stack.server_url, TENANT_PREFIX)

    one = await ctx.measure(_spec(ctx, "one tenant", tenants[:1]), label="spread: 1 tenant",
                            probe=counters)
    rss_one = ctx.api_rss()

    # everything from here on is watched: connections to tenant databases and API RSS
    with Monitor(ctx.stack.server_url, TENANT_PREFIX, ctx.stack.api.pid) as monitor:
        ctx.log(f"spread: touching all {n} tenants once ({PATH})")
        ok = await ctx.touch(tenants, PATH)
        rss_touched = ctx.api_rss()
        many = await ctx.measure(_spec(ctx, f"{n} tenants", tenants),
                                 label=f"spread: {n} tenants round-robin", probe=counters)
        rss_after = ctx.api_rss()
        # the one-tenant load again, after: whatever the setup left running (collections,
        # the server settling) must not make the reference look slow
        again = await ctx.measure(_spec(ctx, "one tenant", tenants[:1]),
                                  label="spread: 1 tenant again", probe=counters)
    if again.rps > one.rps:
        one, again = again, one
    stats = monitor.stats
    ctx.log(f"spread: peak tenant connections {stats.peak_tenant_connections} (cap {cap}), "
            f"RSS {rss_after / 2**20:.0f} MB ({stats.samples} samples)")

    ctx.details["spread"] = {
        "tenants": n, "touched_ok": ok, "one": one.as_dict(), "one_other_run": again.as_dict(),
        "spread": many.as_dict(),
        "rss_bytes": {"after_one_tenant_load": rss_one, "after_touching_all": rss_touched,
                      "after_spread_load": rss_after, "peak_sampled": stats.peak_rss_bytes},
        "connections": {"cap": cap, "peak_tenant": stats.peak_tenant_connections,
                        "peak_all_paymesh": stats.peak_paymesh_connections,
                        "samples": stats.samples, "monitor_seconds": stats.seconds,
                        "monitor_errors": stats.errors},
    }

    def errors_note(result: LoadResult, label: str) -> str:
        return f"{label}: {result.error_text()}" if result.error_count else ""

    def per_request(result: LoadResult) -> str:
        """Evidence from the server: new tenant-DB sessions and transactions per request."""
        c, n_req = result.probes, result.requests
        if not c or not n_req:
            return ""
        return (f"per request ≈{c['sessions'] / n_req:.2f} new tenant-DB sessions, "
                f"≈{c['xact_commit'] / n_req:.2f} commits + "
                f"≈{c['xact_rollback'] / n_req:.2f} rollbacks")

    valid = one.error_count == 0 and again.error_count == 0 and many.error_count == 0 \
        and ok == n
    notes = [x for x in (f"{n} tenants: {many.cpu_text()}; {per_request(many)}",
                         f"1 tenant (the faster of two loads, before and after; the other "
                         f"{again.rps:,.0f} req/s): {one.cpu_text()}; {per_request(one)}",
                         errors_note(one, "1-tenant load errors"),
                         errors_note(many, f"{n}-tenant load errors"),
                         f"only {ok}/{n} tenants answered 200 when touched" if ok != n else "")
             if x]
    monitor_ok = not stats.errors and stats.samples > 0
    mb = 2**20
    return [
        Line(f"spread: {PATH} req/s, {n} tenants vs 1", many.rps, "req/s",
             reference=one.rps, reference_label="1 tenant", target=Target(">=", 0.7),
             valid=valid, note="; ".join(notes)),
        Line(f"spread: {PATH} p99, {n} tenants vs 1", many.p99_ms, "ms",
             reference=one.p99_ms, reference_label="1 tenant", kind="info"),
        Line(f"spread: peak tenant-DB connections vs cap ({stats.samples} samples)",
             float(stats.peak_tenant_connections), "conns", reference=float(cap),
             reference_label="cap", target=Target("<=", 1.0, label="≤ cap"),
             valid=monitor_ok,
             note=f"monitor: {'; '.join(stats.errors)}" if stats.errors else
                  f"all paymesh backends incl. owner DB peaked at "
                  f"{stats.peak_paymesh_connections}"),
        Line(f"spread: API RSS after touching all {n} tenants", rss_after / mb, "MB",
             reference=rss_one / mb, reference_label="after 1-tenant load",
             target=Target("<=", RSS_LIMIT_MB, on="figure", label=f"≤ {RSS_LIMIT_MB:g} MB"),
             note=f"RSS right after the touch pass {rss_touched / mb:.0f} MB, sampled peak "
                  f"{stats.peak_rss_bytes / mb:.0f} MB"),
    ]

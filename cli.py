"""The ``paymesh`` command line (composition root, beside :mod:`app`)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from core.settings import MASTER_KEY_FILE, RUNTIME_ENV, get_settings, reset_settings

T = TypeVar("T")


def run_async(fn: Callable[..., Awaitable[T]], *args: Any, **kw: Any) -> T:
    return asyncio.run(fn(*args, **kw))


def _require_database() -> None:
    """One line saying what is missing and how to fix it, instead of a traceback."""
    settings = get_settings()
    if not settings.database_url:
        raise click.ClickException(
            f"PAYMESH_DATABASE_URL is not set and no running demo was found "
            f"({settings.data_dir / RUNTIME_ENV}); start `make run` (or `paymesh demo`) in "
            "another terminal, or set PAYMESH_DATABASE_URL"
        )
    if not settings.master_keys:
        raise click.ClickException(
            "PAYMESH_MASTER_KEYS is not set and no demo key was found "
            f"({settings.data_dir / MASTER_KEY_FILE}); set PAYMESH_MASTER_KEYS "
            "(a key: `paymesh crypto generate-key`)"
        )


async def _with_runtime(body: Callable[[Any], Awaitable[T]]) -> T:
    from core.redis import close_redis
    from core.runtime import set_runtime
    from workers.runtime import build_runtime

    _require_database()
    settings = get_settings()
    runtime = build_runtime(settings)
    set_runtime(runtime)
    try:
        return await body(runtime)
    except OSError as exc:  # nothing listens there: say so in one line, not a traceback
        from core.settings import _local_defaults

        left = _local_defaults(settings.data_dir).get("PAYMESH_DATABASE_URL")
        hint = (f"the URLs came from {settings.data_dir / RUNTIME_ENV}: is the demo still "
                "running? start `make run`" if left and left == settings.database_url
                else "check PAYMESH_DATABASE_URL and PAYMESH_REDIS_URL")
        raise click.ClickException(f"cannot connect ({exc.strerror or exc}); {hint}") from exc
    finally:
        await runtime.close()
        await close_redis()
        set_runtime(None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Paymesh: a multi-tenant payment platform."""


# ----------------------------------------------------------------------------- serving


@cli.command()
@click.option("--host", default=None, help="Bind address (PAYMESH_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (PAYMESH_PORT, default 8000).")
@click.option("--workers", type=int, default=1, show_default=True, help="Uvicorn processes.")
def run(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP API."""
    import uvicorn

    _require_database()
    settings = get_settings()
    uvicorn.run("app:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers, log_level="warning",
                access_log=False, lifespan="on",
                proxy_headers=False)  # X-Forwarded-For: PAYMESH_TRUSTED_PROXIES


@cli.command()
@click.option("--no-worker", is_flag=True, help="Do not start the worker and scheduler.")
def demo(no_worker: bool) -> None:
    """Start everything locally (embedded Postgres/Redis unless configured) with demo data."""
    from demo import main

    main(start_workers=not no_worker)


#: Messages a worker process takes from Redis ahead of its threads, per thread. Dramatiq's
#: default (2) keeps the window so short that its consumer thread, finding it full, backs
#: off (5 ms and up) while the worker threads run dry.
PREFETCH_PER_THREAD = 32


@cli.command()
@click.option("--processes", type=int, default=1, show_default=True)
@click.option("--threads", type=int, default=8, show_default=True)
def worker(processes: int, threads: int) -> None:
    """Run Dramatiq workers (webhook events, sandbox deliveries, notifications)."""
    # read by dramatiq.worker when it is imported (below, and never before in this command)
    os.environ.setdefault("dramatiq_queue_prefetch", str(PREFETCH_PER_THREAD * threads))
    _require_database()
    # a worker process imports everything before it takes a message: collecting garbage
    # meanwhile is wasted work (workers.broker turns the collector back on once booted)
    os.register_at_fork(after_in_child=gc.disable)
    # a worker process dies with the main process, even a SIGKILLed one (`paymesh demo`
    # restarts the main process: orphans would go on consuming beside the new ones). By
    # SIGKILL: an orphan's graceful stop could hang for good (its log pipe has no reader
    # left but inherited copies of the read end, so a full pipe blocks its writes), and
    # what it was doing is redone anyway (unacked messages are redelivered, effects are
    # idempotent). A normal stop reaches the worker processes through the main process
    # first (SIGTERM, graceful), which waits for them before it exits.
    from core.embedded import die_with_parent

    os.register_at_fork(after_in_child=die_with_parent(signal.SIGKILL))
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    # in this process, not a new interpreter: the worker processes are forked from it
    args = make_argument_parser().parse_args([
        "workers.actors", "--processes", str(processes), "--threads", str(threads)])
    sys.exit(dramatiq_main(args))


@cli.command()
@click.option("--once", is_flag=True, help="Run every job once now and exit.")
@click.option("--job", "jobs", multiple=True, help="With --once: only these jobs.")
def scheduler(once: bool, jobs: tuple[str, ...]) -> None:
    """Run the periodic jobs (one active scheduler at a time, by a Redis lock)."""
    from workers.scheduler import run_forever, run_once

    if once:
        for result in run_async(_with_runtime, lambda rt: run_once(rt, set(jobs) or None)):
            click.echo(f"{result['job']}: {result['count']}"
                       + (f" ({len(result['failed'])} tenant(s) failed)" if result["failed"]
                          else ""))
        return
    try:
        run_async(_with_runtime, run_forever)
    except KeyboardInterrupt:
        pass


@cli.command()
@click.option("--tenant", "tenant_slug", default=None, help="Only this tenant.")
def reconcile(tenant_slug: str | None) -> None:
    """Ask providers about payments still pending and apply what they say."""
    from workers.scheduler import JOBS, active_tenants

    job = next(j for j in JOBS if j.name == "reconcile")

    async def body(runtime: Any) -> int:
        total = 0
        for tenant in await active_tenants(runtime):
            if tenant_slug in (None, tenant.slug):
                total += await job.run(runtime, tenant)
        return total

    click.echo(f"reconciled {run_async(_with_runtime, body)} payment(s)")


@cli.group()
def webhooks() -> None:
    """The webhook inbox."""


@webhooks.command("replay")
@click.option("--tenant", "tenant_slug", required=True)
@click.option("--status", default="dead", show_default=True,
              type=click.Choice(["dead", "failed", "received", "processed"]))
@click.option("--event", "event_ids", multiple=True, help="Only these event ids.")
def webhooks_replay(tenant_slug: str, status: str, event_ids: tuple[str, ...]) -> None:
    """Put inbox events back in the queue (their effects are idempotent)."""
    import uuid as _uuid

    from core.audit import Actor
    from owner.tenants.service import lookup
    from tenant.webhooks.service import replay

    try:
        ids = [_uuid.UUID(e) for e in event_ids]
    except ValueError as exc:
        raise click.BadParameter(f"not an event id: {exc}", param_hint="--event") from exc

    async def body(runtime: Any) -> int:
        tenant = await lookup(runtime, slug=tenant_slug)
        if tenant is None:
            raise click.ClickException(f"tenant '{tenant_slug}' not found or suspended")
        events, _ = await replay(runtime, tenant, Actor.system("cli"), event_ids=ids,
                                 status=status)
        return len(events)

    click.echo(f"replayed {run_async(_with_runtime, body)} event(s)")


@cli.group()
def coupons() -> None:
    """Coupons and the sync of their provider-side discounts."""


@coupons.command("resync")
@click.option("--tenant", "tenant_slug", required=True)
@click.option("--coupon", "coupon_id", default=None, help="Only this coupon's redemptions.")
@click.option("--order", "order_ids", multiple=True, help="Only these orders' redemptions.")
def coupons_resync(tenant_slug: str, coupon_id: str | None, order_ids: tuple[str, ...]) -> None:
    """Replay failed provider-discount syncs (fresh tries; the recorded intent keeps a
    replay from lowering the provider's cap twice)."""
    import uuid as _uuid

    from core.audit import Actor
    from owner.tenants.service import lookup
    from tenant.coupons.sync import replay

    try:
        coupon = _uuid.UUID(coupon_id) if coupon_id else None
    except ValueError as exc:
        raise click.BadParameter(f"not a coupon id: {exc}", param_hint="--coupon") from exc
    try:
        orders = [_uuid.UUID(o) for o in order_ids] or None
    except ValueError as exc:
        raise click.BadParameter(f"not an order id: {exc}", param_hint="--order") from exc

    async def body(runtime: Any) -> tuple[int, bool]:
        tenant = await lookup(runtime, slug=tenant_slug)
        if tenant is None:
            raise click.ClickException(f"tenant '{tenant_slug}' not found or suspended")
        ids, queued = await replay(runtime, tenant, Actor.system("cli"), coupon_id=coupon,
                                   order_ids=orders)
        return len(ids), queued

    count, queued = run_async(_with_runtime, body)
    note = "" if queued or not count else " (broker unreachable: the scheduler will send them)"
    click.echo(f"replayed {count} coupon sync(s){note}")


# ----------------------------------------------------------------------------- database


@cli.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the owner database, every server's template and every tenant database."""
    from owner.tenants.maintenance import upgrade_all

    failures = run_async(_with_runtime, upgrade_all)
    if failures:
        click.echo(f"{len(failures)} failure(s); the rest was migrated:", err=True)
        for slug, error in failures:
            click.echo(f"  {slug}: {error}", err=True)
        sys.exit(1)


# ----------------------------------------------------------------------------- catalog


@cli.group()
def catalog() -> None:
    """The owner's provider catalog."""


@catalog.command("seed")
def catalog_seed() -> None:
    """Insert the built-in providers and currencies (never overwrites owner edits)."""
    from owner.catalog.seed import seed_catalog

    async def body(runtime: Any) -> int:
        async with runtime.owner_session() as session:
            return await seed_catalog(session)

    click.echo(f"catalog seeded: {run_async(_with_runtime, body)} row(s) added")


# ----------------------------------------------------------------------------- tenants


@cli.group()
def tenants() -> None:
    """Tenant registry and provisioning."""


@tenants.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="Display name.")
@click.option("--currency", "currency", default="USD", show_default=True,
              help="Default ISO-4217 currency.")
@click.option("--cluster", default=None, help="Database server name (default: least loaded).")
def tenants_create(slug: str, name: str, currency: str, cluster: str | None) -> None:
    """Create a tenant and its database; prints its first admin key once."""
    from core.audit import Actor
    from core.errors import PaymeshError
    from owner.tenants.service import provision

    async def body(runtime: Any) -> tuple[Any, str]:
        return await provision(runtime, slug=slug, name=name, default_currency=currency,
                               cluster=cluster, actor=Actor.system("cli"))

    try:
        tenant, key = run_async(_with_runtime, body)
    except PaymeshError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"tenant {tenant.slug} created (database {tenant.db_name})", err=True)
    click.echo(key)


@tenants.command("list")
def tenants_list() -> None:
    """List tenants with status and server."""
    from owner.tenants.service import all_tenants

    async def body(runtime: Any) -> list[tuple[str, str, str, str]]:
        async with runtime.owner_session() as session:
            return [(t.slug, t.status, t.cluster.name, t.name) for t in await all_tenants(session)]

    for slug, status, cluster, name in run_async(_with_runtime, body):
        click.echo(f"{slug:<32} {status:<12} {cluster:<16} {name}")


def _set_status(slug: str, status: str) -> None:
    from core.audit import Actor
    from core.errors import PaymeshError
    from owner.tenants.service import set_status

    async def body(runtime: Any) -> None:
        async with runtime.owner_session() as session:
            await set_status(session, slug, status, Actor.system("cli"))

    try:
        run_async(_with_runtime, body)
    except PaymeshError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"tenant {slug} is {status}")


@tenants.command("suspend")
@click.argument("slug")
def tenants_suspend(slug: str) -> None:
    """Suspend a tenant: every request and webhook gets 403; data is kept."""
    _set_status(slug, "suspended")


@tenants.command("activate")
@click.argument("slug")
def tenants_activate(slug: str) -> None:
    """Re-activate a suspended tenant."""
    _set_status(slug, "active")


@cli.group()
def clusters() -> None:
    """Postgres servers that host tenant databases."""


@clusters.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--max-tenants", type=int, default=None)
def clusters_add(name: str, url: str, max_tenants: int | None) -> None:
    """Register a server by its postgresql:// URL (maintenance database)."""
    from core.audit import Actor
    from owner.tenants.service import add_cluster

    from core.errors import PaymeshError

    async def body(runtime: Any) -> None:
        async with runtime.owner_session() as session:
            await add_cluster(session, name, url, Actor.system("cli"), max_tenants)

    try:
        run_async(_with_runtime, body)
    except PaymeshError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"cluster {name} added")


# ----------------------------------------------------------------------------- keys


@cli.group()
def keys() -> None:
    """API keys (stored only as hashes)."""


@keys.command("create")
@click.option("--owner", "is_owner", is_flag=True, help="An owner key.")
@click.option("--tenant", "tenant_slug", default=None, help="A key for this tenant.")
@click.option("--name", default="cli", show_default=True)
def keys_create(is_owner: bool, tenant_slug: str | None, name: str) -> None:
    """Create a key and print only the key on stdout."""
    from core.audit import Actor
    from owner.keys.service import issue
    from owner.tenants.service import get_by_slug

    if is_owner == bool(tenant_slug):
        raise click.UsageError("give exactly one of --owner or --tenant SLUG")

    async def body(runtime: Any) -> str:
        async with runtime.owner_session() as session:
            tenant_id = (await get_by_slug(session, tenant_slug)).id if tenant_slug else None
            _, raw = await issue(session, kind="owner" if is_owner else "tenant",
                                 tenant_id=tenant_id, name=name, actor=Actor.system("cli"))
            return raw

    from core.errors import PaymeshError

    try:
        click.echo(run_async(_with_runtime, body))
    except PaymeshError as exc:
        raise click.ClickException(exc.message) from exc


@keys.command("revoke")
@click.argument("key_id_or_prefix")
def keys_revoke(key_id_or_prefix: str) -> None:
    """Revoke a key by id or visible prefix."""
    from core.audit import Actor
    from core.errors import PaymeshError
    from owner.keys.service import revoke

    async def body(runtime: Any) -> str:
        async with runtime.owner_session() as session:
            return (await revoke(session, key_id_or_prefix, actor=Actor.system("cli"))).prefix

    try:
        click.echo(f"revoked {run_async(_with_runtime, body)}")
    except PaymeshError as exc:
        raise click.ClickException(exc.message) from exc


# ----------------------------------------------------------------------------- crypto


@cli.group()
def crypto() -> None:
    """Master keys and envelope encryption."""


@crypto.command("generate-key")
def crypto_generate_key() -> None:
    """Print a new random master key (base64)."""
    from core.crypto import generate_key

    click.echo(generate_key())


@crypto.command("rotate-master-key")
def crypto_rotate() -> None:
    """Rewrap every tenant data key with the newest key of PAYMESH_MASTER_KEYS.

    Put the new key first in PAYMESH_MASTER_KEYS (keep the old ones after it), run this,
    then drop the old keys once every process has the new list.
    """
    from owner.tenants.maintenance import rotate_master_key

    count = run_async(_with_runtime, rotate_master_key)
    click.echo(f"rewrapped {count} tenant data key(s)")


def main() -> None:  # pragma: no cover - console entry
    reset_settings()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()

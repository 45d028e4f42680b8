"""A crash is contained: stale Redis connections are retried, the demo supervisor
restarts a crashed child and leaves none behind when it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis
from sqlalchemy import text

from core.db import autocommit_connection, with_database
from core.embedded import free_port
from tests.conftest import ROOT, worker_tag
from tests.workers.helpers import open_order, sandbox_shop

pytestmark = pytest.mark.asyncio


async def test_a_checkout_after_redis_dropped_every_connection_succeeds(
        client, make_tenant, redis_url):
    """Redis restarting (or dropping its clients) leaves dead sockets in the pool: the
    first command on one is retried on a fresh connection instead of failing."""
    tenant = await sandbox_shop(client, make_tenant, "stale")
    await open_order(client, tenant)  # the pool now holds connections
    admin = redis.Redis.from_url(redis_url)
    try:
        killed = admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    finally:
        admin.close()
    assert killed >= 1
    for amount in (1_100, 1_200, 1_300):  # each asserts a 201 checkout
        await open_order(client, tenant, amount=amount)


def _until(predicate, timeout: float, what: str):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _child(demo: psutil.Process, command: str) -> psutil.Process | None:
    """The demo's ``paymesh <command>`` child (a script: ``python …/paymesh command``)."""
    for child in demo.children():
        try:
            args = child.cmdline()
        except psutil.Error:
            continue
        for i, arg in enumerate(args[:-1]):
            if arg.endswith("/paymesh") and args[i + 1] == command:
                return child
    return None


async def test_demo_restarts_a_killed_worker_and_leaves_no_child_when_stopped(
        platform, pg_url, tmp_path: Path):
    tag = worker_tag()
    owner = f"paymesh_owner_{tag}_demo"
    async with autocommit_connection(pg_url) as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{owner}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{owner}"'))
    port = free_port()
    env = {**os.environ,
           "PAYMESH_DATABASE_URL": with_database(pg_url, owner),
           "PAYMESH_REDIS_URL": "",  # the demo starts its own embedded Redis
           "PAYMESH_TENANT_DB_PREFIX": f"pmt_{tag}_demo_",
           "PAYMESH_DATA_DIR": str(tmp_path / "data"),
           "PAYMESH_PORT": str(port), "PAYMESH_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen([str(Path(sys.executable).parent / "paymesh"), "demo"],
                                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    tree: list[psutil.Process] = []
    try:
        _until(lambda: demo.poll() is not None or b"Paymesh is running" in log_path.read_bytes(),
               240, "the demo to start")
        assert demo.poll() is None, log_path.read_text()
        parent = psutil.Process(demo.pid)
        worker = _child(parent, "worker")
        assert worker is not None and _child(parent, "run") is not None
        tree = parent.children(recursive=True)
        worker.kill()  # SIGKILL: its own worker processes die with it
        restarted = _until(lambda: (c := _child(parent, "worker")) and c.pid != worker.pid
                           and c, 60, "the worker to be restarted")
        assert f"worker (pid {worker.pid}) exited" in log_path.read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        assert b"Paymesh is running" in log_path.read_bytes()
        _until(lambda: restarted.children(), 60, "the new worker's processes")
        tree = [*tree, *parent.children(recursive=True)]
        demo.send_signal(signal.SIGTERM)
        demo.wait(90)
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert alive == [], [p.pid for p in alive]
        stop_log = log_path.read_text().split("[paymesh] stopping", 1)[1]
        assert "CRITICAL" not in stop_log, stop_log
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
        for process in tree:
            try:
                process.kill()
            except psutil.Error:
                pass
        async with autocommit_connection(pg_url) as conn:
            names = (await conn.execute(text(
                "SELECT datname FROM pg_database WHERE datname LIKE :p"),
                {"p": f"pmt\\_{tag}\\_demo\\_%"})).scalars().all()
            for name in [*names, owner]:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

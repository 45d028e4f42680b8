"""Fixtures for provider tests: provider payloads, a private localstripe, sandbox app.

Payloads are built in :mod:`tests.providers.payloads` from the documented shapes; the
``published`` variant of ``stripe_objects`` feeds the same tests Stripe's published
fixture file instead, when it is available (see :mod:`tests.providers.published`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.embedded import free_port
from tests.providers.payloads import stripe_objects as stripe_objects_built
from tests.providers.published import STRIPE_FILE, published_file
from tests.providers.sandbox_harness import sandbox  # noqa: F401  (shared fixture)

#: localstripe pickles its whole store to one hard-coded temp file on every write (TMPDIR
#: is not consulted), so this instance keeps its state in memory only: parallel runs
#: never read or clobber each other's data, and writes get faster.
_LOCALSTRIPE_BOOT = textwrap.dedent(
    """
    import sys
    from aiohttp import web
    from localstripe import resources
    resources.Store.dump_to_disk = lambda self: None
    from localstripe.server import app
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
    """
)


@pytest.fixture(scope="session", params=["built", "published"])
def stripe_objects(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One example object per Stripe resource (``event``, ``payment_intent``, ...): our
    builders, then Stripe's published fixture file (skipped when it is not available)."""
    if request.param == "built":
        return stripe_objects_built()
    path = published_file(STRIPE_FILE)
    return json.loads(path.read_text())["resources"]


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A localstripe server on loopback, private to this test session, reset at start."""
    workdir = tmp_path_factory.mktemp("localstripe")
    port = free_port()
    log = (workdir / "localstripe.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", _LOCALSTRIPE_BOOT, str(port)],
        cwd=workdir,
        env={**os.environ, "TMPDIR": str(workdir)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"localstripe did not start (exit {process.poll()}): "
                    + (workdir / "localstripe.log").read_text()[-2000:]
                )
            time.sleep(0.05)
        httpx.delete(f"{url}/_config/data", timeout=5).raise_for_status()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()

"""Fixtures for provider tests: official fixture files, a private localstripe, sandbox app.

The fixture directory sits beside the repository (``../shared/fixtures``); if it is
missing the tests fail loudly rather than skip, so a fake never drifts from the real
payloads unnoticed.
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
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.embedded import free_port
from tests.providers.sandbox_harness import sandbox  # noqa: F401  (shared fixture)

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"

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


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(
            f"provider fixture {name!r} is missing (expected in ../shared/fixtures beside "
            "the repository); provider tests need the official payloads"
        )
    return path


@pytest.fixture(scope="session")
def stripe_fixtures() -> dict[str, Any]:
    """Stripe's published example object for every resource (``resources.<name>``)."""
    return json.loads(fixture_path("stripe-fixtures3.json").read_text())["resources"]


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

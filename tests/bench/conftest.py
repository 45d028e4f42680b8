"""The bench's load generators are tested for real: ``wrk`` is installed when missing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bench.load import find_wrk


@pytest.fixture(scope="session")
def wrk_binary() -> str:
    found = find_wrk(install=True, log=lambda message: None)
    if found is None:
        pytest.fail("wrk is needed by the bench and could not be installed "
                    "(Debian package 'wrk'; install it or run as root with apt-get)")
    return found


ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serve_module(module: str, what: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``python -m module --port N`` on loopback until its /healthz answers."""
    from core.embedded import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], cwd=ROOT,
                            env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail(f"{what} did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)

"""A live Paymesh server for black-box tests: uvicorn on a free loopback port.

It runs in its own process (its own event loop, engines and Redis clients) with
``PAYMESH_PUBLIC_URL`` pointing at itself, so pay links, the sandbox gateway's hosted
page and the provider's API calls all travel over real HTTP, as in a browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def live_server(platform, client, tmp_path_factory) -> Iterator[str]:  # noqa: ANN001
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("live") / "server.log"
    env = {**os.environ, "PAYMESH_PUBLIC_URL": url, "PAYMESH_HOST": "127.0.0.1",
           "PAYMESH_PORT": str(port), "PAYMESH_LOG_LEVEL": "WARNING"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--log-level", "warning",
             "--no-proxy-headers"],  # as `paymesh run`: X-Forwarded-For is the app's call
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"live server did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

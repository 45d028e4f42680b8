"""A worker that applies webhook events starts without an HTTP client.

Every worker process imports the actors before it takes a message, and the first event
it applies builds its runtime: neither may pull in httpx (with httpcore, h11 and, through
httpx's command line, rich and pygments) nor build a TLS context from the CA bundle —
about a fifth of a worker's start-up. Only what calls out (providers, the sandbox
gateway's deliveries) makes the client, on first use.

Run in a child interpreter: this one has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import asyncio, sys
    import workers.actors, tenant.webhooks.processing
    from core.runtime import Runtime
    from core.crypto import generate_key
    from core.settings import Settings

    assert "httpx" not in sys.modules, "importing the worker pulled in httpx"
    runtime = Runtime.create(Settings(database_url="postgresql+asyncpg://u@127.0.0.1:1/x",
                                      master_keys=(generate_key(),)))
    assert "httpx" not in sys.modules, "building the runtime pulled in httpx"

    client = runtime.http                  # made on first use, then the same one
    assert runtime.http is client and not client.is_closed
    asyncio.run(runtime.close())
    assert client.is_closed
    print("ok")
""")


def test_worker_start_needs_no_http_client():
    done = subprocess.run([sys.executable, "-c", CHILD], check=False, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


DELIVERY_CHILD = textwrap.dedent("""
    import sys
    import workers.actors, tenant.outgoing.delivery, tenant.outgoing.transport

    heavy = [m for m in ("providers.registry", "polar", "stripe", "litestar")
             if m in sys.modules]
    assert not heavy, f"the outgoing delivery path imports {heavy}"
    print("ok")
""")


def test_outgoing_delivery_needs_no_provider_registry():
    """A worker's first outgoing delivery imports the signing, the tenant's data key and
    httpx, not the provider registry with the providers' SDKs (most of a second, in the
    first delivery's latency)."""
    done = subprocess.run([sys.executable, "-c", DELIVERY_CHILD], check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"

"""A tenant whose data key is wrapped by a master key the serving process lacks: checkout
answers 503 ``master_key_unavailable`` (not a 500), and the log names the missing key id.

The tenant is created and its provider configured through the session app (master key A);
the checkout goes to a separate ``paymesh run`` process given only master key B.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from core.crypto import _decode_key, _fingerprint, generate_key
from core.embedded import free_port
from tests.conftest import TEST_DATA, _wait_http, start_paymesh, stop_process, worker_tag
from tests.integration.test_orders_support import configure, order
from tests.integration.test_orders_support import gateway  # noqa: F401 - fixture

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("gateway")]


async def test_checkout_without_the_master_key_is_a_503_naming_the_key(client, make_tenant,
                                                                        platform):
    tenant = await make_tenant("nokey")
    await configure(client, tenant)  # sandbox, its secret_key encrypted under key A
    made = await order(client, tenant)
    key_a = platform["PAYMESH_MASTER_KEYS"].split(",")[0]
    key_a_id = _fingerprint(_decode_key(key_a))

    port = free_port()
    log_name = f"api-nokey-{uuid.uuid4().hex[:8]}"
    process = start_paymesh(
        ["run", "--port", str(port)],
        {"PAYMESH_MASTER_KEYS": generate_key(), "PAYMESH_PORT": str(port),
         "PAYMESH_PUBLIC_URL": f"http://127.0.0.1:{port}"},
        log_name,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz", process)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as other:
            response = await other.post(f"/v1/orders/{made['id']}/checkout", json={},
                                        headers=tenant.headers)
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "master_key_unavailable" and error["type"] == "api_error"
            assert "PAYMESH_MASTER_KEYS" in error["message"]
            assert key_a not in response.text
            # the order is untouched: still payable once the key is back
            fetched = await other.get(f"/v1/orders/{made['id']}", headers=tenant.headers)
            assert fetched.status_code == 200 and fetched.json()["payment_status"] != "pending"
    finally:
        stop_process(process)
    log = (TEST_DATA / "logs" / f"{log_name}-{worker_tag()}.log").read_text()
    named = [line for line in log.splitlines() if key_a_id in line]
    assert named and tenant.slug in named[0] and "PAYMESH_MASTER_KEYS" in named[0], log[-2000:]
    assert key_a not in log  # the key itself is never logged
    # the session app (which has key A) still checks the order out
    served = await client.post(f"/v1/orders/{made['id']}/checkout", json={},
                               headers=tenant.headers)
    assert served.status_code == 201, served.text

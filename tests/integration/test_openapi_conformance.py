"""The API answers as its OpenAPI document says (schemathesis against a live server).

Every documented operation gets a few generated requests, valid and invalid ones (a
derandomized run: the same requests every time), with the owner key on ``/v1/owner``
and a tenant's key elsewhere. Each answer must be no server error, a documented status
and content type, and match the documented schema (errors: the error object).

The server is a real ``paymesh run`` process whose outgoing HTTP goes through a proxy
that refuses every connection (``HTTP(S)_PROXY``): a provider other than the sandbox
(served by the app itself on 127.0.0.1) is simply unreachable, never the internet.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.embedded import free_port
from tests.conftest import _wait_http, start_paymesh, stop_process
from tests.workers.sandbox_events import SANDBOX_KEY

EXAMPLES = 10  # per operation and generation mode


@pytest.fixture(scope="module")
def conformance_api(platform: dict[str, str]) -> Iterator[str]:
    port = str(free_port())
    base = f"http://127.0.0.1:{port}"
    dead_proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    process = start_paymesh(["run", "--port", port], {
        "PAYMESH_PORT": port, "PAYMESH_PUBLIC_URL": base,
        "HTTP_PROXY": dead_proxy, "HTTPS_PROXY": dead_proxy, "ALL_PROXY": dead_proxy,
        "NO_PROXY": "127.0.0.1,localhost",
    }, "api-conformance")
    try:
        _wait_http(f"{base}/readyz", process)
        yield base
    finally:
        stop_process(process)


@pytest_asyncio.fixture(scope="module")
async def api_keys(client, make_tenant, owner_key) -> dict[str, str]:  # noqa: ANN001
    tenant = await make_tenant("conf")
    response = await client.put("/v1/providers/sandbox", json={"secret_key": SANDBOX_KEY},
                                headers=tenant.headers)
    assert response.status_code == 200, response.text
    product = await client.post("/v1/products", headers=tenant.headers, json={
        "name": "Widget", "kind": "physical", "price": 1000, "currency": "USD", "stock": 5})
    assert product.status_code == 201, product.text
    return {"owner": owner_key, "tenant": tenant.key}


def run_operation(operation: Any, mode: Any, base: str, headers: dict[str, str],
                  seen: set[int]) -> None:
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=60)
        seen.add(response.status_code)
        assert response.status_code < 500, (response.status_code, response.text[:500])
        case.validate_response(response, checks=[
            status_code_conformance, content_type_conformance, response_schema_conformance])

    check()


def test_every_operation_conforms_to_the_openapi_document(conformance_api,  # noqa: ANN001
                                                          api_keys) -> None:
    schema = schemathesis.openapi.from_url(f"{conformance_api}/schema/openapi.json")
    failures: list[str] = []
    operations = 0
    succeeded: list[str] = []  # operations that answered a 2xx at least once
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        key = api_keys["owner" if operation.path.startswith("/v1/owner") else "tenant"]
        headers = {"Authorization": f"Bearer {key}"}
        seen: set[int] = set()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                run_operation(operation, mode, conformance_api, headers, seen)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label
                continue  # nothing of it can be made invalid (no body, free-form strings)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all at once
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])
        if any(200 <= status < 300 for status in seen):
            succeeded.append(operation.label)
    assert operations >= 40  # the whole document was read
    # the keys work: not everything was refused (most ids in paths are random, so 404s)
    assert len(succeeded) >= 12, succeeded
    assert not failures, "\n\n".join(failures)

"""Conformance: our provider payload builders and fakes against the providers' published files.

Skipped (reason names ``PAYMESH_PROVIDER_FIXTURES``) when the files are not available; a
user's clone has only the repository. ``.ci/run`` sets the variable when the folder is
there, and then a missing file fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from providers.base import CreatePayment, InvalidProviderRequest, ProviderConfig, RefundRequest
from providers.paystack import PaystackProvider
from providers.transport import DEFAULT_TIMEOUT
from tests.providers import openapi
from tests.providers.fake_paystack import SECRET, FakePaystack
from tests.providers.payloads import (
    PAYSTACK_DUPLICATE_REFERENCE,
    PAYSTACK_NOT_FOUND,
    PAYSTACK_UNAUTHORIZED,
    stripe_objects,
)
from tests.providers.published import STRIPE_FILE, published_file

#: Answers Paystack really gives that its OpenAPI description does not list.
UNDOCUMENTED = {("GET /transaction/verify/{reference}", 400)}


def mismatches(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Fields we build that the published object lacks or types differently (a null on
    either side matches anything: Stripe documents these fields as nullable)."""
    if ours is None or theirs is None:
        return []
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found: list[str] = []
        for key, value in ours.items():
            if key not in theirs:
                found.append(f"{path}{key}: not in the published object")
            else:
                found += mismatches(value, theirs[key], f"{path}{key}.")
        return found
    if isinstance(ours, list) and isinstance(theirs, list):
        if ours and theirs:
            return mismatches(ours[0], theirs[0], f"{path}[0].")
        return []
    if type(ours) is not type(theirs):
        return [f"{path.rstrip('.')}: ours {type(ours).__name__}, "
                f"published {type(theirs).__name__}"]
    return []


def test_mismatches_finds_missing_and_retyped_fields() -> None:
    """The comparison itself can fail: a missing field and a type change are both named."""
    assert mismatches({"a": {"b": 1}}, {"a": {"b": 2}}) == []
    assert mismatches({"a": {"c": 1}}, {"a": {"b": 1}}) == ["a.c: not in the published object"]
    assert mismatches({"a": [{"b": "1"}]}, {"a": [{"b": 1}]}) == ["a.[0].b: ours str, published int"]


def test_stripe_builders_match_the_published_objects() -> None:
    published = json.loads(published_file(STRIPE_FILE).read_text())["resources"]
    problems = {
        name: found
        for name, built in stripe_objects().items()
        if (found := mismatches(built, published[name]))
    }
    assert problems == {}
    for name, built in stripe_objects().items():
        assert built["object"] == published[name]["object"], name


def test_paystack_error_bodies_are_the_documented_examples() -> None:
    assert PAYSTACK_UNAUTHORIZED == openapi.example("responses", "Unauthorized")
    assert PAYSTACK_NOT_FOUND == openapi.example("responses", "NotFound")
    assert PAYSTACK_DUPLICATE_REFERENCE == openapi.example(
        "schemas", "TransactionInitializeBadRequestModel"
    )


def response_validator(operation: str, status: int) -> Any:
    method, path = operation.split(" ", 1)
    responses = openapi.document()["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{operation} answering {status} is not documented"
    response = responses[str(status)]
    if "$ref" in response:
        response = openapi.document()["components"]["responses"][
            response["$ref"].removeprefix("#/components/responses/")
        ]
    ref = response["content"]["application/json"]["schema"]["$ref"]
    return openapi.validator(ref.removeprefix("#"))


async def test_paystack_fake_speaks_the_published_contract() -> None:
    """A whole flow through PaystackProvider and the fake: every request our provider sends
    and every answer the fake gives validates against Paystack's OpenAPI description."""
    openapi.document()  # skip early when the file is not available
    fake = FakePaystack()

    def provider(secret: str = SECRET) -> PaystackProvider:
        http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
        config = ProviderConfig(tenant="clinic", code="paystack", secret_key=secret)
        return PaystackProvider(config, http)

    order = CreatePayment(order_id="order-1", order_number="INV-0001", amount=250000,
                          currency="NGN", idempotency_key="order-1-attempt-1",
                          customer_email="ada@example.com", return_url="https://clinic.example/")
    paystack = provider()
    created = await paystack.create_payment(order)
    with pytest.raises(InvalidProviderRequest):  # a duplicate reference: a 400
        await paystack.create_payment(order)
    await paystack.fetch_payment(created.provider_payment_id)
    fake.pay(created.provider_payment_id)
    await paystack.fetch_payment(created.provider_payment_id)
    await paystack.refund(RefundRequest(provider_payment_id=created.provider_payment_id,
                                        amount=50000, currency="NGN", idempotency_key="rf-1"))
    await paystack.test_credentials()
    await provider("sk_test_wrong").test_credentials()
    with pytest.raises(InvalidProviderRequest):
        await paystack.fetch_payment("unknown-reference")
    fake(httpx.Request("GET", "https://api.paystack.co/balance/nothing",
                       headers={"authorization": f"Bearer {SECRET}"},
                       extensions={"timeout": DEFAULT_TIMEOUT.as_dict()}))

    seen = set()
    for operation, body, status, answer in fake.exchanges:
        seen.add((operation, status))
        method, path = operation.split(" ", 1)
        if body is not None and path in openapi.document()["paths"]:
            openapi.request_schema(path, method.lower()).validate(body)
        if (operation, status) in UNDOCUMENTED:
            continue
        if status == 404:  # an unknown route: Paystack's generic NotFound answer
            openapi.validator("/components/schemas/Error").validate(answer)
            continue
        response_validator(operation, status).validate(answer)
    assert {("POST /transaction/initialize", 200), ("POST /transaction/initialize", 400),
            ("GET /transaction/verify/{reference}", 200), ("POST /refund", 200),
            ("GET /balance", 200), ("GET /balance", 401), ("GET /balance/nothing", 404)} <= seen


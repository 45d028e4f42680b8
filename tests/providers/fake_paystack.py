"""A Paystack double answering in the shapes Paystack's API reference documents.

It records every exchange (operation, request body, status, answer) in ``exchanges``;
``tests/providers/test_published_contracts.py`` replays a full flow through it and
validates each request and answer against Paystack's published OpenAPI description when
that file is available, so the fake cannot drift from Paystack's contract unnoticed.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from providers.transport import DEFAULT_TIMEOUT
from tests.providers.payloads import (
    PAYSTACK_DUPLICATE_REFERENCE,
    PAYSTACK_NOT_FOUND,
    PAYSTACK_UNAUTHORIZED,
    paystack_error,
)

SECRET = "sk_test_paystack_fake"
STAMP = "2024-08-22T09:15:02.000Z"


class FakePaystack:
    """Paystack's transaction and refund endpoints, answering in the documented shapes."""

    def __init__(self) -> None:
        self.transactions: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str, Any]] = []
        self.next_id = 4099260516
        self.next_refund_id = 1234567  # each refund its own id, as Paystack gives
        #: (operation, request body, status, answer): operation is ``"METHOD /path"`` with
        #: the path as Paystack's OpenAPI description names it.
        self.exchanges: list[tuple[str, Any, int, Any]] = []

    def answer(self, operation: str, body: Any, status: int, payload: Any) -> httpx.Response:
        self.exchanges.append((operation, body, status, payload))
        return httpx.Response(status, json=payload)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions["timeout"]
        assert timeout == DEFAULT_TIMEOUT.as_dict(), "every call carries the provider timeout"
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        if request.headers.get("authorization") != f"Bearer {SECRET}":
            return self.answer(
                f"{request.method} {request.url.path}", body, 401,
                paystack_error(PAYSTACK_UNAUTHORIZED),
            )
        route = (request.method, request.url.path)
        if route == ("POST", "/transaction/initialize"):
            return self.initialize(body)
        if request.method == "GET" and (
            m := re.fullmatch(r"/transaction/verify/(.+)", request.url.path)
        ):
            return self.verify(m.group(1))
        if route == ("POST", "/refund"):
            return self.refund(body)
        if route == ("GET", "/balance"):
            return self.answer(
                "GET /balance",
                None,
                200,
                {
                    "status": True,
                    "message": "Balances retrieved",
                    "data": [{"currency": "NGN", "balance": 0}],
                },
            )
        return self.answer(
            f"{request.method} {request.url.path}", body, 404, paystack_error(PAYSTACK_NOT_FOUND)
        )

    def initialize(self, body: dict[str, Any]) -> httpx.Response:
        reference = body["reference"]
        if reference in self.transactions:
            return self.answer(
                "POST /transaction/initialize", body, 400,
                paystack_error(PAYSTACK_DUPLICATE_REFERENCE),
            )
        self.next_id += 1
        self.transactions[reference] = self.transaction(self.next_id, reference, body)
        answer = {
            "status": True,
            "message": "Authorization URL created",
            "data": {
                "authorization_url": f"https://checkout.paystack.com/{reference[:6]}access",
                "access_code": f"{reference[:6]}access",
                "reference": reference,
            },
        }
        return self.answer("POST /transaction/initialize", body, 200, answer)

    @staticmethod
    def transaction(ident: int, reference: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": ident,
            "domain": "test",
            "status": "abandoned",
            "reference": reference,
            "receipt_number": None,
            "amount": body["amount"],
            "message": None,
            "gateway_response": "The transaction was not completed",
            "paid_at": None,
            "created_at": STAMP,
            "channel": "card",
            "currency": body.get("currency", "NGN"),
            "ip_address": "197.210.54.33",
            "metadata": body.get("metadata", ""),
            "log": None,
            "fees": None,
            "fees_split": None,
            "authorization": {},
            "customer": {
                "id": 181873746,
                "first_name": None,
                "last_name": None,
                "email": body["email"],
                "customer_code": "CUS_1rkzaqsv4rrhqo6",
                "phone": None,
                "metadata": None,
                "risk_action": "default",
                "international_format_phone": None,
            },
            "plan": None,
            "split": {},
            "order_id": None,
            "paidAt": None,
            "createdAt": STAMP,
            "requested_amount": body["amount"],
            "pos_transaction_data": None,
            "source": None,
            "fees_breakdown": None,
            "connect": None,
            "transaction_date": STAMP,
            "plan_object": {},
            "subaccount": {},
        }

    def pay(self, reference: str, *, status: str = "success") -> dict[str, Any]:
        tx = self.transactions[reference]
        tx.update(
            status=status,
            gateway_response="Successful" if status == "success" else "Declined",
            paid_at=STAMP,
            paidAt=STAMP,
            fees=1500,
            authorization={
                "authorization_code": "AUTH_uh8bcl3zbn",
                "bin": "408408",
                "last4": "4081",
                "exp_month": "12",
                "exp_year": "2030",
                "channel": "card",
                "card_type": "visa ",
                "bank": "TEST BANK",
                "country_code": "NG",
                "brand": "visa",
                "reusable": True,
                "signature": "SIG_yEXu7dLBeqG0kU7g95Ke",
                "account_name": None,
                "receiver_bank_account_number": None,
                "receiver_bank": None,
            },
            log={
                "start_time": 1724318098,
                "time_spent": 4,
                "attempts": 1,
                "errors": 0,
                "success": True,
                "mobile": False,
                "input": [],
                "history": [],
            },
        )
        return tx

    def verify(self, reference: str) -> httpx.Response:
        tx = self.transactions.get(reference)
        if tx is None:
            return self.answer(
                "GET /transaction/verify/{reference}",
                None,
                400,
                {
                    "status": False,
                    "message": "Transaction reference not found",
                    "type": "validation_error",
                    "code": "transaction_not_found",
                },
            )
        answer = {"status": True, "message": "Verification successful", "data": tx}
        return self.answer("GET /transaction/verify/{reference}", None, 200, answer)

    def refund(self, body: dict[str, Any]) -> httpx.Response:
        ident, self.next_refund_id = self.next_refund_id, self.next_refund_id + 1
        tx = next(t for t in self.transactions.values() if t["reference"] == body["transaction"])
        answer = {
            "status": True,
            "message": "Refund has been queued for processing",
            "data": {
                "transaction": {
                    "id": tx["id"],
                    "domain": "test",
                    "reference": tx["reference"],
                    "amount": tx["amount"],
                    "paid_at": STAMP,
                    "channel": "card",
                    "currency": tx["currency"],
                    "authorization": {"exp_month": None, "exp_year": None, "account_name": None},
                    "customer": {"international_format_phone": None},
                    "plan": {},
                    "subaccount": {"currency": None},
                    "split": {},
                    "order_id": None,
                    "paidAt": STAMP,
                    "pos_transaction_data": None,
                    "source": None,
                    "fees_breakdown": None,
                },
                "integration": 463433,
                "deducted_amount": 0,
                "channel": None,
                "merchant_note": body.get("merchant_note", ""),
                "customer_note": body.get("customer_note", ""),
                "status": "pending",
                "refunded_by": "owner@example.com",
                "expected_at": STAMP,
                "currency": tx["currency"],
                "domain": "test",
                "amount": body.get("amount", tx["amount"]),
                "fully_deducted": False,
                "id": ident,
                "createdAt": STAMP,
                "updatedAt": STAMP,
            },
        }
        return self.answer("POST /refund", body, 200, answer)

"""The framework ceiling: a plain Litestar JSON POST endpoint, nothing else.

Served exactly like the API (``paymesh run`` → ``uvicorn.run(..., workers=1,
log_level="warning", access_log=False, lifespan="on")``, factory, loopback), so the ratio
of an API row to this reference is the cost of Paymesh on top of Litestar + uvicorn.

    python -m bench.reference_app --port 8765
"""

from __future__ import annotations

import argparse
from typing import Any

import msgspec
from litestar import Litestar, get, post


class PaymentIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    amount: int
    currency: str
    reference: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class PaymentOut(msgspec.Struct, kw_only=True):
    status: str
    amount: int
    currency: str
    reference: str


@post("/echo", status_code=200)
async def echo(data: PaymentIn) -> PaymentOut:
    """Validate a small JSON body and answer a small JSON body."""
    return PaymentOut(status="accepted", amount=data.amount, currency=data.currency.upper(),
                      reference=data.reference)


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


#: uvicorn settings of ``paymesh run`` (cli.run); ``tests/bench`` checks they still match.
UVICORN_SETTINGS: dict[str, Any] = {
    "workers": 1, "log_level": "warning", "access_log": False, "lifespan": "on",
    "proxy_headers": False,
}

#: What the load sends (similar in size to a small API write).
SAMPLE_BODY = (b'{"amount":1999,"currency":"usd","reference":"bench-0000001",'
               b'"metadata":{"order":"INV-000123","customer":"cus_42"}}')


def create_app() -> Litestar:
    return Litestar(route_handlers=[echo, healthz], debug=False, openapi_config=None)


def serve(port: int, factory: str = "bench.reference_app:create_app") -> None:
    import uvicorn

    uvicorn.run(factory, factory=True, host="127.0.0.1", port=port, **UVICORN_SETTINGS)


def main(doc: str, factory: str) -> None:
    """``python -m <module> --port N``: serve ``factory`` like the API is served."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port, factory)


if __name__ == "__main__":
    main(__doc__, "bench.reference_app:create_app")

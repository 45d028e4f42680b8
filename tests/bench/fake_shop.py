"""A tiny stand-in for the two order endpoints, to test the order_checkout Lua chain.

``POST /v1/orders`` answers 201 with an order id and ``pay_url``; ``POST
/v1/orders/{id}/checkout`` answers 201 with ``reused`` (404 for an unknown order, 409 for a
second checkout of one order). ``POST /webhooks/{tenant}/{provider}`` stores the event's
id as the inbox would (``duplicate`` for an id seen before). ``GET /stats`` tells what the
server saw.

    python -m tests.bench.fake_shop --port 8766
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from litestar import Litestar, Request, Response, get, post

STATE: dict[str, Any] = {"orders": set(), "checked_out": [], "keys": [], "bad": 0,
                         "webhooks": set()}


@post("/v1/orders", status_code=201)
async def create_order(request: Request[Any, Any, Any]) -> dict[str, Any]:
    body = await request.json()
    STATE["keys"].append(request.headers.get("idempotency-key"))
    if request.headers.get("authorization") != "Bearer key_test" or not body.get("items"):
        STATE["bad"] += 1
    order_id = str(uuid.uuid4())
    STATE["orders"].add(order_id)
    return {"id": order_id, "number": "INV-1", "total": 1999,
            "pay_url": f"http://127.0.0.1/pay/t/{order_id}",
            "items": [{"id": str(uuid.uuid4()), "product_id": body["items"][0]["product_id"]}]}


@post("/v1/orders/{order_id:str}/checkout", status_code=201)
async def checkout(request: Request[Any, Any, Any], order_id: str) -> Response[Any]:
    STATE["keys"].append(request.headers.get("idempotency-key"))
    if order_id not in STATE["orders"]:
        return Response({"error": {"code": "not_found"}}, status_code=404)
    if order_id in STATE["checked_out"]:
        return Response({"error": {"code": "conflict"}}, status_code=409)
    STATE["checked_out"].append(order_id)
    return Response({"payment": {"id": "p", "provider": "sandbox"}, "redirect_url": None,
                     "reused": False}, status_code=201)


@post("/webhooks/{tenant:str}/{provider:str}", status_code=200)
async def webhook(request: Request[Any, Any, Any], tenant: str, provider: str) -> dict[str, Any]:
    event_id = (await request.json())["id"]
    duplicate = event_id in STATE["webhooks"]
    STATE["webhooks"].add(event_id)
    return {"received": True, "duplicate": duplicate}


@get("/stats")
async def stats() -> dict[str, Any]:
    keys = STATE["keys"]
    return {"orders": len(STATE["orders"]), "checkouts": len(STATE["checked_out"]),
            "distinct_checkouts": len(set(STATE["checked_out"])), "keys": len(keys),
            "distinct_keys": len(set(keys)), "missing_keys": keys.count(None),
            "bad": STATE["bad"], "webhooks": len(STATE["webhooks"])}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[create_order, checkout, webhook, stats, healthz], debug=False,
                    openapi_config=None)


if __name__ == "__main__":
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run("tests.bench.fake_shop:create_app", factory=True, host="127.0.0.1",
                port=parser.parse_args().port, log_level="warning", access_log=False)

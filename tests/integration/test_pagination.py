"""Every list pages the same way (``page_params`` + ``core.db.fetch_page``): ``limit``
rows, and ``has_more`` exactly when a further page has rows."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.asyncio
ROOT = Path(__file__).resolve().parents[2]


async def _pages(client, path: str, headers: dict[str, str]) -> list[tuple[int, bool]]:
    """(rows, has_more) of pages 1, 2, … of ``path`` at one row a page, until the last
    (bounded: the owner's tenant list holds every tenant this test process made)."""
    seen = []
    for page in range(1, 1000):
        response = await client.get(path, params={"page": page, "limit": 1}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["page"], body["limit"]) == (page, 1)
        seen.append((len(body["data"]), body["has_more"]))
        if not body["has_more"]:
            return seen
    raise AssertionError(f"{path} never ran out of pages")


async def test_lists_page_with_has_more(client, make_tenant, owner_headers):
    tenant = await make_tenant("pages")
    for name in ("Gauze", "Swab"):
        created = await client.post(
            "/v1/products", json={"name": name, "kind": "service", "price": 120,
                                  "currency": "USD"},
            headers={**tenant.headers, "Idempotency-Key": uuid.uuid4().hex})
        assert created.status_code == 201, created.text
    assert await _pages(client, "/v1/products", tenant.headers) == [(1, True), (1, False)]
    audit = await _pages(client, "/v1/audit-log?action=product.created", tenant.headers)
    assert audit == [(1, True), (1, False)]
    owner = await _pages(client, "/v1/owner/tenants?status=active", owner_headers)
    assert owner[-1] == (1, False) and all(more for _, more in owner[:-1])
    beyond = await client.get("/v1/products", params={"page": 3, "limit": 1},
                              headers=tenant.headers)
    assert beyond.json()["data"] == [] and beyond.json()["has_more"] is False


async def test_only_fetch_page_fetches_a_page():
    """No list reads ``LIMIT limit + 1`` itself: it goes through ``core.db.fetch_page``."""
    found = []
    for package in ("core", "owner", "tenant", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
                        and getattr(node.left, "id", "") == "limit"
                        and getattr(node.right, "value", None) == 1):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [where.split(":")[0] for where in found] == ["core/db.py"], found

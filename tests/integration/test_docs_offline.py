"""The API reference pages work without internet access: every script, stylesheet and icon
they load is served by Paymesh itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

pytestmark = pytest.mark.asyncio


class _References(HTMLParser):
    """Every ``src``/``href`` of the page (script, link, img, a)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
async def test_reference_page_loads_nothing_from_another_host(client, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    urls = references(response.text)
    assert any(url.endswith(".js") for url in urls) and any(url.endswith(".css") for url in urls)
    external = [url for url in urls if re.match(r"(?i)^(https?:)?//", url)]
    assert external == [], f"{page} loads from another host: {external}"
    assert "SwaggerUIBundle(" in response.text  # the UI is initialised with our schema
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, f"{page} references {url}: {asset.status_code}"
        assert asset.content, url
    bundle = next(url for url in urls if url.endswith("swagger-ui-bundle.js"))
    served = await client.get(bundle)
    assert "javascript" in served.headers["content-type"] and b"SwaggerUIBundle" in served.content


async def test_unknown_asset_is_a_404(client) -> None:
    assert (await client.get("/schema/assets/no-such-file.js")).status_code == 404

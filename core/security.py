"""Security headers on every HTML page: the pay pages, the sandbox gateway's hosted pages
and the API documentation under ``/schema``.

Every such response gets ``Content-Security-Policy`` (with ``frame-ancestors 'none'``: no
page may be framed), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy`` and, when
the public URL is https, ``Strict-Transport-Security``.

- The pay and sandbox pages load nothing but their own inline ``<style>`` block, allowed
  by hash (:func:`style_hash`, registered with :func:`allow_inline_style`); no script.
- The documentation pages are rendered by Litestar's plugins: their policy is derived
  from the page itself (the origins of the scripts and stylesheets it loads, the hashes
  of its inline scripts), so it stays exact whether the assets are served locally
  (``'self'``) or from a CDN.

It wraps the Litestar app as a plain ASGI app, so an error page raised by a middleware
(an unknown tenant on ``/pay/…``) gets the headers too.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from litestar.types import ASGIApp, Message, Receive, Scope, Send

PAGE_PREFIXES = ("/pay/", "/sandbox/checkout/")
DOCS_PREFIX = "/schema"
_inline_styles: set[str] = set()


def style_hash(css: str) -> str:
    """The CSP source that allows exactly this inline ``<style>`` content."""
    digest = hashlib.sha256(css.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def allow_inline_style(css: str) -> None:
    """Allow one inline ``<style>`` block on the pay and sandbox pages."""
    _inline_styles.add(style_hash(css))


def page_policy() -> str:
    styles = " ".join(sorted(_inline_styles)) or "'none'"
    return ("default-src 'none'; style-src " + styles + "; img-src 'self' data:; "
            "base-uri 'none'; frame-ancestors 'none'")


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)
_SRC = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)
_STYLESHEET = re.compile(r"<link\b[^>]*>", re.I)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else None


def docs_policy(html: str) -> str:
    """The policy of a documentation page: what it loads, and nothing else."""
    scripts, styles = {"'self'"}, {"'self'", "'unsafe-inline'"}  # the UIs inject styles
    for attributes, body in _SCRIPT.findall(html):
        source = _SRC.search(attributes)
        if source:
            origin = _origin(source.group(1))
            if origin:
                scripts.add(origin)
        elif body.strip():
            digest = hashlib.sha256(body.encode()).digest()
            scripts.add(f"'sha256-{base64.b64encode(digest).decode()}'")
    for link in _STYLESHEET.findall(html):
        source = _SRC.search(link)
        origin = _origin(source.group(1)) if source else None
        if origin:
            styles.add(origin)
    external = " ".join(sorted(s for s in scripts | styles if s.startswith("http")))
    return (f"default-src 'self'; script-src {' '.join(sorted(scripts))}; "
            f"style-src {' '.join(sorted(styles))}; img-src 'self' data: https:; "
            f"font-src 'self' data: {external}".rstrip() + "; connect-src 'self'; "
            "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """ASGI wrapper of the Litestar app (``app``); other attributes are the app's."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        common = [(b"x-content-type-options", b"nosniff"),
                  (b"referrer-policy", b"no-referrer")]
        if https:
            common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        self.common = common

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(PAGE_PREFIXES):
            await self.app(scope, receive, self._pages(send))
        elif path == DOCS_PREFIX or path.startswith(DOCS_PREFIX + "/"):
            await self.app(scope, receive, self._docs(send))
        else:
            await self.app(scope, receive, send)

    def _pages(self, send: Send) -> Send:
        headers = [*self.common, (b"content-security-policy", page_policy().encode())]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *headers]}
            await send(message)

        return with_headers

    def _docs(self, send: Send) -> Send:
        """HTML is held until complete (its policy depends on it); the rest streams."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def with_headers(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", ())).get(b"content-type", b"")
                if not content_type.startswith(b"text/html"):
                    message = {**message,
                               "headers": [*message.get("headers", ()), *self.common]}
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            policy = docs_policy(body.decode("utf-8", "replace"))
            headers = [(k, v) for k, v in start.get("headers", ())
                       if k.lower() != b"content-length"]
            headers += [*self.common, (b"content-security-policy", policy.encode()),
                        (b"content-length", str(len(body)).encode())]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        return with_headers

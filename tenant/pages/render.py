"""Jinja rendering for the pages, with Babel money formatting.

The pages own their environment (autoescaping on) instead of the app's template engine,
so they need nothing from the composition root but their router.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Response
from litestar.enums import MediaType

from core.money import plain_decimal, to_major
from core.security import allow_inline_style

LOCALE = "en_US"
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True, lstrip_blocks=True,
)


def money(amount: int, currency: str) -> str:
    """``123456, "KWD"`` → ``KWD123.456``; digits per currency (JPY 0, USD 2, KWD 3)."""
    return format_currency(to_major(amount, currency), currency, locale=LOCALE)


def percent(rate: Decimal) -> str:
    return f"{plain_decimal(Decimal(rate))}%"


_env.filters["money"] = money
_env.filters["percent"] = percent


def _allow_styles() -> None:
    """The pages' only inline content is base.html's ``<style>``: allow it by hash in the
    Content-Security-Policy (:mod:`core.security`), exactly as rendered."""
    html = _env.get_template("message.html").render(title="", text="")
    for css in re.findall(r"<style>(.*?)</style>", html, re.S):
        allow_inline_style(css)


_allow_styles()


def page(template: str, status: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> Response[str]:
    html = _env.get_template(template).render(**context)
    return Response(content=html, status_code=status, media_type=MediaType.HTML,
                    headers={"Cache-Control": "no-store", **(headers or {})})


def message(title: str, text: str, status: int = 200, **context: Any) -> Response[str]:
    """A friendly page for anything that is not an invoice (unknown link, errors, …)."""
    return page("message.html", status=status, title=title, text=text, **context)

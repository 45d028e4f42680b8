"""FX rates shared by every tenant (O6). Tenant code converts with
``await owner.fx.convert(amount, from_currency, to_currency)`` (see :mod:`owner.fx.service`)."""

from owner.fx.service import convert, quote

__all__ = ["convert", "quote"]

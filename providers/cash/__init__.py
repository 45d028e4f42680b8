"""Cash at the desk: staff mark orders paid; refunds are handed back manually."""

from providers.cash.provider import CashProvider

__all__ = ["CashProvider"]

"""Provider classes by code: the one way the rest of Paymesh gets a gateway.

Core and tenant code call :func:`build_provider` with a tenant's decrypted
:class:`ProviderConfig`; they never import a provider package (or its SDK) directly.
"""

from __future__ import annotations

import httpx

from providers.bank_transfer import BankTransferProvider
from providers.base import PaymentProvider, ProviderConfig
from providers.cash import CashProvider
from providers.flutterwave import FlutterwaveProvider
from providers.paystack import PaystackProvider
from providers.polar import PolarProvider
from providers.sandbox import SandboxProvider
from providers.stripe import StripeProvider

PROVIDERS: dict[str, type[PaymentProvider]] = {
    cls.code: cls
    for cls in (
        SandboxProvider,
        StripeProvider,
        PaystackProvider,
        FlutterwaveProvider,
        PolarProvider,
        BankTransferProvider,
        CashProvider,
    )
}


class UnknownProvider(KeyError):
    """No provider is registered under this code (a catalog/config mismatch)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        known = ", ".join(sorted(PROVIDERS))
        return f"unknown payment provider {self.code!r} (known: {known})"


def get_provider_class(code: str) -> type[PaymentProvider]:
    try:
        return PROVIDERS[code]
    except KeyError:
        raise UnknownProvider(code) from None


def build_provider(
    config: ProviderConfig, http: httpx.AsyncClient | None = None
) -> PaymentProvider:
    """A provider instance for one tenant's configuration; ``http`` is owned by the caller."""
    return get_provider_class(config.code)(config, http)


async def close_shared_clients() -> None:
    """Close HTTP clients providers share per event loop (call on app/worker shutdown)."""
    from providers.stripe import close_http_client

    await close_http_client()

"""The registry: every provider is reachable by code and declares what it needs."""

from __future__ import annotations

import httpx
import pytest

from providers.base import PaymentProvider, ProviderConfig
from providers.registry import PROVIDERS, UnknownProvider, build_provider, get_provider_class

EXPECTED = {"sandbox", "stripe", "paystack", "flutterwave", "polar", "bank_transfer", "cash"}
KEY_NAMES = {"public_key", "secret_key", "webhook_secret"}


def test_every_provider_is_registered_under_its_code() -> None:
    assert set(PROVIDERS) == EXPECTED
    for code, cls in PROVIDERS.items():
        assert issubclass(cls, PaymentProvider) and cls.code == code
        assert set(cls.required_keys) <= KEY_NAMES
        assert get_provider_class(code) is cls


async def test_build_provider_uses_the_callers_http_client() -> None:
    async with httpx.AsyncClient() as http:
        provider = build_provider(ProviderConfig(tenant="t", code="cash"), http)
        assert provider.http is http and provider.config.tenant == "t"


def test_unknown_code_is_a_clear_key_error() -> None:
    with pytest.raises(KeyError) as error:
        get_provider_class("paypal")
    assert isinstance(error.value, UnknownProvider)
    assert "paypal" in str(error.value) and "stripe" in str(error.value)
    with pytest.raises(UnknownProvider):
        build_provider(ProviderConfig(tenant="t", code="paypal"))

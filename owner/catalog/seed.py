"""The built-in catalog: seven providers with realistic currencies, fees and limits.

Seeding is idempotent and never overwrites what the owner changed: a provider or a
currency row that exists is left alone.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from owner.catalog.models import Provider, ProviderCurrency
from providers.sandbox.fees import FEES as SANDBOX_FEES

# (currency, fee %, fixed fee in minor units, min, max, recommended)
Row = tuple[str, str, int, int | None, int | None, bool]



def _sandbox(currency: str, low: int, high: int | None, recommended: bool) -> Row:
    percent, fixed = SANDBOX_FEES[currency]
    return (currency, str(percent), fixed, low, high, recommended)


CATALOG: list[dict[str, Any]] = [
    {
        "code": "sandbox", "name": "Paymesh Sandbox", "handler_key": "sandbox",
        "description": "Built-in offline test gateway: hosted checkout, test cards, signed "
                       "webhooks, refunds and simulated disputes. No real money moves.",
        "integration_type": "hosted_page", "priority": 10, "is_default": True,
        "payment_methods": ["card"], "features": ["refunds", "partial_refunds", "disputes",
                                                  "webhooks"],
        "required_keys": ["secret_key"],
        "config_schema": {"type": "object", "additionalProperties": False, "properties": {}},
        # the fees are the gateway's own price list (providers/sandbox/fees.py)
        "currencies": [
            _sandbox("USD", 50, 99_999_999, True), _sandbox("EUR", 50, 99_999_999, True),
            _sandbox("GBP", 30, 99_999_999, True), _sandbox("JPY", 50, 9_999_999, True),
            _sandbox("KWD", 100, 9_999_999, False), _sandbox("NGN", 10_000, None, False),
            _sandbox("KES", 100, None, False), _sandbox("VND", 10_000, None, False),
        ],
    },
    {
        "code": "stripe", "name": "Stripe", "handler_key": "stripe",
        "description": "Cards and wallets worldwide via PaymentIntents; Connect for marketplaces.",
        "website_url": "https://stripe.com", "docs_url": "https://docs.stripe.com/api",
        "logo_url": "https://stripe.com/img/v3/home/twitter.png",
        "api_base_url": "https://api.stripe.com", "sandbox_api_base_url": "https://api.stripe.com",
        "integration_type": "api", "priority": 20,
        "payment_methods": ["card", "apple_pay", "google_pay", "sepa_debit"],
        "features": ["refunds", "partial_refunds", "disputes", "webhooks", "connect",
                     "application_fees"],
        "required_keys": ["public_key", "secret_key", "webhook_secret"],
        "config_schema": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "statement_descriptor": {"type": "string", "maxLength": 22},
                "capture_method": {"enum": ["automatic", "manual"]},
            },
        },
        "currencies": [
            ("USD", "2.9", 30, 50, 99_999_999, True), ("EUR", "1.5", 25, 50, 99_999_999, True),
            ("GBP", "1.5", 20, 30, 99_999_999, True), ("JPY", "3.6", 0, 50, 9_999_999, False),
            ("CAD", "2.9", 30, 50, 99_999_999, False), ("AUD", "1.75", 30, 50, 99_999_999, False),
        ],
    },
    {
        "code": "paystack", "name": "Paystack", "handler_key": "paystack",
        "description": "Cards, bank and mobile money in Nigeria, Ghana, Kenya and South Africa.",
        "website_url": "https://paystack.com", "docs_url": "https://paystack.com/docs/api",
        "api_base_url": "https://api.paystack.co", "sandbox_api_base_url": "https://api.paystack.co",
        "integration_type": "redirect", "priority": 30,
        "payment_methods": ["card", "bank", "ussd", "mobile_money", "bank_transfer"],
        "features": ["refunds", "partial_refunds", "disputes", "webhooks"],
        "required_keys": ["public_key", "secret_key"],
        "config_schema": {"type": "object", "additionalProperties": False,
                          "properties": {"channels": {"type": "array",
                                                      "items": {"type": "string"}}}},
        "currencies": [
            ("NGN", "1.5", 10_000, 10_000, 1_000_000_000, True),
            ("GHS", "1.95", 0, 100, 100_000_000, True), ("KES", "2.9", 0, 100, 100_000_000, False),
            ("ZAR", "2.9", 100, 100, 100_000_000, False), ("USD", "3.9", 0, 200, 10_000_000, False),
        ],
    },
    {
        "code": "flutterwave", "name": "Flutterwave", "handler_key": "flutterwave",
        "description": "Hosted payment links for cards, mobile money and bank transfers in Africa.",
        "website_url": "https://flutterwave.com",
        "docs_url": "https://developer.flutterwave.com/docs",
        "api_base_url": "https://api.flutterwave.com/v3",
        "sandbox_api_base_url": "https://api.flutterwave.com/v3",
        "integration_type": "redirect", "priority": 40,
        "payment_methods": ["card", "mobile_money", "bank_transfer", "ussd"],
        "features": ["refunds", "partial_refunds", "webhooks"],
        "required_keys": ["public_key", "secret_key", "webhook_secret"],
        "config_schema": {"type": "object", "additionalProperties": False,
                          "properties": {"payment_options": {"type": "string"}}},
        "currencies": [
            ("NGN", "1.4", 0, 10_000, 1_000_000_000, False),
            ("GHS", "1.95", 0, 100, 100_000_000, False), ("KES", "2.9", 0, 100, 100_000_000, True),
            ("USD", "3.8", 0, 100, 10_000_000, False),
        ],
    },
    {
        "code": "polar", "name": "Polar", "handler_key": "polar",
        "description": "Merchant of record for digital products: hosted checkouts for one "
                       "Polar product at the order's price, refunds, discounts. Polar "
                       "collects and remits sales tax and VAT.",
        "website_url": "https://polar.sh", "docs_url": "https://polar.sh/docs/api-reference",
        "api_base_url": "https://api.polar.sh",
        "sandbox_api_base_url": "https://sandbox-api.polar.sh",
        "integration_type": "hosted_page", "priority": 50,
        "payment_methods": ["card", "apple_pay", "google_pay"],
        "features": ["refunds", "partial_refunds", "webhooks", "discounts",
                     "merchant_of_record"],
        # secret_key: an organization access token (polar_oat_…); webhook_secret: the
        # endpoint's signing secret
        "required_keys": ["secret_key", "webhook_secret"],
        "config_schema": {
            "type": "object", "additionalProperties": False, "required": ["product_id"],
            "properties": {"product_id": {"type": "string", "minLength": 1,
                                          "description": "The Polar product every checkout "
                                                         "sells, at the order's total"}},
        },
        # Polar's published price: 4 % + 40¢ per transaction; its minimum price is $0.50
        "currencies": [("USD", "4", 40, 50, 99_999_999, False)],
    },
    {
        "code": "bank_transfer", "name": "Bank transfer", "handler_key": "bank_transfer",
        "description": "Customer pays by bank transfer quoting a unique reference; a bank "
                       "feed webhook matches it. Refunds are paid back manually.",
        "integration_type": "offline", "priority": 60,
        "payment_methods": ["bank_transfer"], "features": ["webhooks", "manual_refunds"],
        "required_keys": ["webhook_secret"],
        "config_schema": {
            "type": "object", "additionalProperties": False,
            "required": ["account_name", "account_number", "bank_name"],
            "properties": {
                "account_name": {"type": "string", "minLength": 1},
                "account_number": {"type": "string", "minLength": 4},
                "bank_name": {"type": "string", "minLength": 1},
                "iban": {"type": "string"}, "swift": {"type": "string"},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            },
        },
        "currencies": [
            ("EUR", "0", 0, 100, None, False), ("USD", "0", 0, 100, None, False),
            ("GBP", "0", 0, 100, None, False), ("NGN", "0", 0, 10_000, None, False),
            ("VND", "0", 0, 10_000, None, True),
        ],
    },
    {
        "code": "cash", "name": "Cash at the desk", "handler_key": "cash",
        "description": "The customer pays in person; a tenant admin marks the order paid.",
        "integration_type": "manual", "priority": 90,
        "payment_methods": ["cash"], "features": ["manual_refunds"],
        "required_keys": [],
        "config_schema": {"type": "object", "additionalProperties": False,
                          "properties": {"desk_instructions": {"type": "string"}}},
        "currencies": [
            (c, "0", 0, None, None, False)
            for c in ("USD", "EUR", "GBP", "JPY", "KWD", "NGN", "KES", "VND")
        ],
    },
]


async def seed_catalog(session: AsyncSession) -> int:
    """Insert missing providers and currency rows; returns how many rows were added."""
    added = 0
    existing = {p.code: p for p in (await session.scalars(select(Provider))).all()}
    for entry in CATALOG:
        data = {k: v for k, v in entry.items() if k != "currencies"}
        provider = existing.get(data["code"])
        if provider is None:
            provider = Provider(**data)
            session.add(provider)
            await session.flush()
            await session.refresh(provider, ["currencies"])
            added += 1
        have = {c.currency for c in provider.currencies}
        for currency, fee, fixed, low, high, recommended in entry["currencies"]:
            if currency in have:
                continue
            session.add(ProviderCurrency(
                provider_id=provider.id, currency=currency, fee_percent=Decimal(fee),
                fixed_fee=fixed, min_amount=low, max_amount=high, is_recommended=recommended,
            ))
            added += 1
    await session.flush()
    return added

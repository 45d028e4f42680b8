"""Paystack over httpx (hosted checkout, verify, refund, signed webhooks)."""

from providers.paystack.provider import PaystackProvider

__all__ = ["PaystackProvider"]

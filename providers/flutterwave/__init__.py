"""Flutterwave v3 over httpx (payment link, verify by reference, refund, webhooks)."""

from providers.flutterwave.provider import FlutterwaveProvider

__all__ = ["FlutterwaveProvider"]

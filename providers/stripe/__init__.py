"""Stripe through the official SDK (the only place ``stripe`` is imported)."""

from providers.stripe.provider import StripeProvider, close_http_client, map_stripe_error

__all__ = ["StripeProvider", "close_http_client", "map_stripe_error"]

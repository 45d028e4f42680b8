"""Disputes and chargebacks (T12), opened and closed by provider webhooks (states only so far)."""

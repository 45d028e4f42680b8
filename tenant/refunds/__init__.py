"""Refunds (T11): full and partial, by provider API or by hand (states only so far)."""

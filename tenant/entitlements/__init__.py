"""Entitlements (licenses) that paid digital products grant (T15)."""

"""Polar (merchant of record) through the official ``polar-sdk`` (imported only here)."""

from providers.polar.provider import PolarProvider

__all__ = ["PolarProvider"]

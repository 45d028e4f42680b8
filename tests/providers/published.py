"""Where the providers' published reference files are, if this machine has them.

Stripe's fixture file and Paystack's OpenAPI description are third-party data and are not
committed. The tests build their payloads in :mod:`tests.providers.payloads`; the
conformance checks that compare those builders (and the requests our providers send)
with the published files run only when ``PAYMESH_PROVIDER_FIXTURES`` points at a folder
holding them (default: ``../shared/fixtures`` relative to the repository root) and are
reported as skipped otherwise. When the variable is set explicitly (``.ci/run`` does
when the folder is there) a missing file fails the test instead of skipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VARIABLE = "PAYMESH_PROVIDER_FIXTURES"
DEFAULT = "../shared/fixtures"
STRIPE_FILE = "stripe-fixtures3.json"
PAYSTACK_FILE = "paystack-openapi.yaml"


def folder() -> Path:
    return (ROOT / os.environ.get(VARIABLE, DEFAULT)).resolve()


def published_file(name: str) -> Path:
    """The published file ``name``; skips the calling test when it is not available."""
    path = folder() / name
    if path.is_file():
        return path
    reason = (
        f"{VARIABLE} has no {name} (looked in {os.environ.get(VARIABLE, DEFAULT)}, relative "
        "to the repository root): conformance with the provider's published file not checked"
    )
    if os.environ.get(VARIABLE):
        pytest.fail(f"{reason}, but {VARIABLE} is set explicitly")
    pytest.skip(reason)

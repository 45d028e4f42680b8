"""Provider SDKs, wire payloads and signature schemes live only in ``providers/``.

Scans the other packages' sources (not tests) for imports of provider SDKs or provider
packages other than through the registry, and for provider wire vocabulary (header names,
event names, payload fields) that would mean a payload is being handled outside.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("core", "owner", "tenant", "workers", "migrations", "app.py")

BANNED_MODULES = ("stripe", "localstripe", "paystack", "flutterwave", "polar", "polar_sdk")
BANNED_PROVIDER_PACKAGES = ("providers.stripe", "providers.paystack", "providers.flutterwave",
                            "providers.polar")
#: Strings that only make sense inside a provider's wire format.
WIRE_VOCABULARY = (
    "stripe-signature",
    "x-paystack-signature",
    "verif-hash",
    "flutterwave-signature",
    "sandbox-signature",
    "payment_intent.",
    "charge.dispute",
    "charge.refunded",
    "charge.success",
    "charge.completed",
    "authorization_url",
    "tx_ref",
    "latest_charge",
    "transferamount",
    "transfertype",
)
# ``whsec_`` is not here: it is the Standard Webhooks secret format, which Paymesh uses for
# its own outgoing webhooks too (core/standard_webhooks.py).


def sources() -> Iterator[Path]:
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def violations() -> list[str]:
    found = []
    for path in sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        for module in imported_modules(tree):
            top = module.split(".")[0]
            if top in BANNED_MODULES or any(
                module == p or module.startswith(p + ".") for p in BANNED_PROVIDER_PACKAGES
            ):
                found.append(f"{where}: imports {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.lower()
                found += [f"{where}: mentions {word!r}" for word in WIRE_VOCABULARY if word in text]
    return found


def test_provider_code_stays_in_providers() -> None:
    assert violations() == []


def test_the_check_itself_catches_offenders(tmp_path: Path) -> None:
    sample = ast.parse(
        "import stripe\nfrom providers.paystack.provider import X\nH = 'Stripe-Signature'\n"
    )
    modules = set(imported_modules(sample))
    assert {"stripe", "providers.paystack.provider"} <= modules
    constants = [n.value for n in ast.walk(sample) if isinstance(n, ast.Constant)]
    assert any("stripe-signature" in str(c).lower() for c in constants)

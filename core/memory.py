"""The garbage collector in long-running processes (API, workers).

A full collection scans every tracked object that is not frozen. After startup, or after
a process has touched many tenants (engines, pools, cached configs), that is hundreds of
thousands of objects and a pause of 100-300 ms, which is what the slowest requests wait
on. What survives a full collection is long-lived by definition, so it is frozen (moved
out of the collector's view; reference counting still frees it). A frozen object that
later becomes part of a garbage cycle is only reclaimed by :func:`collect_frozen`,
which the API's housekeeping loop runs every few minutes.
"""

from __future__ import annotations

import gc
from typing import Any


def freeze_long_lived() -> None:
    """Freeze what exists now and, from now on, what survives each full collection."""
    gc.collect()
    gc.freeze()
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def collect_frozen() -> int:
    """One full pass over everything, frozen objects included; then freeze again."""
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()

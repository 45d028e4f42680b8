"""Long-lived objects leave the collector's full passes; frozen cycles are still reclaimed.

Run in a child interpreter: freezing is process-wide and would change this one's GC.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import gc, weakref
    from core.memory import collect_frozen, freeze_long_lived

    class Node:
        pass

    freeze_long_lived()
    after_startup = gc.get_freeze_count()
    assert after_startup > 0

    survivors = [[i] for i in range(5_000)]  # long-lived, reachable
    gc.collect(2)                            # a full collection freezes its survivors
    assert gc.get_freeze_count() >= after_startup + 5_000, gc.get_freeze_count()

    a, b = Node(), Node()                    # a garbage cycle that gets frozen first
    a.other, b.other = b, a
    gc.collect(2)
    watch = weakref.ref(a)
    del a, b
    gc.collect(2)
    assert watch() is not None               # frozen: full passes no longer see it
    collect_frozen()
    assert watch() is None                   # the periodic pass reclaims it
    print("ok", len(survivors))
""")


def test_freezing_survivors_and_collecting_frozen_cycles():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")

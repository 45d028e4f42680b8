"""The worker's event loop for ``async def`` actors: Dramatiq's, on uvloop when installed.

An actor's work is mostly database round trips; uvloop (asyncpg's own loop) spends less
CPU per wake-up than the stdlib selector loop, and a worker wakes a dozen times per event.
"""

from __future__ import annotations

from typing import Any

from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.middleware.asyncio import AsyncIO

try:
    import uvloop
except ImportError:  # pragma: no cover - it comes with uvicorn[standard]
    uvloop = None


class EventLoop(AsyncIO):
    """:class:`dramatiq.middleware.AsyncIO`, with the loop thread running uvloop."""

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        thread = EventLoopThread(self.logger)
        if uvloop is not None:
            thread.loop.close()
            thread.loop = uvloop.new_event_loop()
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)

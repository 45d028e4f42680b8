"""``build_runtime``: the one way a process builds its :class:`~core.runtime.Runtime`.

The API (:func:`app.create_app`), the CLI (``cli._with_runtime``), the worker processes
(:func:`workers.context.runtime`) and ``paymesh demo`` all call it, so each process gets
the same engines, keyring, enqueuer and notification sender from the same settings.
It lives here, not in :mod:`core.runtime`, because it wires in what only the workers'
layer may import (the :class:`~workers.broker.Enqueuer`, the tenant SMTP sender); it
imports neither Litestar nor httpx (``tests/workers/test_worker_imports.py``).
"""

from __future__ import annotations

from core.runtime import Runtime
from core.settings import Settings, get_settings
from workers.broker import Enqueuer


def build_runtime(settings: Settings | None = None) -> Runtime:
    """A new runtime: engines and keyring from ``settings``, an enqueuer when Redis is
    configured (without one, ``enqueue`` answers False and the sweepers catch up), and
    the SMTP sender when ``PAYMESH_SMTP_URL`` is set. The caller owns ``close()``."""
    settings = settings or get_settings()
    runtime = Runtime.create(settings)
    if settings.redis_url:
        runtime.enqueuer = Enqueuer(settings.redis_url)
    if settings.smtp_url:
        from tenant.notifications.service import SmtpSender, set_sender

        set_sender(SmtpSender(settings.smtp_url))
    return runtime

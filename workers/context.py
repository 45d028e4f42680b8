"""The worker process's runtime (engines, Redis, HTTP), created on first use."""

from __future__ import annotations

from core.runtime import Runtime, get_runtime, set_runtime
from core.tenancy import TenantContext, work_for
from owner.tenants.service import lookup


def runtime() -> Runtime:
    try:
        return get_runtime()
    except RuntimeError:
        from workers.runtime import build_runtime

        created = build_runtime()
        set_runtime(created)
        return created


async def tenant(slug: str) -> TenantContext | None:
    """The tenant to work for, or None when it is gone or suspended (work is skipped).
    The rest of the actor's task works for it (:func:`core.tenancy.working_for`)."""
    context = await lookup(runtime(), slug=slug)
    if context is None or context.is_suspended:
        return None
    work_for(context)  # each message runs in a task of its own: nothing to reset
    return context

"""Status tables: which moves a ``StrEnum`` status may make, and the error for the others.

Each status column (an order's payment status, a payment attempt's, a refund's, a
dispute's) has ONE :class:`Transitions` table next to its enum, and every write of the
column goes through it: Python code asks :meth:`Transitions.check` (a 409 listing the
allowed targets) or :meth:`Transitions.can` (for events that are ignored, not refused);
set-based SQL guards its ``UPDATE`` with :meth:`Transitions.sources_sql`, text built once
at import, so a batch stays one statement and an illegal move simply matches no row.

Staying in a status is not a move: a table lists ``X → X`` only where writing the row
again in the same status is meant (another partial refund, a second review finding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from core.errors import Conflict

S = TypeVar("S", bound=StrEnum)


class InvalidStatusTransition(Conflict):
    code = "invalid_transition"


class Transitions(Generic[S]):
    """A status enum's transition table: ``{source: (targets, ...)}``."""

    def __init__(self, name: str, enum: type[S], edges: Mapping[S, Iterable[S]],
                 error: type[Conflict] = InvalidStatusTransition) -> None:
        self.name = name
        self.enum = enum
        self.edges: dict[S, tuple[S, ...]] = {
            source: tuple(dict.fromkeys(targets)) for source, targets in edges.items()}
        self.error = error
        unknown = {s for s in self.edges if not isinstance(s, enum)} | {
            t for targets in self.edges.values() for t in targets if not isinstance(t, enum)}
        assert not unknown, f"{name}: not {enum.__name__} members: {unknown}"

    def allowed(self, source: str) -> list[S]:
        """The targets ``source`` may move to (none for a final status)."""
        return list(self.edges.get(self.enum(source), ()))

    def can(self, source: str, target: str) -> bool:
        return self.enum(target) in self.edges.get(self.enum(source), ())

    def sources(self, target: str) -> tuple[S, ...]:
        """Every status that may move to ``target``."""
        wanted = self.enum(target)
        return tuple(s for s, targets in self.edges.items() if wanted in targets)

    def sources_sql(self, target: str) -> str:
        """``ARRAY['a', 'b']``: the sources of ``target`` for ``column = ANY(...)``."""
        listed = ", ".join(f"'{s.value}'" for s in self.sources(target))
        return f"ARRAY[{listed}]::text[]"

    def pairs_sql(self) -> str:
        """``ARRAY['a>b', ...]``: every legal move, for ``source || '>' || target = ANY(...)``
        when the target is itself a column (an upsert)."""
        listed = ", ".join(f"'{s.value}>{t.value}'" for s, targets in self.edges.items()
                           for t in targets)
        return f"ARRAY[{listed}]::text[]"

    def check(self, source: str, target: str, *, param: str | None = "status") -> S:
        """``target`` if ``source → target`` is in the table, else a 409 listing the
        allowed targets (``extra``: ``allowed``, ``current``)."""
        if self.can(source, target):
            return self.enum(target)
        allowed = [t.value for t in self.allowed(source)]
        raise self.error(
            f"a {self.name} in '{source}' cannot move to '{target}'; "
            f"allowed: {', '.join(allowed) or 'none'}",
            param=param, extra={"allowed": allowed, "current": str(source)})

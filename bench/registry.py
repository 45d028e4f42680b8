"""The row registry: every bench row is one async function registered with :func:`row`.

Adding a row (the extension point for later issues):

1. create ``bench/rows/<name>.py`` with::

       from bench.registry import Line, Target, row

       @row("order_checkout", title="Order + checkout", needs=("references",), issue=3)
       async def order_checkout(ctx):
           ref = ctx.values["ref.litestar"]            # a LoadResult from the references row
           result = await ctx.measure(spec)            # warm-up + measured wrk load
           return [Line(...), ...]

2. import the module in ``bench/rows/__init__.py`` (import order = run order), and remove
   its entry from :data:`PLANNED`.

A row receives the :class:`bench.context.Context` (servers, API helpers, load generator,
``ctx.values`` shared between rows, ``ctx.details`` for the JSON file) and returns table
lines. ``needs`` names rows whose ``ctx.values`` it reads; selecting a row with
``--rows`` also runs what it needs. A row that raises is reported as an error line; the
other rows still run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bench.context import Context

#: Rows the spec asks for that later work will implement (name → (source, what it measures)).
#: References they will use: ``ctx.values["ref.litestar"]`` (LoadResult of the plain Litestar
#: JSON POST) and ``ctx.values["ref.pgbench"]`` (``{"select_only_tps", "simple_update_tps"}``).
PLANNED: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class Target:
    """A pass condition on the ratio (``on="ratio"``) or on the figure itself."""

    op: Literal["<=", ">="]
    value: float
    on: Literal["ratio", "figure"] = "ratio"
    label: str | None = None  # how the target column shows it

    def met(self, figure: float | None, ratio: float | None) -> bool | None:
        subject = ratio if self.on == "ratio" else figure
        if subject is None:
            return None
        return subject <= self.value if self.op == "<=" else subject >= self.value

    def text(self) -> str:
        if self.label:
            return self.label
        sign = "≤" if self.op == "<=" else "≥"
        return f"{'ratio ' if self.on == 'ratio' else ''}{sign} {self.value:g}"


@dataclass
class Line:
    """One line of the table."""

    row: str                      # row name (first column)
    figure: float | None
    unit: str = ""
    reference: float | None = None
    reference_unit: str | None = None  # defaults to ``unit``
    reference_label: str = ""     # what the reference is, e.g. "1 tenant"
    target: Target | None = None
    kind: Literal["measure", "reference", "info", "error"] = "measure"
    note: str = ""                # footnote (errors, generator caveats, evidence)
    valid: bool = True            # False: the load had errors; verdict is "misses"
    figure_text: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.figure is None or not self.reference:
            return None
        return self.figure / self.reference

    @property
    def verdict(self) -> str:
        if self.kind == "error":
            return "error"
        if self.kind == "reference":
            return "reference"
        if self.target is None:
            return "info"
        met = self.target.met(self.figure, self.ratio)
        if met is None:
            return "misses"
        return "meets" if met and self.valid else "misses"

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row, "figure": self.figure, "unit": self.unit,
            "reference": self.reference, "reference_unit": self.reference_unit or self.unit,
            "reference_label": self.reference_label, "ratio": self.ratio,
            "target": self.target.text() if self.target else None,
            "verdict": self.verdict, "kind": self.kind, "note": self.note, "valid": self.valid,
        }


RowFn = Callable[["Context"], Awaitable[list[Line]]]


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    fn: RowFn
    needs: tuple[str, ...] = ()
    issue: int | None = None
    doc: str = field(default="", compare=False)


ROWS: dict[str, Row] = {}


def row(name: str, *, title: str, needs: tuple[str, ...] = (),
        issue: int | None = None) -> Callable[[RowFn], RowFn]:
    """Register a row under ``name`` (registration order is run order)."""

    def register(fn: RowFn) -> RowFn:
        if name in ROWS:
            raise ValueError(f"bench row {name!r} registered twice")
        ROWS[name] = Row(name=name, title=title, fn=fn, needs=needs, issue=issue,
                         doc=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        return fn

    return register


def resolve(selected: list[str] | None) -> list[Row]:
    """The rows to run, in registration order, with everything they need."""
    import bench.rows  # noqa: F401  (registers the rows)

    if not selected:
        return list(ROWS.values())
    unknown = [n for n in selected if n not in ROWS]
    if unknown:
        planned = [n for n in unknown if n in PLANNED]
        hint = f" ({', '.join(planned)}: planned, not implemented yet)" if planned else ""
        raise SystemExit(f"unknown bench row(s): {', '.join(unknown)}{hint}; "
                         f"known: {', '.join(ROWS)}")
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name in wanted:
            return
        wanted.add(name)
        for dep in ROWS[name].needs:
            add(dep)

    for name in selected:
        add(name)
    return [r for r in ROWS.values() if r.name in wanted]

"""The revenue report's per-day roll-up of closed days (tenant migration 0017).

``report_days`` holds the orders source's sums (``revenue._ORDERS_SQL``) per UTC day of
``paid_at``, currency and provider, for the days before ``report_rollup_state.rolled_until``.
The report reads those days from it, except the days listed in ``report_dirty_days``, and
everything else (the period's partial first and last day, the days not rolled up yet, the
dirty days) live from ``orders`` — in one statement, so one snapshot: the answer is the
live computation's, to the cent, whenever it is asked (``revenue.from_orders``).

Why a rolled day stays exact. A trigger on ``orders`` marks the UTC day of an order's old
and new ``paid_at`` dirty, in the transaction of the change, when that ``paid_at`` is
before the midnight (UTC) that began the changing transaction's day (``now()``, the
transaction's start). :func:`roll_up` sets ``rolled_until`` to at most the UTC day of the
oldest transaction open in the database when it looks (``pg_stat_activity.xact_start``,
itself included), read before it reads any order. So every transaction it cannot see —
open at that point, or begun later — began on or after ``rolled_until``'s midnight, and
any change it makes to an order paid on a rolled-up day has ``paid_at`` before its own
day's midnight: the day is marked dirty, in the same transaction as the change. (Taking
"today" alone would miss a transaction begun just before midnight that refunds an order
of that day and commits just after the roll-up ran.)

Why READ COMMITTED, not one REPEATABLE READ snapshot. A change to an order of an already
dirty day finds the marker there (``ON CONFLICT DO NOTHING``) and holds a ``FOR KEY SHARE``
lock on it until it commits. The roll-up deletes only unlocked markers (``SKIP LOCKED``),
and recomputes the days with a statement that starts after that delete: every change
whose marker it cleared committed before, so that statement sees it. A REPEATABLE READ
snapshot taken before the delete would not see a change that committed in between, and
its marker would be gone. A marker the roll-up skipped stays: that day is read live until
the next run.

Why no hot row on the payment path: paying an order sets ``paid_at`` to now, which is not
before today, so the trigger's ``WHEN`` is false and its function never runs; only changes
to orders of past days (refunds, disputes, fees settled later, imports) write a marker.

The job (``workers/scheduler.py``, hourly) is idempotent: running it twice recomputes
the same rows, and two runs at once queue on the state row (``FOR UPDATE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from core.sql import Sql
from tenant.reports.revenue import ORDER_SUMS

#: The roll-up's horizon: the UTC day of the oldest transaction open in this database
#: (client sessions; autovacuum never changes an order), or of now if there is none.
_HORIZON = """
    SELECT (least(clock_timestamp(), min(a.xact_start)) AT TIME ZONE 'UTC')::date
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.backend_type = 'client backend'
"""

#: The dirty markers nobody holds, cleared and read back (see the module docstring).
_TAKE_DIRTY = """
    DELETE FROM report_dirty_days
    WHERE day IN (SELECT day FROM report_dirty_days FOR UPDATE SKIP LOCKED)
    RETURNING day
"""

_FIRST_PAID_DAY = """
    SELECT (min(paid_at) AT TIME ZONE 'UTC')::date FROM orders WHERE paid_at IS NOT NULL
"""

_DELETE_DAYS = "DELETE FROM report_days WHERE day = ANY($1::date[])"

#: The report's sums (``revenue.ORDER_SUMS``), per day, currency and provider, over the
#: given ``paid_at`` ranges (each an index range scan of ``ix_orders_paid_report``).
_INSERT_DAYS = f"""
    INSERT INTO report_days (day, currency, provider, orders, gross, discounts, tax,
                             refunds, disputes_lost, provider_fees)
    SELECT (o.paid_at AT TIME ZONE 'UTC')::date, o.currency,
           COALESCE(o.paid_provider, 'unknown'), {ORDER_SUMS}
    FROM unnest($1::timestamptz[], $2::timestamptz[]) AS r(lo, hi)
    JOIN orders o ON o.paid_at >= r.lo AND o.paid_at < r.hi
    WHERE o.paid_at IS NOT NULL
    GROUP BY 1, 2, 3
"""


@dataclass(frozen=True, slots=True)
class Rolled:
    #: Days recomputed: the dirty ones before the old ``rolled_until`` and the new ones.
    days: int
    rolled_until: date | None


def midnight(day: date) -> datetime:
    """The UTC midnight that begins ``day``."""
    return datetime.combine(day, time(), UTC)


async def roll_up(db: Sql) -> Rolled:
    """Bring ``report_days`` up to date in the caller's transaction, which must be READ
    COMMITTED (the module docstring says why): recompute the dirty days already rolled
    up, and add the closed days since ``rolled_until`` (all of them the first time)."""
    isolation = await db.fetchval("SHOW transaction_isolation")
    if isolation != "read committed":
        raise RuntimeError(f"the report roll-up needs READ COMMITTED, not {isolation}")
    rolled: date | None = await db.fetchval(
        "SELECT rolled_until FROM report_rollup_state WHERE id = 1 FOR UPDATE")
    horizon: date = await db.fetchval(_HORIZON)
    dirty = [r["day"] for r in await db.fetch(_TAKE_DIRTY)]
    first = rolled if rolled is not None else await db.fetchval(_FIRST_PAID_DAY)
    until = horizon if rolled is None else max(rolled, horizon)
    days = sorted(d for d in dirty if rolled is not None and d < rolled)
    if first is not None:
        days += [first + timedelta(days=i) for i in range((until - first).days)]
    if days:
        await db.execute(_DELETE_DAYS, days)
        await db.execute(_INSERT_DAYS, [midnight(d) for d in days],
                         [midnight(d + timedelta(days=1)) for d in days])
    await db.execute("UPDATE report_rollup_state SET rolled_until = $1 WHERE id = 1", until)
    return Rolled(days=len(days), rolled_until=until)

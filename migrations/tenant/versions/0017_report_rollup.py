"""The revenue report's per-day roll-up of closed days (``tenant/reports/rollup.py``).

``report_days`` holds, per UTC day of ``paid_at``, currency and paying provider, the sums
the orders source of the report adds up; ``report_rollup_state.rolled_until`` says which
days it holds (those before it; NULL: none yet); ``report_dirty_days`` lists the rolled
days an order change has made stale since. A row trigger on ``orders`` marks those days,
in the transaction of the change, and only for orders paid before the current UTC day:
paying an order (``paid_at`` = now) never calls it, so the payment path gains no write
and no hot row.

Revision ID: 0017_report_rollup
Revises: 0016_outgoing_endpoint_due
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_report_rollup"
down_revision: str | Sequence[str] | None = "0016_outgoing_endpoint_due"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Midnight (UTC) that began the current transaction's UTC day, as a timestamptz. ``now()``
#: is the transaction's start: the roll-up relies on that (see ``rollup.py``).
_CUTOFF = "(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"

#: Marks one day dirty. An already dirty day is locked (``FOR KEY SHARE``, which many
#: transactions can hold at once) until this transaction ends: the roll-up clears only
#: markers nobody holds (``SKIP LOCKED``), so it never clears one whose change it cannot
#: see yet. A marker deleted meanwhile is inserted again by the next turn of the loop.
_MARK_DAY = """
CREATE FUNCTION report_mark_day_dirty(dirty date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    LOOP
        INSERT INTO report_dirty_days (day) VALUES (dirty) ON CONFLICT (day) DO NOTHING;
        EXIT WHEN FOUND;
        PERFORM 1 FROM report_dirty_days WHERE day = dirty FOR KEY SHARE;
        EXIT WHEN FOUND;
    END LOOP;
END $$
"""

_MARK_ORDER = f"""
CREATE FUNCTION report_mark_order_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF OLD.paid_at < {_CUTOFF} THEN
            PERFORM report_mark_day_dirty((OLD.paid_at AT TIME ZONE 'UTC')::date);
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.paid_at < {_CUTOFF} THEN
            PERFORM report_mark_day_dirty((NEW.paid_at AT TIME ZONE 'UTC')::date);
        END IF;
    END IF;
    RETURN NULL;
END $$
"""

#: The columns the report sums or groups by: a change to anything else is not its concern.
_REPORTED = ("paid_at", "currency", "paid_provider", "total", "discount", "tax",
             "amount_refunded", "provider_fee", "dispute_losses")
_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _REPORTED)

#: One trigger per event: each ``WHEN`` names only the rows its event has.
_TRIGGERS = {
    "orders_report_inserted": ("INSERT", f"NEW.paid_at < {_CUTOFF}"),
    "orders_report_updated": (
        "UPDATE", f"(OLD.paid_at < {_CUTOFF} OR NEW.paid_at < {_CUTOFF}) AND ({_CHANGED})"),
    "orders_report_deleted": ("DELETE", f"OLD.paid_at < {_CUTOFF}"),
}


def upgrade() -> None:
    op.execute("""
        CREATE TABLE report_days (
            day date NOT NULL,
            currency varchar(3) NOT NULL,
            provider varchar(32) NOT NULL,
            orders bigint NOT NULL,
            gross bigint NOT NULL,
            discounts bigint NOT NULL,
            tax bigint NOT NULL,
            refunds bigint NOT NULL,
            disputes_lost bigint NOT NULL,
            provider_fees bigint NOT NULL,
            CONSTRAINT pk_report_days PRIMARY KEY (day, currency, provider)
        )
    """)
    op.execute("""
        CREATE TABLE report_rollup_state (
            id smallint NOT NULL DEFAULT 1,
            rolled_until date,
            CONSTRAINT pk_report_rollup_state PRIMARY KEY (id),
            CONSTRAINT ck_report_rollup_state_single CHECK (id = 1)
        )
    """)
    op.execute("INSERT INTO report_rollup_state (id, rolled_until) VALUES (1, NULL)")
    op.execute("""
        CREATE TABLE report_dirty_days (
            day date NOT NULL,
            CONSTRAINT pk_report_dirty_days PRIMARY KEY (day)
        )
    """)
    op.execute(_MARK_DAY)
    op.execute(_MARK_ORDER)
    for name, (event, when) in _TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} AFTER {event} ON orders FOR EACH ROW "
                   f"WHEN ({when}) EXECUTE FUNCTION report_mark_order_days()")


def downgrade() -> None:
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON orders")
    op.execute("DROP FUNCTION report_mark_order_days()")
    op.execute("DROP FUNCTION report_mark_day_dirty(date)")
    op.execute("DROP TABLE report_dirty_days")
    op.execute("DROP TABLE report_rollup_state")
    op.execute("DROP TABLE report_days")

"""Ledger entries' references checked once per statement, not once per entry row.

A foreign key checks every inserted row on its own: a lookup of the referenced row that
also locks it (``FOR KEY SHARE``). A capture posts four or more entries, so a worker's
batch of 64 captures ran ~500 such checks, all locking the same few account rows — the
largest Postgres cost of settling payments, and one that grows with concurrency (the
shared locks of two workers on one account row become a MultiXact).

What the two foreign keys of ``ledger_entries`` guaranteed holds with less:

- **every entry names an existing account and journal transaction**: the AFTER INSERT
  statement trigger of 0004 checks every row the statement inserted, with one anti-join,
  and refuses the statement (``foreign_key_violation``) if one names neither;
- **what an entry names is never removed or renumbered**: journal transactions are
  append-only since 0002; accounts now refuse DELETE and a change of ``id`` the same way
  (a chart of accounts only grows), and all three ledger tables refuse TRUNCATE. Nothing
  an entry points to can go away, so the check need not lock it.

Revision ID: 0005_ledger_reference_checks
Revises: 0004_ledger_statement_checks
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_ledger_reference_checks"
down_revision: str | Sequence[str] | None = "0004_ledger_statement_checks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEDGER_TABLES = ("ledger_accounts", "ledger_transactions", "ledger_entries")
_FOREIGN_KEYS = {
    "fk_ledger_entries_transaction_id_ledger_transactions":
        "FOREIGN KEY (transaction_id) REFERENCES ledger_transactions (id)",
    "fk_ledger_entries_account_id_ledger_accounts":
        "FOREIGN KEY (account_id) REFERENCES ledger_accounts (id)",
}

#: 0004's statement check; ``{references}`` goes in front of its balance check.
_CHECK_STATEMENT = """
CREATE OR REPLACE FUNCTION ledger_check_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched uuid[];
    dangling record;
BEGIN
    IF TG_TABLE_NAME = 'ledger_entries' THEN
{references}        touched := ARRAY(SELECT DISTINCT transaction_id FROM inserted);
    ELSE
        touched := ARRAY(SELECT id FROM inserted);
    END IF;
    INSERT INTO ledger_balance_checks (transaction_id)
    SELECT t.id
    FROM unnest(touched) AS t(id)
         CROSS JOIN LATERAL (
             SELECT sum(per.n) AS entries, bool_or(per.diff <> 0) AS off
             FROM (SELECT count(*) AS n, sum(e.debit) - sum(e.credit) AS diff
                   FROM ledger_entries e WHERE e.transaction_id = t.id
                   GROUP BY e.currency) per
         ) sums
    WHERE coalesce(sums.entries, 0) < 2 OR sums.off;
    RETURN NULL;
END $$
"""

#: Every entry the statement inserted names an existing account and journal transaction.
_REFERENCES = """\
        SELECT e.id, e.account_id, e.transaction_id,
               a.id IS NULL AS no_account INTO dangling
        FROM inserted e
             LEFT JOIN ledger_accounts a ON a.id = e.account_id
             LEFT JOIN ledger_transactions t ON t.id = e.transaction_id
        WHERE a.id IS NULL OR t.id IS NULL
        LIMIT 1;
        IF FOUND AND dangling.no_account THEN
            RAISE EXCEPTION 'ledger entry % names account %, which does not exist',
                dangling.id, dangling.account_id USING ERRCODE = 'foreign_key_violation';
        ELSIF FOUND THEN
            RAISE EXCEPTION 'ledger entry % names journal transaction %, which does not exist',
                dangling.id, dangling.transaction_id USING ERRCODE = 'foreign_key_violation';
        END IF;
"""

_KEPT = """
CREATE FUNCTION ledger_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% keeps what ledger entries refer to: no % here', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$
"""


def upgrade() -> None:
    op.execute(_CHECK_STATEMENT.replace("{references}", _REFERENCES))
    op.execute(_KEPT)
    op.execute("CREATE TRIGGER ledger_accounts_kept BEFORE DELETE OR UPDATE OF id "
               "ON ledger_accounts FOR EACH ROW EXECUTE FUNCTION ledger_kept()")
    for table in _LEDGER_TABLES:
        op.execute(f"CREATE TRIGGER {table}_not_truncated BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_kept()")
    op.execute("ALTER TABLE ledger_entries "
               + ", ".join(f"DROP CONSTRAINT {name}" for name in _FOREIGN_KEYS))


def downgrade() -> None:
    op.execute("ALTER TABLE ledger_entries " + ", ".join(
        f"ADD CONSTRAINT {name} {definition}" for name, definition in _FOREIGN_KEYS.items()))
    for table in _LEDGER_TABLES:
        op.execute(f"DROP TRIGGER {table}_not_truncated ON {table}")
    op.execute("DROP TRIGGER ledger_accounts_kept ON ledger_accounts")
    op.execute("DROP FUNCTION ledger_kept()")
    op.execute(_CHECK_STATEMENT.replace("{references}", ""))

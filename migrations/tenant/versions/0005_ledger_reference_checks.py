"""Ledger entries' references checked once per statement, not once per entry row.

A foreign key checks every inserted row on its own: a lookup of the referenced row that
also locks it (``FOR KEY SHARE``). A capture posts four or more entries, so a worker's
batch of 64 captures ran ~500 such checks, all locking the same few account rows — the
largest Postgres cost of settling payments, and one that grows with concurrency (the
shared locks of two workers on one account row become a MultiXact).

What the two foreign keys of ``ledger_entries`` guaranteed holds with less:

- **every entry names an existing account and journal transaction**: an AFTER INSERT
  statement trigger (like 0004's balance check) checks every row the statement inserted,
  with one anti-join, and refuses the statement (``foreign_key_violation``) if one names
  a missing row;
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

#: Every entry the statement inserted names an existing account and journal transaction
#: (beside 0004's balance check, a statement trigger of its own on the same rows).
_CHECK_REFERENCES = """
CREATE FUNCTION ledger_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    dangling record;
BEGIN
    SELECT e.id, e.account_id, e.transaction_id, a.id IS NULL AS no_account INTO dangling
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
    RETURN NULL;
END $$
"""

_KEPT = """
CREATE FUNCTION ledger_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% keeps what ledger entries refer to: no % here', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$
"""


def upgrade() -> None:
    op.execute(_CHECK_REFERENCES)
    op.execute("CREATE TRIGGER ledger_entries_referenced AFTER INSERT ON ledger_entries "
               "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
               "EXECUTE FUNCTION ledger_check_references()")
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
    op.execute("DROP TRIGGER ledger_entries_referenced ON ledger_entries")
    op.execute("DROP FUNCTION ledger_check_references()")

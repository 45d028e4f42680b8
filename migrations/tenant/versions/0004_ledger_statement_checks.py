"""Ledger balance checked once per statement, not once per entry row.

0002 checked a journal transaction from a deferred row trigger on every entry and on the
transaction itself: two queries per row, so a capture of seven entries ran sixteen at
commit, the largest Postgres cost of settling a payment. Here an AFTER INSERT statement
trigger on each ledger table checks, in one query, every journal transaction the
statement touched. A posting (its transaction and all its entries in one statement, as
:mod:`tenant.ledger.service` writes them) balances at the end of the statement, so
nothing is left for the commit.

Hand-written SQL may still post in several statements (the transaction first, then the
entries one by one): a transaction that does not balance at the end of a statement is
noted in ``ledger_balance_checks``, whose deferred constraint trigger checks it again at
commit, on what it holds then, and removes the note. A note deleted by hand still fires
(a deferred trigger event outlives its row), and ``SET CONSTRAINTS … IMMEDIATE`` only
moves the check to the end of the statement. So, as before, no transaction commits with
fewer than two entries or with entries that do not sum to zero per currency.

Revision ID: 0004_ledger_statement_checks
Revises: 0003_webhooks_notifications
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_ledger_statement_checks"
down_revision: str | Sequence[str] | None = "0003_webhooks_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The journal transactions of ``inserted`` (entries or transactions) that do not balance
#: now are noted for a check at commit.
_CHECK_STATEMENT = """
CREATE FUNCTION ledger_check_statement() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched uuid[];
BEGIN
    IF TG_TABLE_NAME = 'ledger_entries' THEN
        touched := ARRAY(SELECT DISTINCT transaction_id FROM inserted);
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

#: PL/pgSQL: raise unless the journal transaction ``txn`` has two or more entries that sum
#: to zero per currency (needs ``entries integer`` and ``off record`` declared).
_RAISE_UNLESS_BALANCED = """
    SELECT count(*) INTO entries FROM ledger_entries WHERE transaction_id = txn;
    IF entries < 2 THEN
        RAISE EXCEPTION 'ledger transaction % has % entries; a posting needs at least two',
            txn, entries USING ERRCODE = 'check_violation';
    END IF;
    SELECT currency, sum(debit) - sum(credit) AS diff INTO off FROM ledger_entries
        WHERE transaction_id = txn GROUP BY currency HAVING sum(debit) <> sum(credit) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance in %: debits - credits = %',
            txn, off.currency, off.diff USING ERRCODE = 'check_violation';
    END IF;
"""

#: At commit (deferred): a noted transaction must balance by now.
_CHECK_NOTED = """
CREATE FUNCTION ledger_check_noted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txn uuid := NEW.transaction_id;
    entries integer;
    off record;
BEGIN
{check}    DELETE FROM ledger_balance_checks WHERE transaction_id = txn;
    RETURN NULL;
END $$
""".replace("{check}", _RAISE_UNLESS_BALANCED)

#: 0002's row triggers, restored by :func:`downgrade`.
_CHECK_BALANCED = """
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    txn uuid;
    entries integer;
    off record;
BEGIN
    IF TG_TABLE_NAME = 'ledger_entries' THEN
        txn := NEW.transaction_id;
    ELSE
        txn := NEW.id;
    END IF;
{check}    RETURN NULL;
END $$
""".replace("{check}", _RAISE_UNLESS_BALANCED)

#: One statement each (asyncpg prepares statements, which must be single).
_ROW_CHECKS = [
    ("CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
     "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()"),
    ("CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions "
     "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()"),
]
_DROP_ROW_CHECKS = [
    "DROP TRIGGER ledger_transactions_balanced ON ledger_transactions",
    "DROP TRIGGER ledger_entries_balanced ON ledger_entries",
    "DROP FUNCTION ledger_check_balanced()",
]
_STATEMENT_CHECKS = [
    "CREATE TABLE ledger_balance_checks (transaction_id uuid NOT NULL)",
    _CHECK_NOTED,
    ("CREATE CONSTRAINT TRIGGER ledger_balance_checks_due AFTER INSERT ON ledger_balance_checks "
     "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_noted()"),
    _CHECK_STATEMENT,
    ("CREATE TRIGGER ledger_entries_checked AFTER INSERT ON ledger_entries "
     "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
     "EXECUTE FUNCTION ledger_check_statement()"),
    ("CREATE TRIGGER ledger_transactions_checked AFTER INSERT ON ledger_transactions "
     "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
     "EXECUTE FUNCTION ledger_check_statement()"),
]
_DROP_STATEMENT_CHECKS = [
    "DROP TRIGGER ledger_transactions_checked ON ledger_transactions",
    "DROP TRIGGER ledger_entries_checked ON ledger_entries",
    "DROP FUNCTION ledger_check_statement()",
    "DROP TABLE ledger_balance_checks",
    "DROP FUNCTION ledger_check_noted()",
]


def upgrade() -> None:
    for statement in [*_DROP_ROW_CHECKS, *_STATEMENT_CHECKS]:
        op.execute(statement)


def downgrade() -> None:
    for statement in [*_DROP_STATEMENT_CHECKS, _CHECK_BALANCED, *_ROW_CHECKS]:
        op.execute(statement)

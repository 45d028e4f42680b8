"""Refunds and disputes get their own tables; the order carries ``amount_refunded``.

Until now a payment's ``flags`` held what refunds and disputes left behind:
``refunded_amount`` (a running total), ``disputes`` (``{provider dispute id: {amount,
before}}``) and ``closed_disputes`` (ids). They become rows:

- refunds: one row per refund the ledger posted (key ``refund:<provider>:<refund id>``,
  its amount on the refunds account), ``succeeded``; what the flag's total has beyond
  those (nothing in a ledger that was kept) becomes one row without a provider id;
- disputes: one row per id in ``disputes``, ``open``, or ``won`` (a ``…:won`` posting
  exists) / ``lost`` when closed; times from the postings.

The flag keys are removed; the downgrade writes them back from the rows.

Revision ID: 0007_refunds_disputes
Revises: 0006_invoice_counter
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_refunds_disputes"
down_revision: str | Sequence[str] | None = "0006_invoice_counter"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUND_STATUSES = "'pending', 'succeeded', 'failed', 'manual_required', 'cancelled'"
_DISPUTE_STATUSES = "'open', 'won', 'lost'"


def upgrade() -> None:
    op.execute("ALTER TABLE orders ADD COLUMN amount_refunded bigint NOT NULL DEFAULT 0")
    op.execute(f"""
        CREATE TABLE refunds (
            id uuid NOT NULL CONSTRAINT pk_refunds PRIMARY KEY,
            order_id uuid NOT NULL CONSTRAINT fk_refunds_order_id_orders REFERENCES orders (id),
            payment_id uuid NOT NULL
                CONSTRAINT fk_refunds_payment_id_payments REFERENCES payments (id),
            provider varchar(32) NOT NULL,
            amount bigint NOT NULL CONSTRAINT ck_refunds_amount_positive CHECK (amount > 0),
            currency varchar(3) NOT NULL,
            status varchar(24) NOT NULL
                CONSTRAINT ck_refunds_status_valid CHECK (status IN ({_REFUND_STATUSES})),
            reason varchar(500),
            keep_access boolean NOT NULL DEFAULT false,
            restock boolean NOT NULL DEFAULT true,
            provider_refund_id varchar(255),
            idempotency_key varchar(200) CONSTRAINT uq_refunds_idempotency_key UNIQUE,
            failure_reason text,
            completed_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_refunds_provider_provider_refund_id UNIQUE (provider, provider_refund_id)
        )""")
    op.execute("CREATE INDEX ix_refunds_order_id ON refunds (order_id)")
    op.execute("CREATE INDEX ix_refunds_created_at ON refunds (created_at)")
    op.execute(f"""
        CREATE TABLE disputes (
            id uuid NOT NULL CONSTRAINT pk_disputes PRIMARY KEY,
            order_id uuid NOT NULL CONSTRAINT fk_disputes_order_id_orders REFERENCES orders (id),
            payment_id uuid NOT NULL
                CONSTRAINT fk_disputes_payment_id_payments REFERENCES payments (id),
            provider varchar(32) NOT NULL,
            provider_dispute_id varchar(255) NOT NULL,
            amount bigint NOT NULL CONSTRAINT ck_disputes_amount_positive CHECK (amount > 0),
            currency varchar(3) NOT NULL,
            reason varchar(200),
            status varchar(16) NOT NULL
                CONSTRAINT ck_disputes_status_valid CHECK (status IN ({_DISPUTE_STATUSES})),
            order_status_before varchar(32),
            evidence_due_by timestamptz,
            opened_at timestamptz NOT NULL,
            closed_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_disputes_provider_provider_dispute_id
                UNIQUE (provider, provider_dispute_id)
        )""")
    op.execute("CREATE INDEX ix_disputes_order_id ON disputes (order_id)")
    op.execute("CREATE INDEX ix_disputes_created_at ON disputes (created_at)")

    # refunds the ledger posted, then what the flag's total has beyond them
    op.execute("""
        INSERT INTO refunds (id, order_id, payment_id, provider, amount, currency, status,
                             provider_refund_id, completed_at, created_at, updated_at)
        SELECT gen_random_uuid(), p.order_id, p.id, p.provider,
               (SELECT SUM(e.debit) FROM ledger_entries e JOIN ledger_accounts a
                  ON a.id = e.account_id
                WHERE e.transaction_id = t.id AND a.code = 'refunds'),
               p.currency, 'succeeded',
               substring(t.posting_key FROM length('refund:' || p.provider || ':') + 1),
               t.created_at, t.created_at, t.created_at
        FROM payments p JOIN ledger_transactions t
          ON t.payment_id = p.id AND t.kind = 'refund.succeeded'
             AND t.posting_key LIKE 'refund:' || p.provider || ':%'
        WHERE p.flags ? 'refunded_amount'""")
    op.execute("""
        INSERT INTO refunds (id, order_id, payment_id, provider, amount, currency, status,
                             reason, completed_at, created_at, updated_at)
        SELECT gen_random_uuid(), p.order_id, p.id, p.provider,
               (p.flags->>'refunded_amount')::bigint - COALESCE(
                   (SELECT SUM(r.amount) FROM refunds r WHERE r.payment_id = p.id), 0),
               p.currency, 'succeeded', 'recorded before refunds had rows',
               p.updated_at, p.updated_at, p.updated_at
        FROM payments p
        WHERE p.flags ? 'refunded_amount'
          AND (p.flags->>'refunded_amount')::bigint > COALESCE(
                   (SELECT SUM(r.amount) FROM refunds r WHERE r.payment_id = p.id), 0)""")
    op.execute("""
        UPDATE orders o SET amount_refunded = r.total
        FROM (SELECT order_id, SUM(amount) AS total FROM refunds
              WHERE status = 'succeeded' GROUP BY order_id) r
        WHERE o.id = r.order_id""")
    op.execute("""
        INSERT INTO disputes (id, order_id, payment_id, provider, provider_dispute_id, amount,
                              currency, status, order_status_before, opened_at, closed_at,
                              created_at, updated_at)
        SELECT gen_random_uuid(), p.order_id, p.id, p.provider, d.key,
               (d.value->>'amount')::bigint, p.currency,
               CASE WHEN NOT COALESCE(p.flags->'closed_disputes' ? d.key, false) THEN 'open'
                    WHEN won.created_at IS NOT NULL THEN 'won' ELSE 'lost' END,
               d.value->>'before',
               COALESCE(opened.created_at, p.updated_at),
               CASE WHEN COALESCE(p.flags->'closed_disputes' ? d.key, false)
                    THEN COALESCE(won.created_at, p.updated_at) END,
               COALESCE(opened.created_at, p.updated_at), p.updated_at
        FROM payments p
        CROSS JOIN LATERAL jsonb_each(p.flags->'disputes') AS d(key, value)
        LEFT JOIN ledger_transactions opened
          ON opened.posting_key = 'dispute:' || p.provider || ':' || d.key || ':' || 'opened'
        LEFT JOIN ledger_transactions won
          ON won.posting_key = 'dispute:' || p.provider || ':' || d.key || ':' || 'won'
        WHERE jsonb_typeof(p.flags->'disputes') = 'object'""")
    op.execute("""
        UPDATE payments SET flags = flags - 'refunded_amount' - 'disputes' - 'closed_disputes'
        WHERE flags ?| ARRAY['refunded_amount', 'disputes', 'closed_disputes']""")


def downgrade() -> None:
    op.execute("""
        UPDATE payments p SET flags = p.flags || jsonb_build_object('refunded_amount', r.total)
        FROM (SELECT payment_id, SUM(amount) AS total FROM refunds
              WHERE status = 'succeeded' GROUP BY payment_id) r
        WHERE p.id = r.payment_id""")
    op.execute("""
        UPDATE payments p SET flags = p.flags || jsonb_build_object('disputes', d.opened)
                                    || CASE WHEN d.closed = '[]'::jsonb THEN '{}'::jsonb
                                            ELSE jsonb_build_object('closed_disputes', d.closed)
                                       END
        FROM (SELECT payment_id,
                     jsonb_object_agg(provider_dispute_id, jsonb_build_object(
                         'amount', amount, 'before', order_status_before)) AS opened,
                     COALESCE(jsonb_agg(provider_dispute_id ORDER BY closed_at)
                              FILTER (WHERE status <> 'open'), '[]'::jsonb) AS closed
              FROM disputes GROUP BY payment_id) d
        WHERE p.id = d.payment_id""")
    op.execute("DROP TABLE disputes")
    op.execute("DROP TABLE refunds")
    op.execute("ALTER TABLE orders DROP COLUMN amount_refunded")

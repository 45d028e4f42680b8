"""fx rates: the current rate per currency and source, and the history of every rate

Revision ID: c4e6a8b0d2f4
Revises: a1c3e5f7b9d2
Create Date: 2026-12-08 10:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = 'c4e6a8b0d2f4'
down_revision: Union[str, Sequence[str], None] = 'a1c3e5f7b9d2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'fx_rates',
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('rate', sa.Numeric(22, 10), nullable=False),
        sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('set_by', sa.Uuid(), nullable=True),
        sa.CheckConstraint("source IN ('api', 'manual')", name=op.f('ck_fx_rates_source_valid')),
        sa.CheckConstraint('rate > 0', name=op.f('ck_fx_rates_rate_positive')),
        sa.PrimaryKeyConstraint('currency', 'source', name=op.f('pk_fx_rates')),
    )
    op.create_table(
        'fx_rate_history',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('rate', sa.Numeric(22, 10), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('set_by', sa.Uuid(), nullable=True),
        sa.CheckConstraint("source IN ('api', 'manual')",
                           name=op.f('ck_fx_rate_history_source_valid')),
        sa.CheckConstraint('rate > 0', name=op.f('ck_fx_rate_history_rate_positive')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fx_rate_history')),
    )
    op.create_index('ix_fx_rate_history_currency_recorded_at', 'fx_rate_history',
                    ['currency', 'recorded_at'])


def downgrade() -> None:
    op.drop_index('ix_fx_rate_history_currency_recorded_at', table_name='fx_rate_history')
    op.drop_table('fx_rate_history')
    op.drop_table('fx_rates')

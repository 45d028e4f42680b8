"""installation id: makes database names unique per installation on a shared server

Revision ID: a1c3e5f7b9d2
Revises: fb2b07eedab1
Create Date: 2026-12-01 23:20:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = 'a1c3e5f7b9d2'
down_revision: Union[str, Sequence[str], None] = 'fb2b07eedab1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'installation',
        sa.Column('id', sa.SmallInteger(), server_default=sa.text('1'), nullable=False),
        sa.Column('installation_id', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_installation_single_row')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_installation')),
    )
    # generated once, here: an existing installation gets one too (its tenants keep the
    # database names stored with them; only names given from now on contain it)
    op.execute("INSERT INTO installation (id, installation_id) "
               "VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 8))")


def downgrade() -> None:
    op.drop_table('installation')

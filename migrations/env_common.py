"""Shared body of both Alembic environments.

Paymesh runs migrations in-process: :mod:`core.migrate` opens an async connection and
passes its sync facade in ``config.attributes["connection"]``. Developers can also run
``alembic -n owner|tenant -x url=postgresql://… revision --autogenerate -m …``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from core.db import make_engine


def run(metadata: MetaData, version_table: str) -> None:
    config = context.config

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            compare_type=True,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        do_run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass -x url=postgresql://… (or run `paymesh db upgrade`)")

    async def offline_cli() -> None:
        engine = make_engine(url, pool_size=1)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    asyncio.run(offline_cli())

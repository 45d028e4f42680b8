"""Run the owner or tenant Alembic tree against one database, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from core.db import make_engine

Tree = Literal["owner", "tenant"]
ROOT = Path(__file__).resolve().parent.parent


def alembic_config(tree: Tree) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations" / tree))
    config.set_main_option("prepend_sys_path", str(ROOT))
    return config


def head(tree: Tree) -> str:
    return ScriptDirectory.from_config(alembic_config(tree)).get_current_head() or ""


async def _run(url: str, tree: Tree, action: str, revision: str) -> None:
    config = alembic_config(tree)

    def apply(connection: Connection) -> None:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    engine = make_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(apply)
    finally:
        await engine.dispose()


async def upgrade(url: str, tree: Tree, revision: str = "head") -> None:
    await _run(url, tree, "upgrade", revision)


async def downgrade(url: str, tree: Tree, revision: str) -> None:
    await _run(url, tree, "downgrade", revision)


async def current(url: str, tree: Tree) -> str | None:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(
                    c, opts={"version_table": f"alembic_version_{tree}"}
                ).get_current_revision()
            )
    finally:
        await engine.dispose()

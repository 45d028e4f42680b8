"""Alembic environment of the owner database."""

from core.db import OwnerBase as Base
from migrations.env_common import run
import owner.models  # noqa: F401  (registers every table)

run(Base.metadata, "alembic_version_owner")

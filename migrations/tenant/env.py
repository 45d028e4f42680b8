"""Alembic environment of the tenant database."""

from core.db import TenantBase as Base
from migrations.env_common import run
import tenant.models  # noqa: F401  (registers every table)

run(Base.metadata, "alembic_version_tenant")

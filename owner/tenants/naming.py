"""Names of the databases this installation creates on its servers.

Several installations (or a leftover of an earlier one) may share a Postgres server, so
the default names carry the installation id generated once in the owner database:
``paymesh_template_<id>`` and ``paymesh_t_<id>_<slug>``. ``PAYMESH_TEMPLATE_DB`` and
``PAYMESH_TENANT_DB_PREFIX`` override them (tests keep runs apart with them). A tenant's
database name is stored with the tenant, so existing tenants keep theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from owner.tenants.models import Installation


@dataclass(frozen=True)
class Names:
    installation_id: str
    template: str
    tenant_prefix: str

    def tenant_db(self, slug: str) -> str:
        return f"{self.tenant_prefix}{slug.replace('-', '_')}"


async def installation_id(session: AsyncSession) -> str:
    found = await session.scalar(select(Installation.installation_id))
    if not found:  # the migration inserts it; an owner DB without it is not migrated
        raise RuntimeError("the owner database has no installation id; run `paymesh db upgrade`")
    return found


async def database_names(session: AsyncSession, settings: Settings) -> Names:
    iid = await installation_id(session)
    return Names(installation_id=iid,
                 template=settings.template_db or f"paymesh_template_{iid}",
                 tenant_prefix=settings.tenant_db_prefix or f"paymesh_t_{iid}_")

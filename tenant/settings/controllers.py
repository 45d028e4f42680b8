from __future__ import annotations

from litestar import Controller, get, patch
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from tenant.settings import service
from tenant.settings.schemas import SettingsOut, SettingsPatch


class SettingsController(Controller):
    path = "/v1/settings"
    tags = ["tenant: settings"]

    @get("/")
    async def read(self, tenant_db: AsyncSession) -> SettingsOut:
        return (await service.load(tenant_db)).out()

    @patch("/")
    async def change(self, tenant_db: AsyncSession, actor: Actor,
                     data: SettingsPatch) -> SettingsOut:
        return (await service.update(tenant_db, data, actor)).out()

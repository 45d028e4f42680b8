from __future__ import annotations

from core.audit import AuditLogMixin
from core.db import TenantBase


class AuditLog(AuditLogMixin, TenantBase):
    """Every financial and admin action of one tenant (T18)."""

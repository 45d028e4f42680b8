from __future__ import annotations

from core.audit import AuditLogMixin
from core.db import OwnerBase


class OwnerAuditLog(AuditLogMixin, OwnerBase):
    """Owner-level actions: catalog edits, tenant lifecycle, key issue/revoke."""

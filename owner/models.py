"""Every table of the owner database (imported by its Alembic environment)."""

from __future__ import annotations

from owner.audit.models import OwnerAuditLog
from owner.catalog.models import Provider, ProviderCurrency
from owner.fx.models import FxRate, FxRateHistory
from owner.keys.models import ApiKey
from owner.tenants.models import DbCluster, Tenant

__all__ = ["ApiKey", "DbCluster", "FxRate", "FxRateHistory", "OwnerAuditLog", "Provider",
           "ProviderCurrency", "Tenant"]

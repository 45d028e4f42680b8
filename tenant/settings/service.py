"""Reading and changing a tenant's settings.

Orders snapshot what they need (the tax rate) at creation, so a later change never
rewrites an existing invoice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.errors import ValidationError
from core.money import normalize_currency, plain_decimal
from tenant.audit.models import AuditLog
from tenant.referrals import tiers as commission_tiers
from tenant.settings.models import (
    DEFAULT_COMMISSION_HOLD_DAYS,
    DEFAULT_RESERVATION_TTL_MINUTES,
    DEFAULT_UNPAID_AUTO_CANCEL_HOURS,
    MAX_COMMISSION_HOLD_DAYS,
    TenantSettingsRow,
)
from tenant.settings.schemas import CommissionTier, SettingsOut, SettingsPatch

#: The largest monthly operating cost accepted (minor units; far below BIGINT).
MAX_OPERATING_COSTS = 10**15


@dataclass(frozen=True)
class TenantSettings:
    reservation_ttl_minutes: int = DEFAULT_RESERVATION_TTL_MINUTES
    unpaid_auto_cancel_hours: int = DEFAULT_UNPAID_AUTO_CANCEL_HOURS
    tax_rate: Decimal = Decimal(0)
    operating_costs_monthly: int = 0
    operating_costs_currency: str | None = None
    notification_email: str | None = None
    commission_tiers: tuple[commission_tiers.Tier, ...] = commission_tiers.DEFAULT_TIERS
    commission_hold_days: int = DEFAULT_COMMISSION_HOLD_DAYS
    updated_at: datetime | None = None

    def out(self) -> SettingsOut:
        return SettingsOut(reservation_ttl_minutes=self.reservation_ttl_minutes,
                           unpaid_auto_cancel_hours=self.unpaid_auto_cancel_hours,
                           tax_rate=plain_decimal(self.tax_rate),
                           operating_costs_monthly=self.operating_costs_monthly,
                           operating_costs_currency=self.operating_costs_currency,
                           notification_email=self.notification_email,
                           commission_tiers=[CommissionTier(
                               name=t.name, min_referred_revenue_usd=t.min_referred_revenue_usd,
                               rate_percent=plain_decimal(t.rate_percent))
                               for t in self.commission_tiers],
                           commission_hold_days=self.commission_hold_days,
                           updated_at=self.updated_at)


def _of(row: TenantSettingsRow | None) -> TenantSettings:
    if row is None:
        return TenantSettings()
    return TenantSettings(reservation_ttl_minutes=row.reservation_ttl_minutes,
                          unpaid_auto_cancel_hours=row.unpaid_auto_cancel_hours,
                          tax_rate=Decimal(row.tax_rate),
                          operating_costs_monthly=row.operating_costs_monthly or 0,
                          operating_costs_currency=row.operating_costs_currency,
                          notification_email=row.notification_email,
                          commission_tiers=commission_tiers.of_settings(row.commission_tiers),
                          commission_hold_days=row.commission_hold_days,
                          updated_at=row.updated_at)


async def load(session: AsyncSession) -> TenantSettings:
    return _of(await session.get(TenantSettingsRow, 1))


def _check(patch: SettingsPatch) -> None:
    ttl = patch.reservation_ttl_minutes
    if ttl is not msgspec.UNSET and not 1 <= ttl <= 10080:
        raise ValidationError("reservation_ttl_minutes must be between 1 and 10080 (7 days)",
                              param="reservation_ttl_minutes")
    hours = patch.unpaid_auto_cancel_hours
    if hours is not msgspec.UNSET and not 1 <= hours <= 8760:
        raise ValidationError("unpaid_auto_cancel_hours must be between 1 and 8760 (1 year)",
                              param="unpaid_auto_cancel_hours")
    rate = patch.tax_rate
    if rate is not msgspec.UNSET:
        try:
            ok = rate.is_finite() and Decimal(0) <= rate < Decimal(100) \
                and rate == rate.quantize(Decimal("0.0001"))
        except InvalidOperation:
            ok = False
        if not ok:
            raise ValidationError("tax_rate is a percent in [0, 100) with at most 4 decimals",
                                  param="tax_rate")
    costs = patch.operating_costs_monthly
    if costs is not msgspec.UNSET and not 0 <= costs <= MAX_OPERATING_COSTS:
        raise ValidationError("operating_costs_monthly is minor units per month, from 0 up to "
                              f"{MAX_OPERATING_COSTS}", param="operating_costs_monthly")
    code = patch.operating_costs_currency
    if isinstance(code, str):
        patch.operating_costs_currency = normalize_currency(
            code, param="operating_costs_currency")
    days = patch.commission_hold_days
    if days is not msgspec.UNSET and not 0 <= days <= MAX_COMMISSION_HOLD_DAYS:
        raise ValidationError(f"commission_hold_days must be between 0 and "
                              f"{MAX_COMMISSION_HOLD_DAYS}", param="commission_hold_days")


def _tiers_column(patch: SettingsPatch) -> list[dict[str, object]] | None:
    """The ``commission_tiers`` column for a patch that sets them (validated)."""
    given = patch.commission_tiers
    if given is None or given is msgspec.UNSET:
        return None
    return [t.as_json() for t in commission_tiers.parse(
        [msgspec.structs.asdict(t) for t in given])]


async def update(session: AsyncSession, patch: SettingsPatch, actor: Actor) -> TenantSettings:
    _check(patch)
    _tiers_column(patch)  # a malformed table is refused before anything is locked
    row = await session.get(TenantSettingsRow, 1, with_for_update=True)
    if row is None:
        row = TenantSettingsRow(id=1, reservation_ttl_minutes=DEFAULT_RESERVATION_TTL_MINUTES,
                                unpaid_auto_cancel_hours=DEFAULT_UNPAID_AUTO_CANCEL_HOURS,
                                tax_rate=Decimal(0))
        session.add(row)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    if "commission_tiers" in changes:
        changes["commission_tiers"] = _tiers_column(patch)
    for name, value in changes.items():
        setattr(row, name, value)
    if (row.operating_costs_monthly or 0) > 0 and row.operating_costs_currency is None:
        raise ValidationError("operating_costs_monthly needs operating_costs_currency",
                              param="operating_costs_currency")
    row.updated_by = actor.key_id
    await session.flush()
    await session.refresh(row)
    record(session, AuditLog, actor, "settings.updated", "settings", "tenant",
           {k: str(v) for k, v in changes.items()})
    return _of(row)

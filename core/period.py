"""A report's period: ``from`` inclusive, ``to`` exclusive, ISO dates or datetimes (UTC when
no offset is given), and the operating costs prorated over it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from core.db import utcnow
from core.errors import ValidationError
from core.money import round_minor

#: A report without ``from`` covers this many days before ``to``.
DEFAULT_DAYS = 30


def parse_instant(value: str, param: str) -> datetime:
    """``2026-03-01`` (midnight UTC) or ``2026-03-01T12:00:00+01:00``; anything else 400."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{param} must be an ISO date (2026-03-01) or datetime "
                              "(2026-03-01T12:00:00Z)", param=param) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> Period:
        until = parse_instant(end, "to") if end else utcnow()
        since = parse_instant(start, "from") if start else until - timedelta(days=DEFAULT_DAYS)
        if since > until:
            raise ValidationError("from must not be after to", param="from")
        if since.year < 1970 or until.year > 9998:
            raise ValidationError("the period must lie between 1970 and 9998", param="from")
        return cls(since.astimezone(UTC), until.astimezone(UTC))


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def prorate_monthly(monthly: int, period: Period) -> int:
    """``monthly`` (minor units per calendar month, UTC) over ``period``: each month the
    period overlaps contributes ``monthly × overlap ÷ that month's length``; the sum is
    rounded once (half away from zero)."""
    if monthly == 0 or period.start >= period.end:
        return 0
    share = Decimal(0)
    month = _month_start(period.start)
    while month < period.end:
        following = _next_month(month)
        overlap = min(following, period.end) - max(month, period.start)
        if overlap > timedelta(0):
            share += Decimal(monthly) * _seconds(overlap) / _seconds(following - month)
        month = following
    return round_minor(share)


def _seconds(span: timedelta) -> Decimal:
    return Decimal(span.days * 86400 + span.seconds) + Decimal(span.microseconds) / 10**6

"""FX rates shared by every tenant (O6): the layered look-up, the refresh, the overrides.

A rate is looked up through these layers, first answer wins (docs/fx.md):

1. USD itself: ``native`` (rate 1);
2. the owner's override: ``manual``;
3. the last fetched rate, if younger than ``PAYMESH_FX_TTL_SECONDS``: ``cached``;
4. the rate API (``PAYMESH_FX_API_URL``), asked now; its answer is stored: ``api``;
5. the last fetched rate, however old: ``expired``;
6. ``PAYMESH_FX_FALLBACK``: ``fallback``;
7. none: 422 ``fx_rate_unavailable``.

A dead, slow or nonsensical API is logged and counted (``paymesh_fx_api_failures_total``)
and never reaches a customer. Each process asks the API at most once at a time, and
after a failure not again for :data:`~core.caches.FX_FETCHES`' lifetime (30 s), so a dead
API costs one timeout per half minute, not one per sale; the scheduler's hourly
:func:`refresh` asks regardless.

Tenant code converts with :func:`convert` (``await fx.convert(amount, "VND", "USD")``):
it reads the owner database through the process's runtime, like the catalog snapshot,
never through the caller's tenant session, and keeps the stored rates a few seconds in a
per-process cache (:data:`~core.caches.FX_RATES`; this process's writes clear it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import caches
from core.audit import Actor, record
from core.db import after_commit, utcnow
from core.errors import UnprocessableError, ValidationError
from core.fx import BASE, NATIVE_USD, Conversion, Quote, RateError, Source, apply, parse_rate
from core.metrics import FX_API_FAILURES, FX_API_FETCHES, FX_QUOTES
from core.money import normalize_currency, plain_decimal
from core.runtime import Runtime, get_runtime
from core.settings import Settings
from owner.audit.models import OwnerAuditLog
from owner.fx.client import FetchFailed, fetch_rates
from owner.fx.models import FxRate, FxRateHistory

log = logging.getLogger(__name__)

_stored_cache = caches.FX_RATES
_fetch_cache = caches.FX_FETCHES


@dataclass(frozen=True)
class Stored:
    rate: Decimal
    at: datetime


#: (currency, source) → the stored rate; source ``api`` or ``manual``.
Snapshot = dict[tuple[str, str], Stored]


@dataclass(frozen=True)
class FetchOutcome:
    """One call of the rate API: its rates (empty when it failed) and when it answered."""

    rates: dict[str, Decimal] = field(default_factory=dict)
    at: datetime | None = None


# ----------------------------------------------------------------------------- look-up


async def convert(amount: int, from_currency: str, to_currency: str, *,
                  runtime: Runtime | None = None) -> Conversion:
    """``amount`` minor units of ``from_currency`` in ``to_currency``, with the rate(s) and
    source(s) used (store ``conversion.rate`` and ``conversion.source`` with the result).
    Raises a 422 ``fx_rate_unavailable`` when a currency has no rate in any layer."""
    runtime = runtime or get_runtime()
    source_quote = await quote(from_currency, runtime=runtime)
    target_quote = await quote(to_currency, runtime=runtime)
    return apply(amount, source_quote, target_quote)


async def quote(currency: str, *, runtime: Runtime | None = None) -> Quote:
    """``currency``'s rate (units per 1 USD) from the first layer that has one."""
    runtime = runtime or get_runtime()
    currency = normalize_currency(currency)
    found = await _resolve(runtime, currency)
    FX_QUOTES.labels(found.source.value if found else "unavailable").inc()
    if found is None:
        raise UnprocessableError(f"no exchange rate is available for {currency}",
                                 code="fx_rate_unavailable", param="currency")
    return found


async def _resolve(runtime: Runtime, currency: str) -> Quote | None:
    if currency == BASE:
        return NATIVE_USD
    settings = runtime.settings
    stored = await _snapshot(runtime)
    manual = stored.get((currency, "manual"))
    if manual is not None:
        return Quote(currency, manual.rate, Source.MANUAL, manual.at)
    fetched = stored.get((currency, "api"))
    if fetched is not None and _fresh(fetched, settings, utcnow()):
        return Quote(currency, fetched.rate, Source.CACHED, fetched.at)
    if settings.fx_api_url:
        outcome: FetchOutcome = await _fetch_cache.get_or_load(
            settings.fx_api_url, lambda: _fetch_and_store(runtime))
        if currency in outcome.rates:
            return Quote(currency, outcome.rates[currency], Source.API, outcome.at)
    if fetched is not None:
        return Quote(currency, fetched.rate, Source.EXPIRED, fetched.at)
    if currency in settings.fx_fallback:
        return Quote(currency, settings.fx_fallback[currency], Source.FALLBACK)
    return None


def _fresh(row: Stored, settings: Settings, now: datetime) -> bool:
    return now - row.at < timedelta(seconds=settings.fx_ttl_seconds)


async def _snapshot(runtime: Runtime) -> Snapshot:
    async def load() -> Snapshot:
        async with runtime.owner_session() as session:
            return await _read_stored(session)

    return await _stored_cache.get_or_load("all", load)  # type: ignore[no-any-return]


async def _read_stored(session: AsyncSession) -> Snapshot:
    rows = (await session.scalars(select(FxRate))).all()
    return {(r.currency, r.source): Stored(r.rate, r.fetched_at) for r in rows}


def forget_cached_rates() -> None:
    _stored_cache.clear()


# ----------------------------------------------------------------------------- the API


async def refresh(runtime: Runtime) -> int:
    """Fetch every rate from the API and store it (the scheduler's hourly job); the number
    of rates stored, 0 when no API is configured or it failed (logged and counted)."""
    url = runtime.settings.fx_api_url
    if not url:
        return 0
    outcome = await _fetch_and_store(runtime)
    _fetch_cache.put(url, outcome)
    return len(outcome.rates)


async def _fetch_and_store(runtime: Runtime) -> FetchOutcome:
    """One call of the API; its rates stored with their history. Never raises: a failed
    call is an empty outcome (which the fetch cache keeps, so callers back off)."""
    settings = runtime.settings
    assert settings.fx_api_url
    try:
        rates, refused = await fetch_rates(runtime.http, settings.fx_api_url,
                                           settings.fx_timeout_seconds)
    except FetchFailed as exc:
        FX_API_FAILURES.labels(exc.reason).inc()
        log.warning("FX rate API failed (%s: %s); conversions use the next layer",
                    exc.reason, exc.detail)
        return FetchOutcome()
    except Exception:  # noqa: BLE001 - e.g. a malformed PAYMESH_FX_API_URL: still no 5xx
        FX_API_FAILURES.labels("error").inc()
        log.exception("FX rate API call failed; conversions use the next layer")
        return FetchOutcome()
    FX_API_FETCHES.inc()
    if refused:
        log.warning("FX rate API: %d entries refused (%s)", len(refused),
                    ", ".join(refused[:10]))
    fetched_at = utcnow()
    try:
        async with runtime.owner_session() as session:
            await store_fetched(session, rates, fetched_at)
    except Exception:  # noqa: BLE001 - the rates are good for this conversion anyway
        log.exception("FX rates fetched but not stored")
    forget_cached_rates()
    return FetchOutcome(rates, fetched_at)


async def store_fetched(session: AsyncSession, rates: dict[str, Decimal],
                        fetched_at: datetime) -> None:
    """Upsert the fetched rates (a concurrent, older fetch never overwrites a newer one)
    and append them to the history."""
    rows = [{"currency": c, "source": "api", "rate": r, "fetched_at": fetched_at}
            for c, r in sorted(rates.items())]
    statement = insert(FxRate).values(rows)
    await session.execute(statement.on_conflict_do_update(
        index_elements=[FxRate.currency, FxRate.source],
        set_={"rate": statement.excluded.rate, "fetched_at": statement.excluded.fetched_at},
        where=FxRate.fetched_at < statement.excluded.fetched_at))
    await session.execute(insert(FxRateHistory).values(
        [{"currency": c, "source": "api", "rate": r, "recorded_at": fetched_at}
         for c, r in sorted(rates.items())]))


# ----------------------------------------------------------------------------- the owner


async def current_rates(session: AsyncSession, settings: Settings) -> list[Quote]:
    """What ``GET /v1/owner/fx-rates`` shows: per currency, the rate a conversion would
    take now without asking the API (manual, else the fetched one as ``cached`` or
    ``expired``, else the configured fallback)."""
    stored = await _read_stored(session)
    now = utcnow()
    quotes: dict[str, Quote] = {}
    for (currency, source), row in sorted(stored.items(), key=lambda i: i[0][1] != "manual"):
        if currency in quotes:
            continue
        if source == "manual":
            quotes[currency] = Quote(currency, row.rate, Source.MANUAL, row.at)
        else:
            kind = Source.CACHED if _fresh(row, settings, now) else Source.EXPIRED
            quotes[currency] = Quote(currency, row.rate, kind, row.at)
    for currency, rate in settings.fx_fallback.items():
        quotes.setdefault(currency, Quote(currency, rate, Source.FALLBACK))
    return [quotes[c] for c in sorted(quotes)]


async def set_overrides(session: AsyncSession, changes: dict[str, str | None],
                        actor: Actor) -> None:
    """Set (a rate) or remove (``None``) manual overrides, all or nothing: every entry is
    checked before anything is written; each change is audited and kept in the history."""
    if not changes:
        raise ValidationError("rates must name at least one currency", param="rates")
    parsed: dict[str, Decimal | None] = {}
    for key, value in changes.items():
        param = f"rates.{key}"[:64]
        currency = normalize_currency(key, param=param)
        if currency == BASE:
            raise ValidationError("USD is the base currency: its rate is always 1", param=param)
        if currency in parsed:
            raise ValidationError(f"{currency} is named twice", param=param)
        try:
            parsed[currency] = None if value is None else parse_rate(value)
        except RateError as exc:
            raise ValidationError(f"{currency}: {exc}", param=param) from None
    now = utcnow()
    previous = {r.currency: r.rate for r in (await session.scalars(
        select(FxRate).where(FxRate.source == "manual", FxRate.currency.in_(parsed))
        .with_for_update())).all()}
    for currency, rate in sorted(parsed.items()):
        if rate is None:
            if currency not in previous:
                continue  # nothing to remove: nothing changes, nothing is recorded
            await session.execute(delete(FxRate).where(
                FxRate.currency == currency, FxRate.source == "manual"))
        else:
            statement = insert(FxRate).values(currency=currency, source="manual", rate=rate,
                                              fetched_at=now, set_by=actor.key_id)
            await session.execute(statement.on_conflict_do_update(
                index_elements=[FxRate.currency, FxRate.source],
                set_={"rate": rate, "fetched_at": now, "set_by": actor.key_id}))
        session.add(FxRateHistory(currency=currency, source="manual", rate=rate,
                                  recorded_at=now, set_by=actor.key_id))
        old = previous.get(currency)
        record(session, OwnerAuditLog, actor,
               "fx.override_removed" if rate is None else "fx.override_set", "fx_rate",
               currency, {"rate": None if rate is None else str(plain_decimal(rate)),
                          "previous": None if old is None else str(plain_decimal(old))})
    after_commit(session, forget_cached_rates)
    await session.flush()

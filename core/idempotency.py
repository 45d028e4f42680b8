"""``Idempotency-Key`` for POSTs that create things or move money (T6).

One plain function, :func:`run_idempotent`, that a handler calls with its request, its
tenant session and the work to do. It keeps one row per key in the tenant's own database
(unique per key) and works inside the request's transaction, so the stored response
commits together with the business change or not at all:

1. ``pg_try_advisory_xact_lock`` on the key: a second request with the same key while the
   first is still running gets **409** at once instead of queuing behind it;
2. a stored, unexpired response for the key: same method + path + body → replayed byte
   for byte with ``Idempotent-Replayed: true``; anything else → **422**
   ``idempotency_key_reused``;
3. otherwise the work runs and its response (if not a 5xx) is stored for
   :data:`RETENTION`.

A request that fails (exception → rollback) leaves no row, so the client may retry with
the same key. The lock is released when the transaction ends; the row stays.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import DateTime, Integer, LargeBinary, String, Uuid, delete, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import TenantBase, utcnow
from core.errors import Conflict, UnprocessableError, ValidationError
from core.sql import Transaction, sql

if TYPE_CHECKING:  # Litestar is the API's: workers import this module for its table only
    from litestar import Request, Response

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: How long a key is remembered (the spec asks for at least 24 h).
RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255
#: First half of the two-part advisory lock id, so these locks never collide with others.
_LOCK_NAMESPACE = 0x49444D50  # "IDMP"

#: What the work returns: the HTTP status and a JSON-encodable body (Struct, dict, …).
Outcome = tuple[int, Any]


class IdempotencyRecord(TenantBase):
    """One remembered request/response pair, per tenant database, unique per key."""

    __tablename__ = "idempotency_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), unique=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class IdempotencyInFlight(Conflict):
    code = "idempotency_request_in_progress"


class IdempotencyKeyReused(UnprocessableError):
    code = "idempotency_key_reused"


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Same request ⇔ same method, path and JSON body (key order and spacing ignored)."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except msgspec.DecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _lock_id(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)


def _json(status: int, body: bytes, *, replayed: bool = False) -> Response[Any]:
    from litestar import MediaType, Response

    headers = {REPLAYED_HEADER: "true"} if replayed else {}
    return Response(content=body, status_code=status, media_type=MediaType.JSON,
                    headers=headers)


def encode(content: Any) -> bytes:
    return content if isinstance(content, bytes) else msgspec.json.encode(content)


def key_of(request: Request[Any, Any, Any]) -> str | None:
    raw = request.headers.get(HEADER.lower())
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable characters",
                              param=HEADER)
    return key


_LOCK = "SELECT pg_try_advisory_xact_lock($1, $2)"
_STORED = ("SELECT method, path, request_hash, status_code, response_body, expires_at "
           "FROM idempotency_keys WHERE key = $1")
_FORGET = "DELETE FROM idempotency_keys WHERE key = $1"
_REMEMBER = ("INSERT INTO idempotency_keys (id, key, method, path, request_hash, status_code, "
             "response_body, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")


async def run_idempotent(
    request: Request[Any, Any, Any],
    db: AsyncSession | Transaction,
    work: Callable[[], Awaitable[Outcome]],
    *,
    now: datetime | None = None,
) -> Response[Any]:
    """Run ``work`` at most once per ``Idempotency-Key`` (no key: just run it).

    The bookkeeping is three plain statements in the request's transaction ``db`` (lock,
    look up, remember); ``work`` may use it as it likes.
    """
    key = key_of(request)
    if key is None:
        status, content = await work()
        return _json(status, encode(content))
    now = now or utcnow()
    digest = fingerprint(request.method, request.url.path, await request.body())
    statements = await sql(db)
    if not await statements.fetchval(_LOCK, _LOCK_NAMESPACE, _lock_id(key)):
        raise IdempotencyInFlight(
            "a request with this Idempotency-Key is still being processed; retry shortly",
            param=HEADER)
    stored = await statements.fetchrow(_STORED, key)
    if stored is not None and stored["expires_at"] > now:
        if stored["request_hash"] != digest:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request "
                f"({stored['method']} {stored['path']}); use a new key", param=HEADER)
        return _json(stored["status_code"], stored["response_body"], replayed=True)
    if stored is not None:  # expired: the key is free again
        await statements.execute(_FORGET, key)
    status, content = await work()
    body = encode(content)
    if status < 500:
        await statements.execute(_REMEMBER, uuid.uuid4(), key, request.method.upper(),
                                 request.url.path[:500], digest, status, body, now,
                                 now + RETENTION)
    return _json(status, body)


async def purge_expired(session: AsyncSession, now: datetime | None = None) -> int:
    """Forget keys past their retention (for the scheduler). Returns how many."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= (now or utcnow())))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]

"""Products: create, list, change. Stock moves only through :mod:`tenant.orders.reservations`."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor, record
from core.db import fetch_page, where_state
from core.errors import Conflict, NotFound, ValidationError
from core.money import normalize_currency
from tenant.audit.models import AuditLog
from tenant.products.models import Product, ProductKind
from tenant.products.schemas import ProductIn, ProductOut, ProductPatch

MAX_METADATA_KEYS = 50


def to_out(row: Product) -> ProductOut:
    return ProductOut(
        id=str(row.id), name=row.name, description=row.description, kind=row.kind,
        price=row.price, currency=row.currency, stock=row.stock, reserved=row.reserved,
        available=None if row.stock is None else row.stock - row.reserved,
        active=row.active, metadata=row.meta or {}, created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def create(session: AsyncSession, data: ProductIn, actor: Actor) -> ProductOut:
    currency = normalize_currency(data.currency)
    if data.stock is not None and data.kind != ProductKind.PHYSICAL:
        raise ValidationError("stock applies to physical products only", param="stock")
    if len(data.metadata) > MAX_METADATA_KEYS:
        raise ValidationError(f"metadata takes at most {MAX_METADATA_KEYS} keys",
                              param="metadata")
    if not data.name.strip():
        raise ValidationError("name must not be blank", param="name")
    row = Product(name=data.name.strip(), description=data.description,
                  kind=data.kind, price=data.price, currency=currency, stock=data.stock,
                  reserved=0, active=data.active, meta=dict(data.metadata))
    session.add(row)
    await session.flush()
    await session.refresh(row)
    record(session, AuditLog, actor, "product.created", "product", row.id,
           {"kind": row.kind, "price": row.price, "currency": currency, "stock": row.stock})
    return to_out(row)


async def get(session: AsyncSession, product_id: uuid.UUID) -> ProductOut:
    row = await session.get(Product, product_id)
    if row is None:
        raise NotFound(f"product {product_id} not found", param="id")
    return to_out(row)


async def update(session: AsyncSession, product_id: uuid.UUID, patch: ProductPatch,
                 actor: Actor) -> ProductOut:
    row = await session.get(Product, product_id, with_for_update=True)
    if row is None:
        raise NotFound(f"product {product_id} not found", param="id")
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    if "stock" in changes:
        stock = changes["stock"]
        if stock is not None and row.kind != ProductKind.PHYSICAL:
            raise ValidationError("stock applies to physical products only", param="stock")
        if stock is None and row.reserved:
            raise Conflict("units are reserved by unpaid orders; stock cannot stop being "
                           "tracked now", code="stock_reserved", param="stock")
        if stock is not None and stock < row.reserved:
            raise Conflict(f"{row.reserved} units are reserved by unpaid orders; stock cannot "
                           "go below that", code="stock_reserved", param="stock")
    if "name" in changes:
        if not changes["name"].strip():
            raise ValidationError("name must not be blank", param="name")
        changes["name"] = changes["name"].strip()
    for name, value in changes.items():
        setattr(row, name, value)
    await session.flush()
    await session.refresh(row)
    record(session, AuditLog, actor, "product.updated", "product", row.id,
           {k: v for k, v in changes.items() if k != "description"})
    return to_out(row)


async def list_products(session: AsyncSession, *, page: int, limit: int,
                        kind: str | None = None, active: bool | None = None,
                        currency: str | None = None) -> tuple[list[ProductOut], bool]:
    query = select(Product).order_by(Product.created_at.desc(), Product.id)
    query = where_state(query, Product.kind, kind, ProductKind, "kind")
    if active is not None:
        query = query.where(Product.active == active)
    if currency:
        query = query.where(Product.currency == normalize_currency(currency))
    rows, more = await fetch_page(session, query, page, limit)
    return [to_out(r) for r in rows], more

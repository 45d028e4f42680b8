"""The report's settlement effect: a lost dispute adds its amount and the provider's
dispute fee to the order's ``dispute_losses`` (beside ``amount_refunded``), so the revenue
report reads one table. A dispute is lost once (its status is final), like a refund
succeeds once."""

from __future__ import annotations

from collections.abc import Sequence

from core.sql import columns, sql
from tenant.orders import sql as orders_sql
from tenant.orders.models import Order
from tenant.settlement.effects import Db, Disputed, Movement, effect, sync_loaded

_LOST = orders_sql.add_amounts("dispute_losses")


@effect(Movement.DISPUTE_LOST, order=20)
async def add_dispute_losses(db: Db, batch: Sequence[Disputed]) -> None:
    rows = await (await sql(db)).fetch(_LOST, *columns((d.order_id, d.amount + (d.fee or 0))
                                                       for d in batch))
    for row in rows:
        sync_loaded(db, Order, row["id"], {"dispute_losses": row["dispute_losses"]})

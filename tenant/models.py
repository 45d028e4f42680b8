"""Every table of a tenant database (imported by its Alembic environment)."""

from __future__ import annotations

from core.idempotency import IdempotencyRecord
from tenant.audit.models import AuditLog
from tenant.coupons.models import Coupon, CouponRedemption
from tenant.disputes.models import Dispute
from tenant.entitlements.models import Entitlement
from tenant.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from tenant.notifications.models import Notification
from tenant.orders.models import Order, OrderItem, Reservation
from tenant.outgoing.models import OutgoingDelivery, OutgoingEvent, WebhookEndpoint
from tenant.payments.models import Payment
from tenant.products.models import Product
from tenant.referrals.models import Commission, ReferralCode, Referrer
from tenant.refunds.models import Refund
from tenant.provider_configs.models import ProviderConfigRow
from tenant.settings.models import TenantSettingsRow
from tenant.webhooks.models import WebhookEvent

__all__ = [
    "AuditLog",
    "Commission",
    "Coupon",
    "CouponRedemption",
    "Dispute",
    "Entitlement",
    "IdempotencyRecord",
    "LedgerAccount",
    "LedgerEntry",
    "LedgerTransaction",
    "Notification",
    "Order",
    "OrderItem",
    "OutgoingDelivery",
    "OutgoingEvent",
    "Payment",
    "Product",
    "ProviderConfigRow",
    "ReferralCode",
    "Referrer",
    "Refund",
    "Reservation",
    "TenantSettingsRow",
    "WebhookEndpoint",
    "WebhookEvent",
]

"""The chart of accounts. Accounts are created on first use, so adding one is a code change.

Provider clearing accounts exist per provider (``provider_clearing:<code>``): money the
provider has captured for the tenant and not yet paid out.
"""

from __future__ import annotations

from tenant.ledger.models import AccountType

CUSTOMER_RECEIVABLE = "customer_receivable"
REVENUE = "revenue"
PROVIDER_FEES = "provider_fees"
REFUNDS = "refunds"
#: Discounts given (coupons): contra-revenue beside the gross revenue.
DISCOUNTS = "discounts"
DISPUTES = "disputes"
DISPUTE_LOSSES = "dispute_losses"
PLATFORM_FEES = "platform_fees"
COMMISSIONS_PAYABLE = "commissions_payable"
#: Referral commissions earned by referrers (expense), owed until paid (payable).
COMMISSIONS = "commissions"
#: The tenant's own bank: money paid out outside Paymesh (commissions marked paid).
CASH_AT_BANK = "cash_at_bank"
TAX_PAYABLE = "tax_payable"
CASH_ON_HAND = "cash_on_hand"
CLEARING_PREFIX = "provider_clearing:"

CHART: dict[str, tuple[str, AccountType]] = {
    CUSTOMER_RECEIVABLE: ("Customer receivable", AccountType.ASSET),
    REVENUE: ("Revenue", AccountType.REVENUE),
    PROVIDER_FEES: ("Provider fees", AccountType.EXPENSE),
    REFUNDS: ("Refunds", AccountType.CONTRA_REVENUE),
    DISCOUNTS: ("Discounts", AccountType.CONTRA_REVENUE),
    DISPUTES: ("Disputes and chargebacks", AccountType.EXPENSE),
    DISPUTE_LOSSES: ("Lost disputes and dispute fees", AccountType.EXPENSE),
    PLATFORM_FEES: ("Platform fees", AccountType.EXPENSE),
    COMMISSIONS_PAYABLE: ("Commissions payable", AccountType.LIABILITY),
    COMMISSIONS: ("Referral commissions", AccountType.EXPENSE),
    CASH_AT_BANK: ("Cash at bank (payouts made outside Paymesh)", AccountType.ASSET),
    TAX_PAYABLE: ("Tax payable", AccountType.LIABILITY),
    CASH_ON_HAND: ("Cash on hand (payments taken at the desk)", AccountType.ASSET),
}


def clearing(provider: str) -> str:
    return f"{CLEARING_PREFIX}{provider}"


def describe(code: str) -> tuple[str, AccountType]:
    """Name and type of an account code, or ``KeyError`` for codes outside the chart."""
    if code.startswith(CLEARING_PREFIX) and len(code) > len(CLEARING_PREFIX):
        return f"Provider clearing: {code[len(CLEARING_PREFIX):]}", AccountType.ASSET
    return CHART[code]

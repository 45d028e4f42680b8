"""A commission's status and its transition table (SPEC 3a, T14).

- ``pending → approved``: the scheduler, once ``commission_hold_days`` passed with no
  full refund or lost dispute (and no dispute open);
- ``approved → paid``: ``POST /v1/commissions/{id}/mark-paid`` (audited);
- ``pending | approved → cancelled``: a full refund or a lost dispute.

A partial refund reduces a ``pending`` or ``approved`` commission in place
(``X → X``). A ``paid`` commission is money already with the referrer: a later refund
changes the referrer's revenue and tier, not the commission.
"""

from __future__ import annotations

from enum import StrEnum

from core.errors import Conflict
from core.transitions import Transitions


class CommissionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PAID = "paid"
    CANCELLED = "cancelled"


class CommissionNotApproved(Conflict):
    code = "commission_not_approved"


C = CommissionStatus
#: Statuses whose amount a refund still changes.
OPEN = frozenset({C.PENDING, C.APPROVED})

COMMISSION_STATUS: Transitions[CommissionStatus] = Transitions("commission", CommissionStatus, {
    C.PENDING: (C.PENDING, C.APPROVED, C.CANCELLED),
    C.APPROVED: (C.APPROVED, C.PAID, C.CANCELLED),
}, error=CommissionNotApproved)

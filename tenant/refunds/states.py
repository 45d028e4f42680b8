"""A refund's status and its transition table (SPEC 3a, T11).

A refund starts ``pending`` (sent to the provider, waiting for its answer) or
``manual_required`` (bank transfer, cash: the money goes back outside Paymesh). Then:

- ``pending → succeeded | failed``: the provider's answer (at once or by webhook);
- ``pending → cancelled``: the provider cancelled it before it was paid out;
- ``manual_required → succeeded``: staff marked it refunded
  (``POST /v1/refunds/{id}/mark-refunded``); ``manual_required → cancelled``: given up.

``succeeded``, ``failed`` and ``cancelled`` are final: a new attempt is a new refund. A
provider that reports a refund failed after it succeeded (a bank returning it) does not
un-succeed it here: the order, ledger and commissions already followed the success, so
that is a new event for staff, not a move back.
"""

from __future__ import annotations

from enum import StrEnum

from core.transitions import Transitions


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MANUAL_REQUIRED = "manual_required"
    CANCELLED = "cancelled"


R = RefundStatus
#: Statuses a refund can be created in.
INITIAL = frozenset({R.PENDING, R.MANUAL_REQUIRED})
#: Statuses that count against what is still refundable (SPEC 3a).
HOLDING = frozenset({R.PENDING, R.SUCCEEDED, R.MANUAL_REQUIRED})

REFUND_STATUS: Transitions[RefundStatus] = Transitions("refund", RefundStatus, {
    R.PENDING: (R.SUCCEEDED, R.FAILED, R.CANCELLED),
    R.MANUAL_REQUIRED: (R.SUCCEEDED, R.CANCELLED),
    R.SUCCEEDED: (),
    R.FAILED: (),
    R.CANCELLED: (),
})

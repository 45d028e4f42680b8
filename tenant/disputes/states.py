"""A dispute's (chargeback's) status and its transition table (SPEC 3a, T12).

A dispute is ``open`` from the provider's first webhook until its outcome: ``won`` (the
money comes back, the order returns to where it was) or ``lost`` (the order is refunded,
the amount and fee are losses). Both outcomes are final. The providers' own intermediate
statuses (Stripe's ``needs_response``/``under_review``, Paystack's ``awaiting-*``) are
not Paymesh statuses: the dispute stays ``open`` through them.
"""

from __future__ import annotations

from enum import StrEnum

from core.transitions import Transitions


class DisputeStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


D = DisputeStatus

DISPUTE_STATUS: Transitions[DisputeStatus] = Transitions("dispute", DisputeStatus, {
    D.OPEN: (D.WON, D.LOST),
    D.WON: (),
    D.LOST: (),
})

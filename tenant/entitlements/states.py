"""An entitlement's status and its transition table (SPEC 3a, T15, T12).

An entitlement is granted ``active`` when its order is paid. A dispute opened on the order
``suspends`` it; a won dispute makes it ``active`` again, a lost one ``revokes`` it. A full
refund revokes it unless the refund keeps access (``keep_access``). ``revoked`` is final:
access given back is a new grant, not a move back.
"""

from __future__ import annotations

from enum import StrEnum

from core.transitions import Transitions


class EntitlementStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


E = EntitlementStatus

ENTITLEMENT_STATUS: Transitions[EntitlementStatus] = Transitions(
    "entitlement", EntitlementStatus, {
        E.ACTIVE: (E.SUSPENDED, E.REVOKED),
        E.SUSPENDED: (E.ACTIVE, E.REVOKED),
        E.REVOKED: (),
    })

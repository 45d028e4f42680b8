"""The states of a redemption and of its provider sync."""

from __future__ import annotations

from enum import StrEnum


class RedemptionStatus(StrEnum):
    RESERVED = "reserved"  # an unpaid order holds it (counts against the cap)
    REDEEMED = "redeemed"  # the order is paid (a refund does not give it back)
    RELEASED = "released"  # the order was cancelled or expired unpaid


class SyncStatus(StrEnum):
    NOT_LINKED = "not_linked"  # nothing to sync (no link, not paid, or paid at the owner)
    PENDING = "pending"  # to be synced (or being retried)
    DONE = "done"
    FAILED = "failed"  # every try failed; replayable


class SyncAction(StrEnum):
    DECREMENTED = "decremented"
    DELETED = "deleted"
    ALREADY_DELETED = "already_deleted"
    SKIPPED_UNLIMITED = "skipped_unlimited"

"""A payment attempt's status table (the enum lives with the model, :mod:`.models`).

An attempt is created ``pending``, ``requires_action`` or ``processing`` (open at the
provider), or already ``failed``/``cancelled`` (the provider said so at once). Every later
write of ``payments.status`` goes through :data:`ATTEMPT_STATUS`: :meth:`check`/:meth:`can`
in Python, ``status = ANY(<sources>)`` in the set-based statements of
:mod:`tenant.payments.settle` and :mod:`tenant.payments.checkout`.

- ``succeeded`` is final: a failure, cancellation or review reported after a success
  changes nothing (refunds and disputes live on the order and in the ledger, not here).
- money can still arrive for an attempt that was given up on (``failed``, ``superseded``,
  ``cancelled``): a retried card succeeds, a late webhook is kept (see
  :mod:`tenant.payments.events`), so those move to ``succeeded`` or ``needs_review``.
- ``needs_review → needs_review``: another finding on an attempt already kept for review;
  ``needs_review → succeeded``: the right amount arrived after a mismatching report.
- ``→ pending`` from a closed attempt: a provider that hands back an id it gave before
  (cash's one id per order) revives that row for a new checkout or a mark-paid;
  ``pending → pending``: the same open attempt refreshed.
- a provider may still report a failure for an attempt Paymesh superseded or cancelled:
  it is recorded (``failed``), as the provider's final word.
"""

from __future__ import annotations

from core.transitions import Transitions
from tenant.payments.models import PaymentAttemptStatus

A = PaymentAttemptStatus
_OPEN = (A.PENDING, A.REQUIRES_ACTION, A.PROCESSING)
_CLOSED_TO = (A.SUCCEEDED, A.FAILED, A.SUPERSEDED, A.CANCELLED, A.NEEDS_REVIEW)

ATTEMPT_STATUS: Transitions[PaymentAttemptStatus] = Transitions(
    "payment attempt", PaymentAttemptStatus, {
        A.PENDING: (A.PENDING, A.REQUIRES_ACTION, A.PROCESSING, *_CLOSED_TO),
        A.REQUIRES_ACTION: (A.PENDING, A.PROCESSING, *_CLOSED_TO),
        A.PROCESSING: (A.PENDING, A.REQUIRES_ACTION, *_CLOSED_TO),
        A.FAILED: (A.PENDING, A.SUCCEEDED, A.NEEDS_REVIEW),
        A.SUPERSEDED: (A.PENDING, A.SUCCEEDED, A.FAILED, A.NEEDS_REVIEW),
        A.CANCELLED: (A.PENDING, A.SUCCEEDED, A.FAILED, A.NEEDS_REVIEW),
        A.NEEDS_REVIEW: (A.NEEDS_REVIEW, A.SUCCEEDED),
        A.SUCCEEDED: (),
    })

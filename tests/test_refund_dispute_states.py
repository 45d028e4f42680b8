"""The refund and dispute status tables (their services come next; the tables first).

Every legal move is allowed, every other one is refused with the 409 domain error that
names the current status and lists the allowed targets.
"""

from __future__ import annotations

import itertools

import pytest

from core.errors import Conflict
from core.transitions import InvalidStatusTransition
from tenant.disputes.states import DISPUTE_STATUS, DisputeStatus
from tenant.refunds.states import REFUND_STATUS, RefundStatus

R, D = RefundStatus, DisputeStatus

REFUND_MOVES = {
    (R.PENDING, R.SUCCEEDED), (R.PENDING, R.FAILED), (R.PENDING, R.CANCELLED),
    (R.MANUAL_REQUIRED, R.SUCCEEDED), (R.MANUAL_REQUIRED, R.CANCELLED),
}
DISPUTE_MOVES = {(D.OPEN, D.WON), (D.OPEN, D.LOST)}


@pytest.mark.parametrize(("table", "enum", "legal"), [
    (REFUND_STATUS, RefundStatus, REFUND_MOVES),
    (DISPUTE_STATUS, DisputeStatus, DISPUTE_MOVES),
])
def test_exactly_the_legal_moves_are_allowed(table, enum, legal) -> None:
    for source, target in itertools.product(enum, enum):
        if (source, target) in legal:
            assert table.check(source, target) is target
        else:
            with pytest.raises(InvalidStatusTransition) as refused:
                table.check(source.value, target.value)
            allowed = sorted(t for s, t in legal if s is source)
            error = refused.value.to_dict()["error"]
            assert isinstance(refused.value, Conflict) and refused.value.status_code == 409
            assert (error["code"], error["current"]) == ("invalid_transition", source.value)
            assert sorted(error["allowed"]) == allowed
            assert f"'{source.value}'" in error["message"]


def test_refused_moves_name_the_way_out() -> None:
    with pytest.raises(InvalidStatusTransition) as refused:
        REFUND_STATUS.check("manual_required", "failed")
    assert refused.value.to_dict()["error"]["allowed"] == ["succeeded", "cancelled"]
    with pytest.raises(InvalidStatusTransition) as refused:
        DISPUTE_STATUS.check("won", "lost")  # an outcome is final
    assert refused.value.to_dict()["error"]["allowed"] == []
    assert "allowed: none" in refused.value.message


def test_set_based_guards_list_the_sources() -> None:
    assert REFUND_STATUS.sources(R.SUCCEEDED) == (R.PENDING, R.MANUAL_REQUIRED)
    assert REFUND_STATUS.sources_sql("succeeded") == \
        "ARRAY['pending', 'manual_required']::text[]"
    assert DISPUTE_STATUS.sources(D.OPEN) == ()

"""The check the outbox and feed tests rely on (tests/support/commit_order.py) fails on each way a
reader can go wrong — otherwise those tests could pass whatever the reader did."""

from __future__ import annotations

import pytest

from tests.support.commit_order import WrittenTransaction, assert_handed_out_in_commit_order


def transactions() -> list[WrittenTransaction]:
    # a committed before b began; c overlapped both; d rolled back.
    return [
        WrittenTransaction(["a1", "a2"], began=0, committed=2),
        WrittenTransaction(["b1"], began=3, committed=5),
        WrittenTransaction(["c1"], began=1, committed=6),
        WrittenTransaction(["d1"], began=4, committed=None),
    ]


@pytest.mark.parametrize(
    "handed_out", [["a1", "a2", "b1", "c1"], ["c1", "a1", "a2", "b1"], ["a1", "a2", "c1", "b1"]]
)
def test_every_order_consistent_with_commits_passes(handed_out: list[str]) -> None:
    assert_handed_out_in_commit_order(handed_out, transactions())


@pytest.mark.parametrize(
    ("handed_out", "complaint"),
    [
        (["a1", "a2", "c1"], "never handed out"),  # b1 skipped
        (["a1", "a2", "b1", "c1", "b1"], "more than once"),
        (["a1", "a2", "b1", "c1", "d1"], "rolled-back"),
        (["b1", "a1", "a2", "c1"], "before a row of a transaction that committed"),
        (["a2", "a1", "b1", "c1"], "out of order"),
    ],
)
def test_each_way_of_going_wrong_fails(handed_out: list[str], complaint: str) -> None:
    with pytest.raises(AssertionError, match=complaint):
        assert_handed_out_in_commit_order(handed_out, transactions())

"""What "handed out in commit order" means, checked the same way for every outbox and feed
(docs/decisions/0007-commit-order.md).

Writers record, for each transaction, a ticket taken just before its first write and one taken just
after its commit returned (one counter for the whole test, in one event loop, so tickets order what
the test saw happen). The rows a reader handed out must then be:
- every row of every committed transaction, each exactly once, and no row of a rolled-back one;
- in an order consistent with commits: when transaction A's commit returned before transaction B
  began writing, every row of A comes before every row of B (B could not commit first, nor even hold
  a lower transaction id); the rows of one transaction come in the order it wrote them.
Transactions that overlapped may come in either order — no reader can tell which committed first.
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import dataclass, field


def chosen_seed(variable: str = "VR_TEST_SEED") -> int:
    """A random seed, printed (pytest shows it with a failure) and repeatable through `variable`."""
    seed = int(os.environ.get(variable) or random.SystemRandom().randrange(2**32))
    print(f"seed {seed} (repeat with {variable}={seed})")
    return seed


@dataclass
class WrittenTransaction:
    rows: list[str] = field(default_factory=list)  # row names, in the order written
    began: int = 0
    committed: int | None = None  # None: rolled back


@dataclass
class Tickets:
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def take(self) -> int:
        return next(self._counter)


def assert_handed_out_in_commit_order(handed_out: list[str], transactions: list[WrittenTransaction]) -> None:
    committed = [t for t in transactions if t.committed is not None]
    expected = sorted(row for t in committed for row in t.rows)
    duplicates = sorted({row for row in handed_out if handed_out.count(row) > 1})
    assert not duplicates, f"handed out more than once: {duplicates[:10]}"
    missing = sorted(set(expected) - set(handed_out))
    extra = sorted(set(handed_out) - set(expected))
    assert not missing, f"{len(missing)} committed rows never handed out, e.g. {missing[:10]}"
    assert not extra, f"rows of rolled-back transactions handed out: {extra[:10]}"
    position = {row: i for i, row in enumerate(handed_out)}
    for t in committed:
        positions = [position[row] for row in t.rows]
        assert positions == sorted(positions), f"a transaction's rows out of order: {t.rows}"
    # Sorted by commit, each transaction must start after every one that committed before it began.
    by_commit = sorted(committed, key=lambda t: t.committed or 0)
    for later in committed:
        earlier = [t for t in by_commit if (t.committed or 0) < later.began]
        if earlier:
            last_of_earlier = max(position[t.rows[-1]] for t in earlier)
            first_of_later = position[later.rows[0]]
            assert last_of_earlier < first_of_later, (
                f"{later.rows[0]} handed out before a row of a transaction that committed before "
                f"{later.rows[0]}'s transaction began"
            )

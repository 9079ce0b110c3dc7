"""Each message of a batch against what is stored: new, replay, duplicate or conflict
(docs/decisions/0005-exactly-once-effect.md)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from kpi_engine.domain.effects import EventKey
from kpi_engine.domain.messages import Decoded

Stored = tuple[bytes, int, int]  # payload hash, partition, offset


@dataclass
class Classified:
    """Each message of a batch against what is stored (and what came earlier in the batch)."""

    new: list[Decoded] = field(default_factory=list)
    replays: int = 0
    duplicates: dict[EventKey, int] = field(default_factory=lambda: defaultdict(int))
    conflicting: list[Decoded] = field(default_factory=list)


def classify(batch: Sequence[Decoded], inserted: set[EventKey], stored: dict[EventKey, Stored]) -> Classified:
    """`inserted`: the keys this batch wrote (their first message is new); `stored`: what the others
    already had."""
    known = dict(stored)
    result = Classified()
    for decoded in batch:
        seen = known.get(decoded.key)
        if seen is None and decoded.key in inserted:
            known[decoded.key] = (decoded.payload_hash, decoded.partition, decoded.offset)
            result.new.append(decoded)
        elif seen is None:  # the recorder reads every key it did not insert: a bug if it did not
            raise ValueError(f"event {decoded.key} neither inserted nor stored")
        elif (seen[1], seen[2]) == (decoded.partition, decoded.offset):
            result.replays += 1  # redelivered after a crash before the offset commit: not a duplicate
        elif seen[0] == decoded.payload_hash:
            result.duplicates[decoded.key] += 1
        else:
            result.conflicting.append(decoded)
    return result

from __future__ import annotations

import orjson
import pytest

from ingest.entrypoints.body import CLOUDEVENTS, CLOUDEVENTS_BATCH, JSON, NDJSON, BodyLimits, parse_items
from ingest.handlers import Unparseable
from vr_shared.web import Problem

LIMITS = BodyLimits(max_bytes=5 * 1024 * 1024, max_events=1000)


def test_json_object_is_one_item_and_array_is_many() -> None:
    assert parse_items(b'{"id": "a"}', JSON, LIMITS) == [{"id": "a"}]
    assert parse_items(b'[{"id": "a"}, {"id": "b"}]', JSON, LIMITS) == [{"id": "a"}, {"id": "b"}]


def test_cloudevents_structured_takes_an_object_and_batch_an_array() -> None:
    assert parse_items(b'{"id": "a"}', CLOUDEVENTS, LIMITS) == [{"id": "a"}]
    assert parse_items(b'[{"id": "a"}]', CLOUDEVENTS_BATCH, LIMITS) == [{"id": "a"}]
    with pytest.raises(Problem) as err:
        parse_items(b'{"id": "a"}', CLOUDEVENTS_BATCH, LIMITS)
    assert err.value.status == 400


def test_ndjson_skips_blank_lines_and_marks_bad_lines_with_their_number() -> None:
    items = parse_items(b'{"id": "a"}\r\n\n{oops\n{"id": "c"}\n', NDJSON, LIMITS)
    assert items[0] == {"id": "a"} and items[2] == {"id": "c"}
    assert isinstance(items[1], Unparseable) and "line 3" in items[1].message


def test_more_than_the_event_limit_is_413() -> None:
    with pytest.raises(Problem) as err:
        parse_items(orjson.dumps([{}] * 1001), JSON, LIMITS)
    assert err.value.status == 413


def test_exactly_the_event_limit_is_accepted() -> None:
    assert len(parse_items(orjson.dumps([{}] * 1000), JSON, LIMITS)) == 1000


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{", JSON, 400),
        (b"42", JSON, 400),
        (b"[]", JSON, 422),
        (b"", NDJSON, 422),
        (b"{}", "text/csv", 415),
    ],
)
def test_bodies_that_hold_no_events_are_refused(body: bytes, content_type: str, status: int) -> None:
    with pytest.raises(Problem) as err:
        parse_items(body, content_type, LIMITS)
    assert err.value.status == status

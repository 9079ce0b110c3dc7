from __future__ import annotations

import orjson
import pytest

from ingest.domain.intake import BodyLimits
from ingest.entrypoints.body import CLOUDEVENTS, CLOUDEVENTS_BATCH, JSON, NDJSON, parse_items
from ingest.handlers import Unparseable
from vr_shared.web import Problem

LIMITS = BodyLimits(max_bytes=5 * 1024 * 1024, max_events=1000)


def _parseable(items: list[object]) -> list[object]:
    return [i for i in items if not isinstance(i, Unparseable)]


def test_json_object_is_one_item_and_array_is_many() -> None:
    one = parse_items(b'{"id": "a"}', JSON, LIMITS)
    many = parse_items(b'[{"id": "a"}, {"id": "b"}]', JSON, LIMITS)
    assert one.items == [{"id": "a"}] and orjson.loads(one.json_array) == one.items
    assert many.items == [{"id": "a"}, {"id": "b"}] and orjson.loads(many.json_array) == many.items


def test_cloudevents_structured_takes_an_object_and_batch_an_array() -> None:
    assert parse_items(b'{"id": "a"}', CLOUDEVENTS, LIMITS).items == [{"id": "a"}]
    assert parse_items(b'[{"id": "a"}]', CLOUDEVENTS_BATCH, LIMITS).items == [{"id": "a"}]
    with pytest.raises(Problem) as err:
        parse_items(b'{"id": "a"}', CLOUDEVENTS_BATCH, LIMITS)
    assert err.value.status == 400


def test_ndjson_skips_blank_lines_and_marks_bad_lines_with_their_number() -> None:
    parsed = parse_items(b'{"id": "a"}\r\n\n{oops\n{"id": "c"}\n', NDJSON, LIMITS)
    assert parsed.items[0] == {"id": "a"} and parsed.items[2] == {"id": "c"}
    assert isinstance(parsed.items[1], Unparseable) and "line 3" in parsed.items[1].message
    assert orjson.loads(parsed.json_array) == _parseable(parsed.items)  # the array holds only parseable lines


def test_more_than_the_event_limit_is_413() -> None:
    with pytest.raises(Problem) as err:
        parse_items(orjson.dumps([{}] * 1001), JSON, LIMITS)
    assert err.value.status == 413


def test_ndjson_lines_are_counted_before_any_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    monkeypatch.setattr(orjson, "loads", lambda line: parsed.append(line) or {})  # counts parses
    with pytest.raises(Problem) as err:
        parse_items(b"{}\n" * 1001, NDJSON, LIMITS)
    assert (err.value.status, parsed) == (413, [])
    assert "1001 lines" in str(err.value.detail)


def test_exactly_the_event_limit_is_accepted() -> None:
    assert len(parse_items(orjson.dumps([{}] * 1000), JSON, LIMITS).items) == 1000


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [(b"{", JSON, 400), (b"42", JSON, 400), (b"[]", JSON, 422), (b"", NDJSON, 422), (b"{}", "text/csv", 415)],
)
def test_bodies_that_hold_no_events_are_refused(body: bytes, content_type: str, status: int) -> None:
    with pytest.raises(Problem) as err:
        parse_items(body, content_type, LIMITS)
    assert err.value.status == status

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.support.examples import INVALID_DATA, VALID_DATA, event, invalid_event
from vr_shared.events import EVENT_TYPES, FieldError, validate_events


def test_examples_cover_the_whole_catalogue() -> None:
    assert set(VALID_DATA) == set(EVENT_TYPES) == set(INVALID_DATA)
    assert len(EVENT_TYPES) == 16  # docs/events.md, "The catalogue": cancels of admissions and discharges too


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_valid_example_of_each_type_is_accepted(type_: str) -> None:
    [result] = validate_events([event(type_)])
    assert not isinstance(result, list), result
    assert result.type == type_
    assert result.data.model_dump(mode="json") == {**VALID_DATA[type_], **result.data.model_dump(mode="json")}


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_invalid_example_of_each_type_is_rejected_at_its_path(type_: str) -> None:
    body, path = invalid_event(type_)
    [result] = validate_events([body])
    assert isinstance(result, list), f"{type_} example should be invalid"
    assert path in [e.path for e in result], result


def _errors(item: object) -> list[FieldError]:
    [result] = validate_events([item])
    assert isinstance(result, list)
    return result


def test_a_claim_of_unknown_cleanliness_is_accepted_and_a_non_boolean_is_not() -> None:
    """docs/events.md: `clean` null or absent is unknown (every FHIR Claim without the extension)."""
    absent = event("claim.submitted")
    del absent["data"]["clean"]
    for body in (absent, event("claim.submitted", clean=None)):
        [result] = validate_events([body])
        assert not isinstance(result, list), result
        assert result.data.clean is None
    assert [e.path for e in _errors(event("claim.submitted", clean="yes"))] == ["$.data.clean"]


def test_unknown_envelope_field_is_rejected() -> None:
    assert [e.path for e in _errors({**event("cost.incurred"), "tenant": "someone-else"})] == ["$.tenant"]


def test_unknown_event_type_names_the_type_field() -> None:
    [error] = _errors({**event("cost.incurred"), "type": "cost.spent"})
    assert error.path == "$.type"
    assert "cost.incurred" in error.message


def test_missing_type_names_the_type_field() -> None:
    body = event("cost.incurred")
    del body["type"]
    assert [e.path for e in _errors(body)] == ["$.type"]


@pytest.mark.parametrize("time", ["2026-03-04T10:00:00", "2026-03-04", "1772636400", "04/03/2026 10:00"])
def test_time_without_offset_or_not_rfc3339_is_rejected(time: str) -> None:
    assert "$.time" in [e.path for e in _errors(event("cost.incurred", time=time))]


def test_unix_timestamp_number_is_not_a_time() -> None:
    body = event("cost.incurred")
    body["time"] = 1772636400
    assert "$.time" in [e.path for e in _errors(body)]


@pytest.mark.parametrize("amount", [12.5, 12, "12.5.0", "1e3", "12.34567", "NaN", " 12.00"])
def test_money_must_be_a_plain_decimal_string(amount: object) -> None:
    assert "$.data.amount" in [e.path for e in _errors(event("claim.submitted", amount=amount))]


def test_money_keeps_its_exact_decimal_value() -> None:
    [result] = validate_events([event("claim.submitted", amount="1250.10")])
    assert not isinstance(result, list)
    assert result.data.amount == Decimal("1250.10")  # type: ignore[union-attr]
    assert result.model_dump(mode="json")["data"]["amount"] == "1250.10"


def test_booleans_must_be_json_booleans() -> None:
    assert "$.data.planned" in [e.path for e in _errors(event("encounter.admitted", planned=1))]


def test_planned_defaults_to_false() -> None:
    body = event("encounter.admitted")
    del body["data"]["planned"]
    [result] = validate_events([body])
    assert not isinstance(result, list) and result.data.planned is False  # type: ignore[union-attr]


def test_outage_must_end_after_it_starts() -> None:
    same = "2026-03-04T01:00:00-05:00"
    [error] = _errors(event("system.outage", started_at=same, ended_at=same))
    assert error.path == "$.data" and "ended_at must be after started_at" in error.message


def test_instants_compare_across_offsets() -> None:
    # 06:00Z is 01:00-05:00: ending at 01:30-05:00 is after it, so the outage is valid.
    [result] = validate_events(
        [event("system.outage", started_at="2026-03-04T06:00:00Z", ended_at="2026-03-04T01:30:00-05:00")]
    )
    assert not isinstance(result, list)


def test_retraction_cannot_retract_itself() -> None:
    body = event("event.retracted", id_="evt-x", retracted_id="evt-x")
    assert "$" in [e.path for e in _errors(body)]


def test_point_of_service_payment_must_be_a_patient_payment() -> None:
    assert "$.data" in [e.path for e in _errors(event("payment.received", patient_payment=False))]


def test_mixed_batch_keeps_valid_items_and_reports_each_invalid_one() -> None:
    items = [
        event("cost.incurred"),
        {"not": "an event"},
        event("claim.submitted", amount="x"),
        event("ar.snapshot"),
    ]
    results = validate_events(items)
    assert [isinstance(r, list) for r in results] == [False, True, True, False]
    assert [e.path for e in results[2]] == ["$.data.amount"]  # type: ignore[union-attr]


def test_non_object_item_is_an_error_not_a_crash() -> None:
    [result] = validate_events([42])
    assert isinstance(result, list) and result[0].path == "$"


def test_pattern_errors_say_the_rule_not_the_regex() -> None:
    [error] = _errors(event("cost.incurred", source="epic/adt"))
    assert (error.path, error.message) == (
        "$.source",
        "must be URI characters without '/', '?', '#' or spaces",
    )
    [error] = _errors(event("system.outage", system="EHR"))
    assert error.path == "$.data.system" and error.message.startswith("must be lower-case letters")


def test_validating_json_bytes_gives_the_same_results_as_validating_items() -> None:
    import orjson

    items = [
        event("cost.incurred"),
        event("claim.submitted", amount=3),
        {"type": "nope"},
        event("ar.snapshot"),
    ]
    from_items = validate_events(items)
    from_bytes = validate_events(items, json_array=orjson.dumps(items))
    assert from_items == from_bytes
    assert [isinstance(r, list) for r in from_bytes] == [False, True, True, False]


def test_a_duplicated_key_is_judged_on_the_value_that_is_kept() -> None:
    # Both parsers keep the last value; the item ingest would publish is the one that was validated.
    import orjson

    raw = orjson.dumps(event("claim.submitted")).replace(b'"amount":"1250.00"', b'"amount":"1.00","amount":7')
    [result] = validate_events([orjson.loads(raw)], json_array=b"[" + raw + b"]")
    assert isinstance(result, list) and result[0].path == "$.data.amount"


def test_bytes_the_validator_cannot_parse_fall_back_to_the_items() -> None:
    [result] = validate_events([event("cost.incurred")], json_array=b"[not json")
    assert not isinstance(result, list)


def test_identifiers_with_control_characters_are_refused_at_the_door() -> None:
    [error] = _errors(event("claim.submitted", claim_ref="a\u0000b"))
    assert (error.path, error.message) == (
        "$.data.claim_ref",
        "must not contain control characters (NUL, tab, line breaks…)",
    )
    assert "$.id" in [e.path for e in _errors(event("cost.incurred", id_="x\ny"))]

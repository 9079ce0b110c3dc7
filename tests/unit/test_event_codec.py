from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.support.examples import event
from vr_shared.events import EVENT_TYPES, decode_event, encode_event, message_key, validate_event


def test_patient_events_are_keyed_by_tenant_and_patient() -> None:
    admitted = validate_event(event("encounter.admitted", facility="a"))
    discharged = validate_event(event("encounter.discharged", facility="b"))
    assert message_key("t1", admitted) == message_key("t1", discharged) == b"t1|p|MRN-555001"


def test_events_without_a_patient_are_keyed_by_tenant_and_facility() -> None:
    assert message_key("t1", validate_event(event("system.outage", facility="a"))) == b"t1|f|a"
    assert message_key("t1", validate_event(event("event.retracted", facility="a"))) == b"t1|f|a"


@given(type_=st.sampled_from(EVENT_TYPES), tenant=st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True))
def test_encode_then_decode_gives_back_the_tenant_and_the_same_event(type_: str, tenant: str) -> None:
    original = validate_event(event(type_))
    assert decode_event(encode_event(tenant, original)) == (tenant, original)

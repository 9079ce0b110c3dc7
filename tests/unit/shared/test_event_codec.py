from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.support.examples import event
from vr_shared.events import (
    EVENT_TYPES,
    Origin,
    decode_event,
    encode_event,
    event_document,
    message_key,
    validate_event,
)


def test_patient_events_are_keyed_by_tenant_and_patient() -> None:
    admitted = event("encounter.admitted", facility="a")
    discharged = event("encounter.discharged", facility="b")
    assert message_key("t1", admitted) == message_key("t1", discharged) == b"t1|p|MRN-555001"


def test_events_without_a_patient_are_keyed_by_tenant_and_facility() -> None:
    assert message_key("t1", event("system.outage", facility="a")) == b"t1|f|a"
    assert message_key("t1", event("event.retracted", facility="a")) == b"t1|f|a"
    assert message_key("t1", event("medication.ordered", facility="a")) == b"t1|f|a"


@given(
    type_=st.sampled_from(EVENT_TYPES),
    tenant=st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True),
    drop_optional=st.booleans(),
)
def test_as_sent_and_model_documents_decode_to_the_same_event(
    type_: str, tenant: str, drop_optional: bool
) -> None:
    sent = event(type_)
    if drop_optional:  # specversion and planned may be left out by the sender
        sent.pop("specversion")
        if type_ == "encounter.admitted":
            sent["data"].pop("planned")
    original = validate_event(sent)
    origin = Origin(tenant, "America/Chicago")
    assert decode_event(encode_event(origin, sent)) == (origin, original)
    assert decode_event(encode_event(origin, event_document(original))) == (origin, original)


def test_tenant_in_the_message_is_the_callers_not_the_documents() -> None:
    forged = {**event("cost.incurred"), "tenant": "forged", "tenanttz": "Asia/Tokyo"}
    origin, _ = decode_event(encode_event(Origin("caller-tenant", "Europe/Paris"), forged))
    assert origin == Origin("caller-tenant", "Europe/Paris")

"""Properties of the incremental engine against real PostgreSQL (docs/kpis.md correctness rules).

Each example is its own tenant in one migrated schema, so examples are isolated and cheap. Whatever
the arrival order, the redeliveries, the batch boundaries and where retractions fall, the stored cells
equal the from-scratch computation over the effective events taken in the order they were first
received (of a stay's discharges, the one received last stands) — and the rebuild, recomputing from the
events as stored, finds no difference. Stays come corrected as real feeds correct them: discharges
re-sent with other times, class changes at the same admission time, stays entered in error.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_engine.adapters.rebuild import PostgresRebuild
from kpi_engine.adapters.recorder import PostgresRecorder
from kpi_engine.domain.calendar import TenantCalendar
from kpi_engine.domain.computation import compute_cells
from kpi_engine.domain.messages import Decoded, Message
from kpi_engine.handlers import decode
from tests.integration.kpi.conftest import stored_cells
from tests.support.streams import corrected_stays, effective, event_stream, messy_stays
from vr_shared.events import Event, Origin, encode_event, event_document, validate_event

POOL = [e for e in event_stream(seed=5, count=160, days=40, patients=12) if e.type != "event.retracted"]
# Stays whose encounter refs collide across patients and facilities, with class changes.
POOL += messy_stays(seed=11, stays=40)
CORRECTED = corrected_stays(seed=17, stays=30)  # each stay's events together: its corrections meet
ZONE = "America/New_York"


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Event], list[Event], list[int]]:
    """Events in some order, some of them retracted (the retraction anywhere in the stream), some
    delivered more than once, cut into batches at arbitrary places."""
    chosen = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=50, unique_by=lambda e: e.id))
    chosen += [
        e for stay in draw(st.lists(st.sampled_from(CORRECTED), max_size=5, unique_by=id)) for e in stay
    ]
    # A cancel is final (docs/events.md): retracting one is another rule, not exercised here.
    retractable = [e for e in chosen if not e.type.endswith("_cancelled")]
    retracted = draw(st.lists(st.sampled_from(retractable), max_size=5, unique_by=lambda e: e.id))
    retractions = [
        validate_event(
            {
                "id": f"r-{e.id}",
                "source": e.source,
                "type": "event.retracted",
                "time": e.time.isoformat(),
                "facility": e.facility,
                "data": {"retracted_id": e.id},
            }
        )
        for e in retracted
    ]
    stream = draw(st.permutations(chosen + retractions))
    repeats = draw(st.lists(st.sampled_from(stream), max_size=10))
    stream = draw(st.permutations(stream + repeats))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=len(stream)), max_size=6))
    return chosen + retractions, stream, sorted(set(cuts))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=deliveries())
async def test_any_order_redelivery_and_retraction_give_the_from_scratch_cells(
    kpi_schema: tuple[AsyncEngine, str], case: tuple[list[Event], list[Event], list[int]]
) -> None:
    engine, schema = kpi_schema
    events, stream, cuts = case
    origin = Origin(f"t-{uuid.uuid4().hex[:12]}", ZONE)
    recorder = PostgresRecorder(engine, schema)
    messages = [
        Message(0, offset, encode_event(origin, event_document(e))) for offset, e in enumerate(stream)
    ]
    for start, end in zip([0, *cuts], [*cuts, len(messages)], strict=True):
        decoded = [d for d in (decode(m) for m in messages[start:end]) if isinstance(d, Decoded)]
        await recorder.record(decoded, [], datetime.now(UTC))
    received = first_deliveries(stream)
    assert sorted(e.id for e in received) == sorted(e.id for e in events)
    expected = compute_cells(effective(received), TenantCalendar.of(ZONE))
    assert await stored_cells(engine, origin.tenant) == expected
    # The rebuild's comparison (stored events recomputed, against the stored cells) finds nothing.
    comparison = await PostgresRebuild(engine).compare(origin.tenant, TenantCalendar.of(ZONE))
    assert comparison.differences == []


def first_deliveries(stream: list[Event]) -> list[Event]:
    """The events in the order the engine first received them (what decides a stay's discharge)."""
    seen: set[tuple[str, str]] = set()
    firsts = []
    for event in stream:
        if (event.source, event.id) not in seen:
            seen.add((event.source, event.id))
            firsts.append(event)
    return firsts

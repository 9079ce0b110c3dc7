"""Response models of the KPI engine's feeds answer (docs/completeness.md): what the OpenAPI document
promises a pipeline's or a vendor's generated client. KPI values and readings are the shared contract
of vr_shared.readings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class DeclaredBy(_Answer):
    source: str
    id: str = Field(description="the `feed.complete` event that declared it")


class DayCount(_Answer):
    day: str
    events: int


class Feed(_Answer):
    facility: str
    feed: str
    kpis: list[str] = Field(description="the KPIs this feed moves that the caller may read")
    complete_through: str | None = Field(description="complete up to (not including) this instant")
    declared_by: DeclaredBy | None
    declared_at: str | None
    recorded_at: str | None
    newest_event_time: str | None
    recent_events: list[DayCount] = Field(description="events per local day, oldest first")


class FeedPage(_Answer):
    facilities: list[str]
    items: list[Feed]
    next: str | None

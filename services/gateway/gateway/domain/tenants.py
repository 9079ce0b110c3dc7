"""Tenants (docs/security.md): a health system with its facilities, or a vendor; each with its time zone.

The services learn a caller's facilities and time zone from the identity token the gateway signs, so
a tenant's document here is the single source of both.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from vr_shared.events.types import DisplayName, FacilityId

TenantId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]


class TenantRequest(BaseModel):
    """`POST /v1/tenants`"""

    model_config = ConfigDict(extra="forbid")
    id: TenantId
    name: DisplayName
    kind: Literal["health_system", "vendor"]
    timezone: str = "UTC"
    facilities: list[FacilityId] = Field(default_factory=list, max_length=1000)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {name!r}") from exc
        return name

    @field_validator("facilities")
    @classmethod
    def _unique(cls, facilities: list[str]) -> list[str]:
        if len(set(facilities)) != len(facilities):
            raise ValueError("facilities must not repeat")
        return facilities


class Tenant(TenantRequest):
    """A stored tenant (the request's fields; vendors have no facilities)."""

"""The event catalogue of docs/events.md as pydantic models.

Every event is the envelope (`id`, `source`, `type`, `time`, `facility`, `data`, optional CloudEvents
attributes) with a type-specific `data` model. Unknown fields are rejected everywhere, so a typo in a
pipeline's mapping is an error at the door rather than a silently missing number in a KPI.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from vr_shared.events.types import EventId, FacilityId, Label, Money, PositiveMoney, Ref, Source, Timestamp
from vr_shared.feeds import Feed

EncounterClass = Literal["inpatient", "observation", "emergency"]
Disposition = Literal[
    "home", "home_health", "snf", "rehab", "hospice", "transfer_acute", "ama", "expired", "other"
]
EntryMethod = Literal["cpoe", "verbal", "phone", "paper", "protocol"]
HarmCategory = Literal["A", "B", "C", "D", "E", "F", "G", "H", "I"]  # NCC MERP index
AdjudicationOutcome = Literal["paid", "denied", "partial"]

PSEUDONYMISED_FIELDS: tuple[str, ...] = ("patient_ref", "encounter_ref")
"""`data` fields that identify a patient or an encounter; replaced by a keyed hash at ingest."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


# --- data models -------------------------------------------------------------------------------


class EncounterAdmittedData(_Strict):
    encounter_ref: Ref
    patient_ref: Ref
    encounter_class: EncounterClass
    planned: StrictBool = False


class EncounterDischargedData(_Strict):
    encounter_ref: Ref
    patient_ref: Ref
    encounter_class: EncounterClass
    admitted_at: Timestamp
    disposition: Disposition


class EncounterAdmissionCancelledData(_Strict):
    """The admission of this encounter at `admitted_at` did not happen (HL7 A11; FHIR entered-in-error)."""

    encounter_ref: Ref
    patient_ref: Ref
    admitted_at: Timestamp


class EncounterDischargeCancelledData(_Strict):
    """The discharge of this encounter at `discharged_at` did not happen (HL7 A13)."""

    encounter_ref: Ref
    patient_ref: Ref
    discharged_at: Timestamp


class MedicationOrderedData(_Strict):
    order_ref: Ref
    encounter_ref: Ref
    entry_method: EntryMethod


class MedicationAdministeredData(_Strict):
    administration_ref: Ref
    encounter_ref: Ref
    patient_scanned: StrictBool
    medication_scanned: StrictBool


class AdverseDrugEventRecordedData(_Strict):
    encounter_ref: Ref
    harm_category: HarmCategory


class SepsisCaseEvaluatedData(_Strict):
    encounter_ref: Ref
    bundle_compliant: StrictBool
    excluded: StrictBool


class SystemOutageData(_Strict):
    system: Label
    started_at: Timestamp
    ended_at: Timestamp
    planned: StrictBool

    @model_validator(mode="after")
    def _ends_after_start(self) -> SystemOutageData:
        if self.ended_at <= self.started_at:
            raise ValueError("ended_at must be after started_at")
        return self


class ClaimSubmittedData(_Strict):
    claim_ref: Ref
    amount: Money
    # Passed edits with no manual touch; null or absent: unknown (a real FHIR Claim never says), which
    # the clean-claim rate leaves out of its denominator (docs/kpis.md).
    clean: StrictBool | None = None


class ClaimAdjudicatedData(_Strict):
    claim_ref: Ref
    outcome: AdjudicationOutcome
    initial: StrictBool
    paid_amount: Money
    denied_amount: Money

    @model_validator(mode="after")
    def _amounts_match_outcome(self) -> ClaimAdjudicatedData:
        if self.outcome == "denied" and self.paid_amount != 0:
            raise ValueError("a denied claim has paid_amount 0; use outcome 'partial'")
        if self.outcome == "paid" and self.denied_amount != 0:
            raise ValueError("a paid claim has denied_amount 0; use outcome 'partial'")
        return self


class PaymentReceivedData(_Strict):
    amount: Money
    patient_payment: StrictBool
    point_of_service: StrictBool

    @model_validator(mode="after")
    def _point_of_service_is_a_patient_payment(self) -> PaymentReceivedData:
        if self.point_of_service and not self.patient_payment:
            raise ValueError("point_of_service payments are patient payments (patient_payment must be true)")
        return self


class ArSnapshotData(_Strict):
    net_ar: Money
    avg_daily_net_revenue: PositiveMoney


class CostIncurredData(_Strict):
    category: Label
    amount: Money


class EventRetractedData(_Strict):
    retracted_id: EventId


class FeedCompleteData(_Strict):
    feed: Feed
    through: Timestamp


# --- envelopes -----------------------------------------------------------------------------------


class _Envelope(_Strict):
    id: EventId
    source: Source
    time: Timestamp
    facility: FacilityId
    specversion: Literal["1.0"] = "1.0"
    datacontenttype: Literal["application/json"] | None = None


class EncounterAdmitted(_Envelope):
    type: Literal["encounter.admitted"]
    data: EncounterAdmittedData


class EncounterDischarged(_Envelope):
    type: Literal["encounter.discharged"]
    data: EncounterDischargedData

    @model_validator(mode="after")
    def _admitted_before_discharge(self) -> EncounterDischarged:
        if self.data.admitted_at > self.time:
            raise ValueError("data.admitted_at must not be after the discharge time (time)")
        return self


class EncounterAdmissionCancelled(_Envelope):
    """Cancels the admission it names by its time, whether that admission arrived before or after it;
    an admission of the encounter at another time still counts (docs/events.md)."""

    type: Literal["encounter.admission_cancelled"]
    data: EncounterAdmissionCancelledData


class EncounterDischargeCancelled(_Envelope):
    """Cancels the discharge it names by its time: the stay is open again unless another discharge
    stands (docs/events.md)."""

    type: Literal["encounter.discharge_cancelled"]
    data: EncounterDischargeCancelledData


class MedicationOrdered(_Envelope):
    type: Literal["medication.ordered"]
    data: MedicationOrderedData


class MedicationAdministered(_Envelope):
    type: Literal["medication.administered"]
    data: MedicationAdministeredData


class AdverseDrugEventRecorded(_Envelope):
    type: Literal["adverse_drug_event.recorded"]
    data: AdverseDrugEventRecordedData


class SepsisCaseEvaluated(_Envelope):
    type: Literal["sepsis.case_evaluated"]
    data: SepsisCaseEvaluatedData


class SystemOutage(_Envelope):
    type: Literal["system.outage"]
    data: SystemOutageData


class ClaimSubmitted(_Envelope):
    type: Literal["claim.submitted"]
    data: ClaimSubmittedData


class ClaimAdjudicated(_Envelope):
    type: Literal["claim.adjudicated"]
    data: ClaimAdjudicatedData


class PaymentReceived(_Envelope):
    type: Literal["payment.received"]
    data: PaymentReceivedData


class ArSnapshot(_Envelope):
    type: Literal["ar.snapshot"]
    data: ArSnapshotData


class CostIncurred(_Envelope):
    type: Literal["cost.incurred"]
    data: CostIncurredData


class EventRetracted(_Envelope):
    type: Literal["event.retracted"]
    data: EventRetractedData

    @model_validator(mode="after")
    def _does_not_retract_itself(self) -> EventRetracted:
        if self.data.retracted_id == self.id:
            raise ValueError("an event cannot retract itself (data.retracted_id equals id)")
        return self


class FeedComplete(_Envelope):
    """Every event of `data.feed` for this facility with a time before `data.through` has been sent."""

    type: Literal["feed.complete"]
    data: FeedCompleteData

    @model_validator(mode="after")
    def _declares_the_past(self) -> FeedComplete:
        if self.data.through > self.time:
            raise ValueError("data.through must not be after the declaration's time (time)")
        return self


EVENT_CLASSES: tuple[type[_Envelope], ...] = (
    EncounterAdmitted,
    EncounterDischarged,
    EncounterAdmissionCancelled,
    EncounterDischargeCancelled,
    MedicationOrdered,
    MedicationAdministered,
    AdverseDrugEventRecorded,
    SepsisCaseEvaluated,
    SystemOutage,
    ClaimSubmitted,
    ClaimAdjudicated,
    PaymentReceived,
    ArSnapshot,
    CostIncurred,
    EventRetracted,
    FeedComplete,
)

Event = Annotated[
    EncounterAdmitted
    | EncounterDischarged
    | EncounterAdmissionCancelled
    | EncounterDischargeCancelled
    | MedicationOrdered
    | MedicationAdministered
    | AdverseDrugEventRecorded
    | SepsisCaseEvaluated
    | SystemOutage
    | ClaimSubmitted
    | ClaimAdjudicated
    | PaymentReceived
    | ArSnapshot
    | CostIncurred
    | EventRetracted
    | FeedComplete,
    Field(discriminator="type"),
]
"""Any catalogue event; `type` selects the model."""

EVENT_TYPES: tuple[str, ...] = tuple(cls.model_fields["type"].annotation.__args__[0] for cls in EVENT_CLASSES)  # type: ignore[union-attr]

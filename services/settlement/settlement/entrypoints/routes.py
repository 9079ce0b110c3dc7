"""HTTP routes of settlement (docs/contracts.md, docs/settlement.md): contracts, period inputs,
statements, finalize, what-if, audit.

Consumes: the gateway-signed identity; reads KPI values through the KPI engine's API. Produces:
statements with every amount a decimal string; final statements and adjustments for billing systems.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Response

from settlement.adapters.repository import PostgresSettlementStore, UnknownContract
from settlement.domain.contract import ContractInvalid, InputsInvalid, parse_contract, parse_inputs
from settlement.domain.csv_lines import statement_csv
from settlement.domain.inputs import input_errors
from settlement.domain.money import decimal_text
from settlement.domain.stored import Adjustment, StoredContract
from settlement.entrypoints.access import (
    MAX_SIMULATED_PERIODS,
    ensure_may_finalize,
    ensure_may_read,
    ensure_may_simulate,
    ensure_may_write,
    facility_errors,
    not_found,
)
from settlement.entrypoints.deps import Service, Store
from settlement.entrypoints.schemas import (
    AdjustmentPage,
    AuditPage,
    ContractAnswer,
    ContractPage,
    PeriodInputs,
    Reconciliation,
    Simulation,
    Statement,
    StatementPage,
)
from settlement.handlers import publish_targets
from vr_shared.auth import caller_with_role
from vr_shared.events.validation import FieldError
from vr_shared.identity import Identity
from vr_shared.pages import (
    DEFAULT_LIMIT,
    After,
    Limit,
    after_position,
    decode_cursor,
    encode_cursor,
    numeric_position,
    page,
)
from vr_shared.roles import ADMINS, READERS, Role
from vr_shared.web import Problem

router = APIRouter()

Caller = Annotated[Identity, Depends(caller_with_role(READERS))]
Writer = Annotated[Identity, Depends(caller_with_role(ADMINS))]
Document = Annotated[dict[str, Any], Body()]


async def _readable(store: PostgresSettlementStore, contract_id: str, caller: Identity) -> StoredContract:
    stored = await store.contract(contract_id)
    if stored is None:
        raise not_found(contract_id)
    ensure_may_read(caller, stored.contract)
    return stored


def _check_writer(caller: Identity, document: dict[str, Any], path_id: str | None = None) -> Any:
    contract = parse_contract(document, path_id=path_id)
    ensure_may_write(caller, contract)
    errors = facility_errors(caller, contract)
    if caller.role == Role.PLATFORM_ADMIN and caller.tenant != contract.health_system:
        # The gateway speaks for the health system a platform admin names (its facilities and zone);
        # when it cannot, there is no such health system, and its rules could not be checked.
        errors.append(FieldError("$.health_system", "no health system tenant has this id", "health_system"))
    if caller.tenant == contract.health_system and contract.timezone != caller.timezone:
        # KPI days are the health system's local days; periods in another zone would cut them apart.
        errors.append(
            FieldError("$.timezone", f"must be the health system's time zone ({caller.timezone})", "timezone")
        )
    if errors:
        raise ContractInvalid(errors)
    return contract


def _contract_answer(stored: StoredContract) -> dict[str, Any]:
    return {
        **stored.contract.as_document(),
        "version": stored.version,
        "created_at": stored.created_at.isoformat(),
        "updated_at": stored.updated_at.isoformat(),
    }


@router.post(
    "/v1/contracts",
    operation_id="createContract",
    response_model=ContractAnswer,
    response_model_exclude_unset=True,
    tags=["Contracts"],
    status_code=201,
    summary="Create a contract (version 1)",
)
async def create_contract(
    document: Document, caller: Writer, store: Store, response: Response
) -> dict[str, Any]:
    contract = _check_writer(caller, document)
    stored = await store.create_contract(contract, caller)
    publish_targets(stored.contract)
    response.headers["Location"] = f"/v1/contracts/{contract.id}"
    return _contract_answer(stored)


@router.get(
    "/v1/contracts",
    operation_id="listContracts",
    response_model=ContractPage,
    tags=["Contracts"],
    summary="Contracts the caller's tenant is party to",
)
async def list_contracts(
    caller: Caller, store: Store, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> dict[str, Any]:
    """By contract id, a page at a time."""
    tenant = None if caller.role == Role.PLATFORM_ADMIN else caller.tenant
    found = await store.contracts_of(tenant, after=decode_cursor(after), limit=limit + 1)
    return page(found, limit, lambda c: c.contract.id, StoredContract.summary)


@router.get(
    "/v1/contracts/{contract_id}",
    operation_id="getContract",
    response_model=ContractAnswer,
    response_model_exclude_unset=True,
    tags=["Contracts"],
    summary="A contract, its latest or a given version",
)
async def get_contract(
    contract_id: str, caller: Caller, store: Store, version: int | None = None
) -> dict[str, Any]:
    await _readable(store, contract_id, caller)
    stored = await store.contract(contract_id, version)
    if stored is None:
        raise Problem(404, "Unknown version", f"contract {contract_id!r} has no version {version}")
    return _contract_answer(stored)


@router.put(
    "/v1/contracts/{contract_id}",
    operation_id="updateContract",
    response_model=ContractAnswer,
    response_model_exclude_unset=True,
    tags=["Contracts"],
    summary="Change a contract (a new version)",
)
async def update_contract(
    contract_id: str, document: Document, caller: Writer, store: Store
) -> dict[str, Any]:
    existing = await store.contract(contract_id)
    if existing is None:
        raise not_found(contract_id)
    ensure_may_write(caller, existing.contract)  # the current parties decide, not the new document
    contract = _check_writer(caller, document, path_id=contract_id)
    moved = [
        FieldError(
            f"$.{name}",
            f"the parties of a contract do not change (was {getattr(existing.contract, name)!r})",
            "party",
        )
        for name in ("health_system", "vendor")
        if getattr(contract, name) != getattr(existing.contract, name)
    ]
    if moved:
        raise ContractInvalid(moved)
    try:
        stored = await store.update_contract(contract, caller)
    except UnknownContract:
        raise not_found(contract_id) from None
    publish_targets(stored.contract)
    return _contract_answer(stored)


@router.put(
    "/v1/contracts/{contract_id}/periods/{period}/inputs",
    operation_id="putPeriodInputs",
    response_model=PeriodInputs,
    tags=["Contracts"],
    summary="Set a period's inputs",
)
async def put_inputs(
    contract_id: str, period: str, document: Document, caller: Writer, store: Store, service: Service
) -> dict[str, Any]:
    stored = await store.contract(contract_id)
    if stored is None:
        raise not_found(contract_id)
    ensure_may_write(caller, stored.contract)
    checked = service.period(stored.contract, period)
    parsed = parse_inputs(document)
    if errors := input_errors(stored.contract, parsed):
        raise InputsInvalid(errors)
    # An input of a final period changes what is owed: that is an adjustment, never an edit.
    inputs = await service.put_inputs(contract_id, checked.id, parsed, caller)
    return {"contract_id": contract_id, "period": checked.id, "inputs": inputs}


@router.get(
    "/v1/contracts/{contract_id}/periods/{period}/inputs",
    operation_id="getPeriodInputs",
    response_model=PeriodInputs,
    tags=["Contracts"],
    summary="A period's inputs",
)
async def get_inputs(
    contract_id: str, period: str, caller: Caller, store: Store, service: Service
) -> dict[str, Any]:
    stored = await _readable(store, contract_id, caller)
    checked = service.period(stored.contract, period)
    inputs = await store.inputs(contract_id, checked.id)
    return {
        "contract_id": contract_id,
        "period": checked.id,
        "inputs": {k: decimal_text(v) for k, v in inputs.items()},
    }


@router.get(
    "/v1/contracts/{contract_id}/settlements",
    operation_id="listSettlements",
    response_model=StatementPage,
    response_model_exclude_unset=True,
    tags=["Settlements"],
    summary="Statements of every period begun so far",
)
async def list_settlements(
    contract_id: str, caller: Caller, store: Store, service: Service, limit: Limit = 12, after: After = None
) -> dict[str, Any]:
    """Oldest period first, a page at a time: final statements are read, the others computed — at most
    `limit` per page, however long the contract."""
    stored = await _readable(store, contract_id, caller)
    periods = after_position(service.periods_begun(stored), decode_cursor(after), lambda p: p.id)
    shown = [await service.statement(stored, p.id) for p in periods[:limit]]
    return {"items": shown, "next": encode_cursor(periods[limit - 1].id) if len(periods) > limit else None}


@router.get(
    "/v1/contracts/{contract_id}/settlements/{period}",
    operation_id="getSettlement",
    tags=["Settlements"],
    summary="One period's statement (`Accept: text/csv`: its lines as CSV)",
    response_model=Statement,
    response_model_exclude_unset=True,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_settlement(
    contract_id: str,
    period: str,
    caller: Caller,
    store: Store,
    service: Service,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    stored = await _readable(store, contract_id, caller)
    found = await service.statement(stored, period)
    if accept is not None and "text/csv" in accept:
        name = f"{contract_id}-{found['period']}.csv"
        return Response(
            statement_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return found


@router.get(
    "/v1/contracts/{contract_id}/settlements/{period}/adjustments",
    operation_id="listAdjustments",
    tags=["Settlements"],
    response_model=AdjustmentPage,
    summary="A final period's adjustments, oldest first (what late data changed after finalization)",
)
async def list_adjustments(
    contract_id: str,
    period: str,
    caller: Caller,
    store: Store,
    service: Service,
    limit: Limit = DEFAULT_LIMIT,
    after: After = None,
) -> dict[str, Any]:
    stored = await _readable(store, contract_id, caller)
    checked = service.period(stored.contract, period)
    found = await store.adjustments(contract_id, checked.id, after=numeric_position(after), limit=limit + 1)
    return page(found, limit, lambda adjustment: str(adjustment.id), Adjustment.as_json)


@router.post(
    "/v1/contracts/{contract_id}/settlements/{period}/finalize",
    operation_id="finalizeSettlement",
    response_model=Statement,
    response_model_exclude_unset=True,
    tags=["Settlements"],
    summary="Freeze a period's statement",
)
async def finalize(
    contract_id: str,
    period: str,
    caller: Caller,
    store: Store,
    service: Service,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    stored = await store.contract(contract_id)
    if stored is None:
        raise not_found(contract_id)
    ensure_may_finalize(caller, stored.contract)
    final, created = await service.finalize(stored, period, idempotency_key, caller)
    response.status_code = 201 if created else 200
    return final


@router.post(
    "/v1/contracts/{contract_id}/settlements/{period}/reconcile",
    operation_id="reconcileSettlement",
    response_model=Reconciliation,
    tags=["Settlements"],
    summary="Recompute a final period on today's data; a difference becomes an adjustment",
)
async def reconcile(
    contract_id: str, period: str, caller: Caller, store: Store, service: Service
) -> dict[str, Any]:
    stored = await store.contract(contract_id)
    if stored is None:
        raise not_found(contract_id)
    ensure_may_finalize(caller, stored.contract)
    checked = service.period(stored.contract, period)
    if await store.final(contract_id, checked.id) is None:
        raise Problem(409, "Not final", f"period {checked.id} is not final: its statement is always current")
    adjustment = await service.reconcile(contract_id, checked.id, "on_demand", "reconciliation requested")
    return {"adjustment": None if adjustment is None else adjustment.as_json()}


@router.get(
    "/v1/contracts/{contract_id}/audit",
    operation_id="getContractAudit",
    response_model=AuditPage,
    tags=["Contracts"],
    summary="Every write to the contract, append-only",
)
async def audit(
    contract_id: str, caller: Caller, store: Store, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> dict[str, Any]:
    """Oldest write first, a page at a time."""
    await _readable(store, contract_id, caller)
    found = await store.audit_trail(contract_id, after_seq=numeric_position(after), limit=limit + 1)
    return page(found, limit, lambda entry: str(entry["seq"]), lambda entry: entry)


@router.post(
    "/v1/contracts:simulate",
    operation_id="simulateContract",
    response_model=Simulation,
    response_model_exclude_unset=True,
    tags=["Contracts"],
    summary="What-if: statements a contract would produce (not stored)",
)
async def simulate(document: Document, caller: Caller, store: Store, service: Service) -> dict[str, Any]:
    try:
        contract = parse_contract(document.get("contract"))
    except ContractInvalid as exc:  # paths from the request's root: the contract is one member of it
        raise ContractInvalid(
            [FieldError("$.contract" + e.path[1:], e.message, e.code) for e in exc.errors]
        ) from None
    periods = document.get("periods")
    if not isinstance(periods, list) or not periods or not all(isinstance(p, str) for p in periods):
        raise ContractInvalid(
            [FieldError("$.periods", 'a non-empty list of period ids, e.g. ["2026-Q1"]', "periods")]
        )
    if len(periods) > MAX_SIMULATED_PERIODS:
        message = f"at most {MAX_SIMULATED_PERIODS} periods per what-if"
        raise ContractInvalid([FieldError("$.periods", message, "periods")])
    raw_inputs = document.get("inputs") or {}
    if not isinstance(raw_inputs, dict) or len(raw_inputs) > MAX_SIMULATED_PERIODS:
        raise ContractInvalid([FieldError("$.inputs", "an object of period id → inputs", "inputs")])
    checked = [service.period(contract, p) for p in periods]
    mine = [] if caller.tenant != contract.vendor else await store.contracts_of(caller.tenant)
    ensure_may_simulate(caller, contract, checked, [c.contract for c in mine])
    inputs = {period: parse_inputs(values) for period, values in raw_inputs.items()}
    return {"statements": await service.simulate(contract, periods, inputs)}

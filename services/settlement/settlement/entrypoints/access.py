"""Who may do what with a contract (docs/security.md), in one place.

Parties are the contract's health system and vendor. Another tenant's contract answers 404, exactly
like one that does not exist; a party whose role may not do this answers 403. A what-if reads the
health system's KPIs: a vendor may simulate only what a contract shared with it already lets it see —
the same KPIs (and dimension values), facilities and periods.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from settlement.domain.contract import Contract, ContractInvalid
from settlement.domain.periods import Period
from settlement.domain.statement import kpi_grants
from vr_shared.events.validation import FieldError
from vr_shared.identity import Identity
from vr_shared.roles import ADMINS, FINALIZERS, READERS, Role
from vr_shared.web import Problem

# A what-if computes every period it names (one KPI read each): a bounded number.
MAX_SIMULATED_PERIODS = 40


def not_found(contract_id: str) -> Problem:
    return Problem(
        404, "Unknown contract", f"no contract {contract_id!r}", type_="/problems/unknown-contract"
    )


def _party(caller: Identity, contract: Contract) -> bool:
    return caller.tenant in (contract.health_system, contract.vendor)


def ensure_may_read(caller: Identity, contract: Contract) -> None:
    if caller.role == Role.PLATFORM_ADMIN:
        return
    if not _party(caller, contract):
        raise not_found(contract.id)
    if caller.role not in READERS:
        raise Problem(
            403, "Forbidden", f"role {caller.role!r} may not read contracts", type_="/problems/forbidden"
        )


def ensure_may_finalize(caller: Identity, contract: Contract) -> None:
    ensure_may_read(caller, contract)
    if caller.role not in FINALIZERS:
        raise Problem(403, "Forbidden", f"role {caller.role!r} may not finalize", type_="/problems/forbidden")


def ensure_may_write(caller: Identity, contract: Contract) -> None:
    """Contracts and period inputs are written by the health system's admin (or a platform admin)."""
    if caller.role == Role.PLATFORM_ADMIN:
        return
    if not _party(caller, contract):
        raise not_found(contract.id)
    if caller.role not in ADMINS or caller.tenant != contract.health_system:
        raise Problem(
            403,
            "Forbidden",
            "contracts and their inputs are written by the health system's tenant admin",
            type_="/problems/forbidden",
        )


def facility_errors(caller: Identity, contract: Contract, at: str = "$") -> list[FieldError]:
    """Facilities that are not the health system's, when the caller speaks for it (its signed identity
    lists its facilities); `at` is the JSON path of the contract document."""
    if caller.tenant != contract.health_system:
        return []
    return [
        FieldError(f"{at}.facilities[{i}]", "not a facility of the health system", "facility")
        for i, facility in enumerate(contract.facilities)
        if facility not in caller.facilities
    ]


def ensure_may_simulate(
    caller: Identity, contract: Contract, periods: Sequence[Period], callers_contracts: Sequence[Contract]
) -> None:
    """The health system simulates on its own facilities; a vendor only KPIs, facilities and periods a
    contract with that health system already shows it (`callers_contracts`: the vendor's contracts)."""
    if caller.role == Role.PLATFORM_ADMIN:
        return
    if caller.tenant == contract.health_system:
        if errors := facility_errors(caller, contract, at="$.contract"):
            raise ContractInvalid(errors)
        return
    if caller.tenant == contract.vendor:
        shared = [c for c in callers_contracts if c.health_system == contract.health_system]
        if not (unseen := _not_shown(contract, periods, shared)):
            return
        raise Problem(
            403,
            "Forbidden",
            f"a what-if reads only what a contract with {contract.health_system!r} shows you; "
            f"not shown: {unseen}",
            type_="/problems/forbidden",
        )
    raise Problem(
        403,
        "Forbidden",
        "simulate only with your own facilities or those a contract shares with you",
        type_="/problems/forbidden",
    )


def _not_shown(contract: Contract, periods: Sequence[Period], shared: Sequence[Contract]) -> str | None:
    """The first (facility, KPI grant, period) the simulation would read that no shared contract
    covers; a KPI-less simulation still needs the facilities shared."""
    grants: list[str | None] = [*kpi_grants(contract)] or [None]
    for facility in contract.facilities:
        for grant in grants:
            for period in periods:
                if not any(
                    facility in c.facilities
                    and (grant is None or grant in kpi_grants(c))
                    and c.start <= period.start
                    # A period's end is exclusive, c.end is not; counted back from the period (a
                    # stored contract may end on 9999-12-31, whose next day does not exist).
                    and period.end - timedelta(days=1) <= c.end
                    for c in shared
                ):
                    return f"{grant or 'the facility'} of {facility!r} in {period.id}"
    return None

"""Who may do what with a contract (SPEC §7), in one place.

Parties are the contract's health system and vendor. Another tenant's contract answers 404, exactly
like one that does not exist; a party whose role may not do this answers 403.
"""

from __future__ import annotations

from settlement.domain.contract import Contract
from vr_shared.events.validation import FieldError
from vr_shared.identity import Identity
from vr_shared.web import Problem

READERS = frozenset({"tenant_admin", "billing", "ops"})
FINALIZERS = frozenset({"tenant_admin", "billing"})


def not_found(contract_id: str) -> Problem:
    return Problem(
        404, "Unknown contract", f"no contract {contract_id!r}", type_="/problems/unknown-contract"
    )


def _party(caller: Identity, contract: Contract) -> bool:
    return caller.tenant in (contract.health_system, contract.vendor)


def ensure_may_read(caller: Identity, contract: Contract) -> None:
    if caller.role == "platform_admin":
        return
    if not _party(caller, contract):
        raise not_found(contract.id)
    if caller.role not in READERS:
        raise Problem(
            403, "Forbidden", f"role {caller.role!r} may not read contracts", type_="/problems/forbidden"
        )


def ensure_may_finalize(caller: Identity, contract: Contract) -> None:
    ensure_may_read(caller, contract)
    if caller.role != "platform_admin" and caller.role not in FINALIZERS:
        raise Problem(403, "Forbidden", f"role {caller.role!r} may not finalize", type_="/problems/forbidden")


def ensure_may_write(caller: Identity, contract: Contract) -> None:
    """Contracts and period inputs are written by the health system's admin (or a platform admin)."""
    if caller.role == "platform_admin":
        return
    if not _party(caller, contract):
        raise not_found(contract.id)
    if caller.role != "tenant_admin" or caller.tenant != contract.health_system:
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

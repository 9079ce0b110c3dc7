"""Settlement service: contracts, period statements, finalization and adjustments (SPEC §6)."""

"""Settlement service: contracts, period statements, finalization and adjustments (docs/contracts.md)."""

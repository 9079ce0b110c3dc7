"""Term kinds (docs/contracts.md): pure functions over Decimal, each returning its amount and named steps."""

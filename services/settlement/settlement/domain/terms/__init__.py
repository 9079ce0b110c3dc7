"""Term kinds (SPEC §6): pure functions over Decimal, each returning its amount and named steps."""

"""Pure KPI rules: definitions, the tenant's calendar, what each event contributes. No I/O."""

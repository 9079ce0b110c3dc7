"""KPI engine: consumes `vr.events.v1`, keeps the KPIs of SPEC §5 exact and answers KPI queries."""

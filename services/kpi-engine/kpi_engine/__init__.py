"""KPI engine: consumes `vr.events.v1`, keeps the KPIs of docs/kpis.md exact and answers KPI queries."""

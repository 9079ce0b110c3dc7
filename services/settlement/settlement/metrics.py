"""Settlement metrics (docs/operations.md): amounts per contract and period status, and the work
behind them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SETTLEMENT_AMOUNT = Gauge(
    "vr_settlement_amount",
    "Latest computed period total (currency units; positive = owed to the vendor)",
    ["contract", "period", "status", "currency"],
)
STATEMENTS_COMPUTED = Counter("vr_settlement_statements_computed_total", "Statements computed", ["status"])
STATEMENT_SECONDS = Histogram(
    "vr_settlement_statement_seconds",
    "Time to compute one statement, KPI reads included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FINALIZATIONS = Counter("vr_settlement_finalizations_total", "Statements finalized")
ADJUSTMENTS = Counter(
    "vr_settlement_adjustments_total", "Adjustments recorded after finalization", ["trigger"]
)
KPI_READ_SECONDS = Histogram(
    "vr_settlement_kpi_read_seconds",
    "Latency of one KPI engine request (all readings of one statement)",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
KPI_UPDATES = Counter("vr_settlement_kpi_updates_total", "KPI change notices consumed", ["effect"])
RECONCILIATION_RETRIES = Counter(
    "vr_settlement_reconciliation_retries_total",
    "Batches of KPI change notices whose reconciliation failed and is retried, by cause",
    ["cause"],
)
KPI_TARGET = Gauge(
    "vr_settlement_kpi_target",
    "The KPI level a contract term aims at (dashboards draw it beside the KPI; alerts compare)",
    ["contract", "term", "tenant", "kpi", "dimension", "direction"],
)

STATEMENT_BLOCKED = Gauge(
    "vr_settlement_statement_blocked",
    "1 while a period past its run-out cannot be finalized because data is missing (docs/settlement.md)",
    ["contract", "period"],
)
WATCH_FAILURES = Counter(
    "vr_settlement_watch_failures_total",
    "Contracts the period watch could not check (each logged with its contract id); the others are checked",
)
RECONCILIATIONS_DEFERRED = Counter(
    "vr_settlement_reconciliations_deferred_total",
    "Reconciliations of a final period that booked nothing yet: readings not complete or not mature "
    "(the period is left pending; the period watch does it later)",
)
RECONCILIATION_FAILURES = Counter(
    "vr_settlement_reconciliation_failures_total",
    "Reconciliations of one final period that failed on an error retrying cannot pass (a refusal of "
    "the KPI engine, a statement the database refuses, a bug), by where; the period is left pending "
    "and the period watch tries it again each round",
    ["source"],
)
FINALS_PENDING = Gauge(
    "vr_settlement_finals_pending_reconciliation",
    "Final periods with a reconciliation pending, as the period watch last counted them",
)

# Known label values start at 0, so dashboards and alerts see a series before the first occurrence.
for _trigger in ("kpi_update", "inputs", "on_demand", "finalize", "recheck"):
    ADJUSTMENTS.labels(_trigger)
for _effect in ("touches_final", "no_final"):
    KPI_UPDATES.labels(_effect)
for _retried in ("kpi_engine", "database"):
    RECONCILIATION_RETRIES.labels(_retried)
for _source in ("change_feed", "period_watch", "inputs", "finalize"):
    RECONCILIATION_FAILURES.labels(_source)

# Webhooks (docs/webhooks.md).
WEBHOOK_ATTEMPTS = Counter(
    "vr_settlement_webhook_attempts_total",
    "Webhook delivery attempts by outcome (delivered; retrying; failed: the schedule is spent)",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "vr_settlement_webhook_attempt_seconds",
    "Time of one webhook delivery attempt, until the receiver's status",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_PENDING = Gauge("vr_settlement_webhook_pending", "Webhook deliveries waiting to be delivered")
WEBHOOK_OLDEST_PENDING = Gauge(
    "vr_settlement_webhook_oldest_pending_seconds", "Age of the oldest webhook delivery still waiting"
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "vr_settlement_webhook_endpoints_disabled_total", "Webhook endpoints disabled after days of failure"
)
for _outcome in ("delivered", "retrying", "failed"):
    WEBHOOK_ATTEMPTS.labels(_outcome)

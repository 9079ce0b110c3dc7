"""`vr`: tenants, keys, events, KPIs and settlements through the gateway, and the demo.

Every command takes `--url` (VR_URL, default http://127.0.0.1:8000) and `--key` (VR_API_KEY).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vr_cli.client import Api, ApiError
from vr_cli.events import batches, read_events
from vr_cli.hl7_relay import HL7_TYPE, run_relay, tls_context
from vr_cli.output import Output, emit

app = typer.Typer(help=__doc__, no_args_is_help=True)
tenants = typer.Typer(help="Tenants (platform admin).", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
events = typer.Typer(help="Events.", no_args_is_help=True)
kpis = typer.Typer(help="KPI values.", no_args_is_help=True)
settlements = typer.Typer(help="Settlement statements.", no_args_is_help=True)
feeds = typer.Typer(help="Feed completeness.", no_args_is_help=True)
contracts = typer.Typer(help="Contracts: create, show, list, simulate.", no_args_is_help=True)
hl7_commands = typer.Typer(help="HL7 v2 from interface engines (docs/interop.md).", no_args_is_help=True)
webhooks = typer.Typer(help="Webhook endpoints of a billing system (docs/webhooks.md).", no_args_is_help=True)
for group, name in (
    (webhooks, "webhooks"),
    (hl7_commands, "hl7"),
    (contracts, "contracts"),
    (tenants, "tenants"),
    (keys, "keys"),
    (events, "events"),
    (kpis, "kpis"),
    (settlements, "settlements"),
    (feeds, "feeds"),
):
    app.add_typer(group, name=name)

console = Console()
Url = Annotated[str, typer.Option(envvar="VR_URL", help="gateway URL")]
Key = Annotated[str, typer.Option(envvar="VR_API_KEY", help="API key")]
DEFAULT_URL = "http://127.0.0.1:8000"
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, json or csv")]


def _api(url: str, key: str) -> Api:
    return Api(url, key)


def _fail(error: ApiError) -> None:
    console.print(f"[red]{error}[/red]")
    raise typer.Exit(1)


@tenants.command("create")
def tenants_create(
    tenant_id: str,
    name: Annotated[str, typer.Option()],
    kind: Annotated[str, typer.Option(help="health_system or vendor")] = "health_system",
    timezone: Annotated[str, typer.Option()] = "UTC",
    facility: Annotated[list[str] | None, typer.Option(help="repeat for each facility")] = None,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    body = {"id": tenant_id, "name": name, "kind": kind, "timezone": timezone, "facilities": facility or []}
    with _api(url, key) as api:
        try:
            console.print_json(data=api.call("POST", "/v1/tenants", json=body))
        except ApiError as error:
            _fail(error)


@keys.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="tenant_admin, pipeline, billing, ops or platform_admin")],
    name: Annotated[str, typer.Option()],
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """Prints the new key (shown this once) on its own line, for scripts."""
    with _api(url, key) as api:
        try:
            created = api.call("POST", "/v1/api-keys", json={"tenant_id": tenant, "role": role, "name": name})
        except ApiError as error:
            _fail(error)
    console.print(f"[dim]{created['id']} {created['role']} of {created['tenant_id']}[/dim]", highlight=False)
    print(created["key"])


@events.command("push")
def events_push(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".json, .ndjson/.jsonl or .csv")],
    batch: Annotated[int, typer.Option(min=1, max=1000)] = 500,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """Push events in batches (retrying on 503/429 after the server's Retry-After); shows progress and
    ends with the count accepted and every rejection."""
    all_events = list(read_events(file))
    accepted, rejected = push(url, key, all_events, batch)
    console.print(f"accepted {accepted}, rejected {len(rejected)}")
    for item in rejected[:50]:
        console.print(
            f"  [yellow]{item['id']}[/yellow]: {item['errors'][0]['path']} {item['errors'][0]['message']}"
        )
    if rejected:
        raise typer.Exit(2)


def push(url: str, key: str, items: list[dict[str, Any]], batch: int) -> tuple[int, list[dict[str, Any]]]:
    accepted, rejected = 0, []
    columns = (TextColumn("events"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with _api(url, key) as api, Progress(*columns, console=console) as progress:
        task = progress.add_task("push", total=len(items))
        for chunk in batches(iter(items), batch):
            try:
                answer = api.call("POST", "/v1/events", json=chunk, ok=(202, 422))
            except ApiError as error:
                _fail(error)
            if "results" in answer:
                accepted += answer["accepted"]
                rejected += [r for r in answer["results"] if r["status"] == "rejected"]
            else:  # 422: none valid
                rejected += [
                    {"id": c.get("id"), "errors": [{"path": "$", "message": answer.get("detail", "")}]}
                    for c in chunk
                ]
            progress.advance(task, len(chunk))
    return accepted, rejected


def push_hl7(url: str, key: str, messages: list[str], batch: int = 200) -> tuple[int, list[str]]:
    """ADT messages to /v1/hl7v2, `batch` per request; (AA count, the ACKs that were not AA)."""
    accepted, refused = 0, []
    columns = (TextColumn("HL7 v2 messages"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with _api(url, key) as api, Progress(*columns, console=console) as progress:
        task = progress.add_task("push", total=len(messages))
        for start in range(0, len(messages), batch):
            chunk = messages[start : start + batch]
            answer = api.send(
                "POST", "/v1/hl7v2", content="\r".join(chunk).encode(), headers={"Content-Type": HL7_TYPE}
            )
            if answer.status_code != 200:
                _fail(ApiError(answer))
            for ack in answer.text.split("\r\n"):
                accepted += "\rMSA|AA|" in ack
                refused += [] if "\rMSA|AA|" in ack else [ack]
            progress.advance(task, len(chunk))
    return accepted, refused


def push_fhir(
    url: str, key: str, lines: dict[str, list[str]], batch: int = 500
) -> tuple[int, list[dict[str, Any]]]:
    """Bulk NDJSON to /v1/fhir per facility, `batch` lines per request; (202 count, the other entries)."""
    accepted, refused = 0, []
    columns = (TextColumn("FHIR resources"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    total = sum(len(v) for v in lines.values())
    with _api(url, key) as api, Progress(*columns, console=console) as progress:
        task = progress.add_task("push", total=total)
        for facility, resources in sorted(lines.items()):
            for start in range(0, len(resources), batch):
                chunk = resources[start : start + batch]
                answer = api.send(
                    "POST",
                    "/v1/fhir",
                    params={"facility": facility},
                    content="\n".join(chunk).encode(),
                    headers={"Content-Type": "application/fhir+ndjson"},
                )
                if answer.status_code != 200:
                    _fail(ApiError(answer))
                for entry in answer.json()["entry"]:
                    ok = entry["response"]["status"].startswith(("202", "200"))
                    accepted += entry["response"]["status"].startswith("202")
                    refused += [] if ok else [entry]
                progress.advance(task, len(chunk))
    return accepted, refused


@kpis.command("show")
def kpis_show(
    kpi: str,
    start: Annotated[str, typer.Option("--from")],
    end: Annotated[str, typer.Option("--to")],
    granularity: Annotated[str, typer.Option()] = "month",
    facility: Annotated[list[str] | None, typer.Option()] = None,
    output: OutputOption = Output.TABLE,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    params: list[tuple[str, str]] = [("from", start), ("to", end), ("granularity", granularity)]
    params += [("facility", f) for f in facility or []]
    with _api(url, key) as api:
        try:
            answer = api.call("GET", f"/v1/kpis/{kpi}/values", params=params)
        except ApiError as error:
            _fail(error)
    if output != Output.TABLE:
        columns = ("start", "end", "value", "numerator", "denominator", "sample_size", "status", "complete")
        emit(console, output, answer, columns, [[v[c] for c in columns] for v in answer["values"]])
        return
    table = Table(title=f"{kpi} ({answer['unit']}) — {', '.join(answer['facilities'])}")
    for column in ("start", "value", "numerator", "denominator", "sample", "status", "complete"):
        table.add_column(column, justify="right" if column != "start" else "left")
    for v in answer["values"]:
        table.add_row(
            v["start"][:10],
            _short(v["value"]),
            v["numerator"],
            v["denominator"] or "",
            v["sample_size"],
            v["status"],
            "yes" if v["complete"] else "[yellow]no[/yellow]",
        )
    console.print(table)


@feeds.command("show")
def feeds_show(
    facility: Annotated[list[str] | None, typer.Option()] = None,
    tenant: Annotated[
        str | None, typer.Option(help="a health system (vendors: one you have a contract with)")
    ] = None,
    output: OutputOption = Output.TABLE,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """Each facility's feeds: complete through (declared by feed.complete), newest event, last 7 days."""
    params: list[tuple[str, str]] = [("facility", f) for f in facility or []]
    params += [("tenant", tenant)] if tenant else []
    with _api(url, key) as api:
        try:
            feeds = api.items("/v1/feeds", params=params)
        except ApiError as error:
            _fail(error)
    if output != Output.TABLE:
        columns = ("facility", "feed", "complete_through", "newest_event_time")
        emit(console, output, feeds, columns, [[f[c] for c in columns] for f in feeds])
        return
    table = Table(title="Feeds")
    for column in ("facility", "feed", "complete through", "declared by", "newest event", "events (7 days)"):
        table.add_column(column)
    for item in feeds:
        declared = item["declared_by"]
        table.add_row(
            item["facility"],
            item["feed"],
            item["complete_through"] or "[red]never declared[/red]",
            f"{declared['source']}/{declared['id']}" if declared else "",
            item["newest_event_time"] or "",
            " ".join(str(day["events"]) for day in item["recent_events"]),
        )
    console.print(table)


@contracts.command("create")
def contracts_create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the contract document (JSON)")],
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """Create a contract from its JSON document; a field at fault is named with its JSON path."""
    with _api(url, key) as api:
        try:
            created = api.call("POST", "/v1/contracts", json=json.loads(file.read_text()))
        except ApiError as error:
            _fail(error)
    console.print(f"created {created['id']} version {created['version']}")


@contracts.command("show")
def contracts_show(
    contract: str,
    version: Annotated[int | None, typer.Option(help="an earlier version")] = None,
    output: OutputOption = Output.JSON,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """The contract, its latest or a given version: the document (json), its terms (table, csv)."""
    params = [("version", str(version))] if version else []
    with _api(url, key) as api:
        try:
            found = api.call("GET", f"/v1/contracts/{contract}", params=params)
        except ApiError as error:
            _fail(error)
    if output == Output.JSON:
        console.print_json(data=found)
        return
    columns = ("contract", "version", "term_id", "kind", "currency", "period", "start", "end")
    rows = [
        [
            found["id"],
            found["version"],
            t["id"],
            t["kind"],
            found["currency"],
            found["period"],
            found["start"],
            found["end"],
        ]
        for t in found["terms"]
    ]
    emit(console, output, found, columns, rows, found["name"])


@contracts.command("list")
def contracts_list(output: OutputOption = Output.TABLE, url: Url = DEFAULT_URL, key: Key = "") -> None:
    """Contracts your tenant is party to (every page)."""
    with _api(url, key) as api:
        try:
            found = api.items("/v1/contracts")
        except ApiError as error:
            _fail(error)
    columns = ("id", "name", "health_system", "vendor", "period", "start", "end", "version")
    emit(console, output, found, columns, [[c[k] for k in columns] for c in found], "Contracts")


@contracts.command("simulate")
def contracts_simulate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a contract document (JSON)")],
    period: Annotated[list[str], typer.Option(help="repeat for each period, e.g. 2026-Q1")],
    inputs: Annotated[Path | None, typer.Option(help='JSON of period → inputs: {"2026-Q1": {...}}')] = None,
    output: OutputOption = Output.TABLE,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """What-if: the statements a contract would produce, stored nowhere."""
    body = {
        "contract": json.loads(file.read_text()),
        "periods": period,
        "inputs": json.loads(inputs.read_text()) if inputs else {},
    }
    with _api(url, key) as api:
        try:
            answer = api.call("POST", "/v1/contracts:simulate", json=body)
        except ApiError as error:
            _fail(error)
    show_statements(answer["statements"], output)


@settlements.command("finalize")
def settlements_finalize(
    contract: str,
    period: str,
    idempotency_key: Annotated[str | None, typer.Option(help="a value you reuse when you retry")] = None,
    output: OutputOption = Output.TABLE,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """Freeze a complete statement (a retry with the same --idempotency-key answers the same)."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    path = f"/v1/contracts/{contract}/settlements/{period}/finalize"
    with _api(url, key) as api:
        try:
            final = api.call("POST", path, headers=headers, ok=(200, 201))
        except ApiError as error:
            _fail(error)
    if output != Output.TABLE:
        show_statements([final], output)
        return
    print_statement(final)
    console.print(f"sha256 {final['sha256']}", highlight=False)


@settlements.command("export")
def settlements_export(
    contract: str,
    period: str,
    output_format: Annotated[Output, typer.Option("--format", help="csv or json")] = Output.CSV,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """A statement for a billing or finance system: its lines as CSV (the API's own), or the JSON."""
    accept = "text/csv" if output_format == Output.CSV else "application/json"
    with _api(url, key) as api:
        try:
            response = api.send(
                "GET", f"/v1/contracts/{contract}/settlements/{period}", headers={"Accept": accept}
            )
            if response.status_code != 200:
                raise ApiError(response)
        except ApiError as error:
            _fail(error)
    print(response.text, end="" if output_format == Output.CSV else "\n")


@settlements.command("show")
def settlements_show(
    contract: str,
    period: Annotated[str | None, typer.Argument()] = None,
    output: OutputOption = Output.TABLE,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """A period's statement with its lines and steps, or every period's totals."""
    with _api(url, key) as api:
        try:
            if period:
                print_statement(api.call("GET", f"/v1/contracts/{contract}/settlements/{period}"))
            else:
                show_statements(api.items(f"/v1/contracts/{contract}/settlements"), output)
        except ApiError as error:
            _fail(error)


def show_statements(items: list[dict[str, Any]], output: Output) -> None:
    if output == Output.TABLE:
        print_statements(items)
        return
    terms = [line["term_id"] for line in items[0]["lines"]] if items else []
    rows = [
        [
            s["period"],
            s["status"],
            *({ln["term_id"]: ln["amount"] for ln in s["lines"]}.get(t, "") for t in terms),
            s["total"],
        ]
        for s in items
    ]
    emit(console, output, items, ["period", "status", *terms, "total"], rows)


def print_statements(items: list[dict[str, Any]]) -> None:
    terms = [line["term_id"] for line in items[0]["lines"]] if items else []
    table = Table(title=f"Settlements of {items[0]['contract_id']}" if items else "Settlements")
    for column in ("period", "status", *terms, "total"):
        table.add_column(column, justify="left" if column in ("period", "status") else "right")
    for s in items:
        amounts = {line["term_id"]: line["amount"] for line in s["lines"]}
        table.add_row(
            s["period"], s["status"], *(amounts.get(t, "") for t in terms), f"[bold]{s['total']}[/bold]"
        )
    console.print(table)


def print_statement(s: dict[str, Any]) -> None:
    console.print(
        f"[bold]{s['contract_id']} {s['period']}[/bold] ({s['period_start']} to {s['period_end']}), "
        f"{s['status']}: [bold]{s['total']} {s['currency']}[/bold]  data as of {s['data_cutoff'][:19]}"
        + ("" if s.get("data_complete", True) else "  [yellow](data not complete)[/yellow]")
    )
    for line in s["lines"]:
        console.print(
            f"  [cyan]{line['term_id']}[/cyan] ({line['kind']}): {line['amount']}"
            + (f"  — {line['reason']}" if line.get("reason") else "")
        )
        for step in line["steps"]:
            console.print(f"      {step['name']:<28} {_short(step['value'])}", highlight=False)


def _short(value: str | None) -> str:
    if value is None:
        return "—"
    whole, _, fraction = value.partition(".")
    return f"{whole}.{fraction[:4]}" if fraction else whole


EVENT_TYPES = (
    "statement.ready",
    "statement.blocked",
    "statement.finalized",
    "statement.adjusted",
    "contract.updated",
)
ENDPOINT_COLUMNS = ("id", "url", "events", "failing_since", "disabled_at", "disabled_reason")


def _endpoint_row(endpoint: dict[str, Any]) -> list[Any]:
    return [",".join(v) if isinstance(v := endpoint[c], list) else v for c in ENDPOINT_COLUMNS]


@webhooks.command("add")
def webhooks_add(
    endpoint_url: Annotated[str, typer.Argument(metavar="URL", help="your receiver (https)")],
    event: Annotated[list[str] | None, typer.Option(help="repeat per event type; default: all five")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    output: OutputOption = Output.TABLE,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """Subscribe an endpoint; its whsec_ secret is printed this once — store it with your receiver."""
    body = {"url": endpoint_url, "events": event or list(EVENT_TYPES), "description": description}
    with _api(url, key) as api:
        try:
            created = api.call("POST", "/v1/webhook-endpoints", json=body)
        except ApiError as error:
            _fail(error)
    if output != Output.TABLE:  # for scripts: the answer, secret included
        emit(
            console, output, created, ("id", "url", "secret"), [[created[c] for c in ("id", "url", "secret")]]
        )
        return
    console.print(f"endpoint {created['id']} → {created['url']} ({', '.join(created['events'])})")
    console.print(f"secret {created['secret']}", highlight=False)


@webhooks.command("list")
def webhooks_list(output: OutputOption = Output.TABLE, url: Url = DEFAULT_URL, key: Key = "") -> None:
    """Your tenant's endpoints: failing since when, disabled and why."""
    with _api(url, key) as api:
        try:
            found = api.items("/v1/webhook-endpoints")
        except ApiError as error:
            _fail(error)
    emit(console, output, found, ENDPOINT_COLUMNS, [_endpoint_row(e) for e in found], "Webhook endpoints")


@webhooks.command("deliveries")
def webhooks_deliveries(
    endpoint: str,
    limit: Annotated[int, typer.Option(help="the newest N")] = 50,
    output: OutputOption = Output.TABLE,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """Deliveries to an endpoint, newest first, with their attempts."""
    with _api(url, key) as api:
        try:
            page = api.call("GET", f"/v1/webhook-endpoints/{endpoint}/deliveries", params={"limit": limit})
        except ApiError as error:
            _fail(error)
    found = page["items"]
    columns = ("id", "event_type", "event_id", "status", "attempts", "last_attempt", "next_attempt_at")
    rows = [
        [
            d["id"],
            d["event_type"],
            d["event_id"],
            d["status"],
            len(d["attempts"]),
            _last_attempt(d["attempts"]),
            d["next_attempt_at"],
        ]
        for d in found
    ]
    emit(console, output, found, columns, rows, "Deliveries")


def _last_attempt(attempts: list[dict[str, Any]]) -> str:
    if not attempts:
        return ""
    last = attempts[-1]
    return f"{last['at'][:19]} {last['status_code'] or last['error']}"


@webhooks.command("replay")
def webhooks_replay(endpoint: str, delivery: str, url: Url = DEFAULT_URL, key: Key = "") -> None:
    """Send a delivery again now, with the same webhook-id."""
    with _api(url, key) as api:
        try:
            replayed = api.call("POST", f"/v1/webhook-endpoints/{endpoint}/deliveries/{delivery}/replay")
        except ApiError as error:
            _fail(error)
    console.print(f"delivery {replayed['id']} ({replayed['event_type']} {replayed['event_id']}) queued")


@webhooks.command("rotate")
def webhooks_rotate(endpoint: str, url: Url = DEFAULT_URL, key: Key = "") -> None:
    """A new secret, printed once; the old one keeps signing until the time printed."""
    with _api(url, key) as api:
        try:
            rotated = api.call("POST", f"/v1/webhook-endpoints/{endpoint}/rotate-secret")
        except ApiError as error:
            _fail(error)
    console.print(f"secret {rotated['secret']}", highlight=False)
    console.print(f"the previous secret signs too until {rotated['previous_secret_expires_at']}")


@webhooks.command("enable")
def webhooks_enable(endpoint: str, url: Url = DEFAULT_URL, key: Key = "") -> None:
    """Put a disabled endpoint back in service; its waiting deliveries are sent."""
    with _api(url, key) as api:
        try:
            api.call("POST", f"/v1/webhook-endpoints/{endpoint}/enable")
        except ApiError as error:
            _fail(error)
    console.print(f"endpoint {endpoint} enabled")


@webhooks.command("remove")
def webhooks_remove(endpoint: str, url: Url = DEFAULT_URL, key: Key = "") -> None:
    """Unsubscribe an endpoint (the events stay in the feed)."""
    with _api(url, key) as api:
        try:
            _delete(api, endpoint)
        except ApiError as error:
            _fail(error)
    console.print(f"endpoint {endpoint} removed")


def _delete(api: Api, endpoint: str) -> None:
    response = api.send("DELETE", f"/v1/webhook-endpoints/{endpoint}")
    if response.status_code != 204:
        raise ApiError(response)


@settlements.command("events")
def settlements_events(
    after: Annotated[str | None, typer.Option(help="the cursor the previous call printed")] = None,
    limit: Annotated[int, typer.Option()] = 200,
    output: OutputOption = Output.TABLE,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """The settlement-event feed after a cursor (what webhooks push, for pollers); prints the cursor
    to resume from."""
    params = {"limit": limit, **({"after": after} if after else {})}
    with _api(url, key) as api:
        try:
            page = api.call("GET", "/v1/settlement-events", params=params)
        except ApiError as error:
            _fail(error)
    columns = ("id", "type", "timestamp", "contract_id", "period", "total", "total_delta")
    rows = [
        [e["id"], e["type"], e["timestamp"], *(e["data"].get(k) for k in columns[3:])] for e in page["items"]
    ]
    emit(console, output, page, columns, rows, "Settlement events")
    if output == Output.TABLE:  # JSON carries it; CSV stays rows only
        console.print(f"next {page['next']}", highlight=False)


@hl7_commands.command("relay")
def hl7_relay(
    listen: Annotated[str, typer.Option(help="host:port to take MLLP on")] = "127.0.0.1:2575",
    max_wait: Annotated[float, typer.Option(help="seconds to retry before answering AR")] = 60.0,
    facility: Annotated[str | None, typer.Option(help="the facility, when MSH-4 does not name it")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(exists=True, help="serve MLLP over TLS: certificate")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(exists=True, help="... and its private key")] = None,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """Take HL7 v2 over MLLP, forward each message to /v1/hl7v2 with the pipeline's key, answer the
    platform's ACK (AR when the platform does not take it within --max-wait)."""
    host, _, port = listen.rpartition(":")
    tls = tls_context(str(tls_cert), str(tls_key)) if tls_cert and tls_key else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_relay(
                url, key, host or "127.0.0.1", int(port), max_wait_s=max_wait, facility=facility, tls=tls
            )
        )


class DemoFormat(StrEnum):
    JSON = "json"
    FHIR = "fhir"
    HL7 = "hl7"


@app.command()
def demo(
    url: Url = DEFAULT_URL,
    key: Key = "",
    format_: Annotated[
        DemoFormat, typer.Option("--format", help="json, or ADT as HL7 v2 / clinical and claims as FHIR R4")
    ] = DemoFormat.JSON,
) -> None:
    """Create a health system, a vendor and a contract; stream a year of events; print the quarters.
    `--format hl7|fhir` streams it through /v1/hl7v2 or /v1/fhir (a health system of its own)."""
    from vr_cli.demo import run

    try:
        run(url, key, console, format_.value)
    except ApiError as error:
        _fail(error)

"""`vr`: tenants, keys, events, KPIs and settlements through the gateway, and the demo.

Every command takes `--url` (VR_URL, default http://127.0.0.1:8000) and `--key` (VR_API_KEY).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vr_cli.client import Api, ApiError
from vr_cli.events import batches, read_events

app = typer.Typer(help=__doc__, no_args_is_help=True)
tenants = typer.Typer(help="Tenants (platform admin).", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
events = typer.Typer(help="Events.", no_args_is_help=True)
kpis = typer.Typer(help="KPI values.", no_args_is_help=True)
settlements = typer.Typer(help="Settlement statements.", no_args_is_help=True)
feeds = typer.Typer(help="Feed completeness.", no_args_is_help=True)
for group, name in (
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


@kpis.command("show")
def kpis_show(
    kpi: str,
    start: Annotated[str, typer.Option("--from")],
    end: Annotated[str, typer.Option("--to")],
    granularity: Annotated[str, typer.Option()] = "month",
    facility: Annotated[list[str] | None, typer.Option()] = None,
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


@settlements.command("show")
def settlements_show(
    contract: str,
    period: Annotated[str | None, typer.Argument()] = None,
    url: Url = DEFAULT_URL,
    key: Key = "",
) -> None:
    """A period's statement with its lines and steps, or every period's totals."""
    with _api(url, key) as api:
        try:
            if period:
                print_statement(api.call("GET", f"/v1/contracts/{contract}/settlements/{period}"))
            else:
                print_statements(api.items(f"/v1/contracts/{contract}/settlements"))
        except ApiError as error:
            _fail(error)


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


@app.command()
def demo(url: Url = DEFAULT_URL, key: Key = "") -> None:
    """Create a health system, a vendor and a contract; stream a year of events; print the quarters."""
    from vr_cli.demo import run

    try:
        run(url, key, console)
    except ApiError as error:
        _fail(error)

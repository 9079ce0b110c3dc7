"""HTTP routes for billing systems (docs/webhooks.md): webhook endpoints, their deliveries, and the
settlement-event pull feed.

Consumes: the gateway-signed identity. Produces: endpoints (secret shown once), delivery histories,
replays, and the feed of settlement events of contracts the caller's tenant is party to.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from pydantic import BaseModel, ConfigDict

from settlement.adapters.outbox import FeedPosition
from settlement.adapters.webhooks import FeedPositionAhead
from settlement.bootstrap import Components
from settlement.domain.notifications import EventType
from settlement.domain.webhooks import MAX_ENDPOINTS_PER_TENANT, endpoint_errors
from settlement.entrypoints.deps import Addresses, components
from settlement.entrypoints.schemas import (
    DeliveryAnswer,
    DeliveryPage,
    EndpointAnswer,
    EndpointCreated,
    EndpointPage,
    SecretRotated,
    SettlementEventPage,
)
from vr_shared.auth import caller_with_role
from vr_shared.events.validation import FieldError
from vr_shared.identity import Identity
from vr_shared.pages import (
    DEFAULT_LIMIT,
    After,
    Limit,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
    numeric_position,
    page,
)
from vr_shared.roles import READERS, WEBHOOK_OWNERS, Role
from vr_shared.web import Problem

router = APIRouter(tags=["Webhooks"])

Owner = Annotated[Identity, Depends(caller_with_role(WEBHOOK_OWNERS))]
Reader = Annotated[Identity, Depends(caller_with_role(READERS))]
Composed = Annotated[Components, Depends(components)]


class EndpointRequest(BaseModel):
    """A webhook endpoint to create (documents the body; checked by `endpoint_errors`)."""

    model_config = ConfigDict(extra="forbid")
    url: str
    events: list[EventType]
    description: str | None = None


def _not_found(endpoint_id: str) -> Problem:
    return Problem(404, "Unknown webhook endpoint", f"no webhook endpoint {endpoint_id!r} of your tenant")


@router.post(
    "/v1/webhook-endpoints",
    operation_id="createWebhookEndpoint",
    status_code=201,
    response_model=EndpointCreated,
    summary="Subscribe an endpoint to settlement events (its secret is shown once)",
)
async def create_endpoint(
    document: Annotated[dict[str, Any], Body()],
    caller: Owner,
    composed: Composed,
    addresses: Addresses,
    response: Response,
) -> dict[str, Any]:
    url, events, description = document.get("url"), document.get("events"), document.get("description")
    errors = endpoint_errors(url, events, description)
    errors += [_unknown_member(name) for name in sorted(set(document) - {"url", "events", "description"})]
    if not errors and (refusal := await addresses.refusal(str(url), caller.tenant)) is not None:
        errors.append(_url_error(refusal))
    if errors:
        raise Problem(
            422,
            "Invalid webhook endpoint",
            "; ".join(f"{e.path}: {e.message}" for e in errors),
            type_="/problems/invalid-webhook-endpoint",
            errors=[e.as_json() for e in errors],
        )
    if await composed.webhooks.count_endpoints(caller.tenant) >= MAX_ENDPOINTS_PER_TENANT:
        raise Problem(409, "Too many webhook endpoints", f"at most {MAX_ENDPOINTS_PER_TENANT} per tenant")
    endpoint, secret = await composed.webhooks.create_endpoint(
        caller.tenant, str(url), [str(e) for e in events or ()], description, caller.key_id
    )
    response.headers["Location"] = f"/v1/webhook-endpoints/{endpoint.id}"
    return {**endpoint.as_json(), "secret": secret}


def _url_error(message: str) -> FieldError:
    return FieldError("$.url", message, "url")


def _unknown_member(name: str) -> FieldError:
    return FieldError(f"$.{name}", "unknown member", "extra")


@router.get(
    "/v1/webhook-endpoints",
    operation_id="listWebhookEndpoints",
    response_model=EndpointPage,
    summary="The tenant's webhook endpoints",
)
async def list_endpoints(
    caller: Owner, composed: Composed, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> dict[str, Any]:
    found = await composed.webhooks.endpoints(caller.tenant, after=decode_cursor(after), limit=limit + 1)
    return page(found, limit, lambda e: e.id, lambda e: e.as_json())


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}",
    operation_id="getWebhookEndpoint",
    response_model=EndpointAnswer,
    summary="A webhook endpoint (whether it is failing or disabled, and why)",
)
async def get_endpoint(endpoint_id: str, caller: Owner, composed: Composed) -> dict[str, Any]:
    endpoint = await composed.webhooks.endpoint(caller.tenant, endpoint_id)
    if endpoint is None:
        raise _not_found(endpoint_id)
    return endpoint.as_json()


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}",
    operation_id="deleteWebhookEndpoint",
    status_code=204,
    summary="Unsubscribe: the endpoint and its pending deliveries are gone (the feed keeps the events)",
)
async def delete_endpoint(endpoint_id: str, caller: Owner, composed: Composed) -> Response:
    if not await composed.webhooks.delete_endpoint(caller.tenant, endpoint_id):
        raise _not_found(endpoint_id)
    return Response(status_code=204)


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
    operation_id="rotateWebhookSecret",
    response_model=SecretRotated,
    summary="A new secret (shown once); the old one still signs until `previous_secret_expires_at`",
)
async def rotate_secret(endpoint_id: str, caller: Owner, composed: Composed) -> dict[str, Any]:
    rotated = await composed.webhooks.rotate_secret(caller.tenant, endpoint_id, composed.secret_overlap_s)
    if rotated is None:
        raise _not_found(endpoint_id)
    secret, expires = rotated
    return {"id": endpoint_id, "secret": secret, "previous_secret_expires_at": expires.isoformat()}


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/enable",
    operation_id="enableWebhookEndpoint",
    response_model=EndpointAnswer,
    summary="Put a disabled endpoint back in service; its waiting deliveries are sent",
)
async def enable_endpoint(endpoint_id: str, caller: Owner, composed: Composed) -> dict[str, Any]:
    endpoint = await composed.webhooks.enable(caller.tenant, endpoint_id)
    if endpoint is None:
        raise _not_found(endpoint_id)
    return endpoint.as_json()


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries",
    operation_id="listWebhookDeliveries",
    response_model=DeliveryPage,
    summary="Deliveries to the endpoint, newest first, with every attempt",
)
async def list_deliveries(
    endpoint_id: str, caller: Owner, composed: Composed, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> dict[str, Any]:
    if await composed.webhooks.endpoint(caller.tenant, endpoint_id) is None:
        raise _not_found(endpoint_id)
    found = await composed.webhooks.deliveries(endpoint_id, after=numeric_position(after), limit=limit + 1)
    return page(found, limit, lambda d: str(d.id), lambda d: d.as_json())


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/replay",
    operation_id="replayWebhookDelivery",
    status_code=202,
    response_model=DeliveryAnswer,
    summary="Send a delivery again now (same `webhook-id`)",
)
async def replay_delivery(
    endpoint_id: str, delivery_id: str, caller: Owner, composed: Composed
) -> dict[str, Any]:
    if await composed.webhooks.endpoint(caller.tenant, endpoint_id) is None:
        raise _not_found(endpoint_id)
    replayed = None
    if delivery_id.isdigit() and len(delivery_id) < 19:
        replayed = await composed.webhooks.replay(endpoint_id, int(delivery_id))
    if replayed is None:
        raise Problem(404, "Unknown delivery", f"endpoint {endpoint_id!r} has no delivery {delivery_id!r}")
    return replayed.as_json()


@router.get(
    "/v1/settlement-events",
    operation_id="listSettlementEvents",
    response_model=SettlementEventPage,
    summary="The settlement events of the caller's contracts, oldest first: the webhooks as a pull feed",
)
async def settlement_events(
    caller: Reader, composed: Composed, limit: Limit = DEFAULT_LIMIT, after: After = None
) -> dict[str, Any]:
    """A feed never ends: `next` is always the position after the last event seen (the one asked from
    when there is nothing new), so a poller stores it and asks again with it — resumable, in commit
    order, each event once (docs/decisions/0007-commit-order.md)."""
    tenant = None if caller.role == Role.PLATFORM_ADMIN else caller.tenant
    position = _feed_position(after)
    try:
        found = await composed.webhooks.events(tenant, after=position, limit=limit)
    except FeedPositionAhead as exc:
        raise Problem(
            409,
            "Cursor from another database",
            str(exc),
            type_="/problems/cursor-ahead",
            errors=[{"path": "$.query.after", "message": str(exc), "code": "cursor_ahead"}],
        ) from exc
    last = found[-1][0] if found else position
    return {"items": [item for _, item in found], "next": encode_cursor(last.text())}


def _feed_position(cursor: str | None) -> FeedPosition:
    """The start for no cursor; 422 naming `$.query.after` for a cursor the feed did not hand out."""
    text = decode_cursor(cursor)
    if text is None:
        return FeedPosition()
    position = FeedPosition.parse(text)
    if position is None:
        raise invalid_cursor()
    return position

"""schemathesis against the gateway's one OpenAPI, through the real stack: generated requests for every
public operation find no 5xx and no response that breaks its documented schema.

The stack runs in this test's event loop, so the generated (synchronous) calls run in a thread. The
number of examples per operation is bounded to keep `make test` short; raise VR_FUZZ_EXAMPLES for a
longer run.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.gateway.conftest import GatewayStack
from tests.integration.gateway.test_gateway import key, tenant

EXAMPLES = int(os.environ.get("VR_FUZZ_EXAMPLES", "8"))


def _fuzz(base_url: str, document: dict[str, Any], headers: dict[str, str]) -> list[str]:
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,  # the same requests each run: a failure reproduces
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @hypothesis.given(case=operation.as_strategy())
        def exercise(case: Any) -> None:
            case.call_and_validate(
                base_url=base_url, headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            exercise()
        except Exception as failure:
            failures.append(f"{operation.label}: {str(failure)[:2000]}")
    return failures


async def test_generated_requests_find_no_server_error_and_no_schema_break(stack: GatewayStack) -> None:
    health = await tenant(stack, facilities=("main", "west"))
    document = (await stack.client.get("/openapi.json")).json()
    callers = [stack.admin()] + [
        {"Authorization": f"Bearer {await key(stack, health, role)}"}
        for role in ("tenant_admin", "ops", "pipeline")
    ]
    for headers in callers:
        failures = await asyncio.to_thread(_fuzz, stack.url, document, headers)
        assert failures == [], "\n\n".join(failures)

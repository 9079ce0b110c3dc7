"""The `vr` command line against the real stack through the gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from tests.integration.gateway.conftest import gateway_in_front
from tests.integration.gateway.test_gateway import key, tenant
from tests.support.infrastructure import Infrastructure
from tests.support.waiting import exposed_metrics, metric_value
from vr_cli.main import app


async def test_push_retries_after_429_until_every_event_is_accepted(
    infrastructure: Infrastructure, services: dict[str, str], tmp_path: Path
) -> None:
    async with gateway_in_front(infrastructure, services, rate_limit_per_second=4, rate_limit_burst=2) as gw:
        health = await tenant(gw, facilities=("main",))
        pipeline = await key(gw, health, "pipeline")
        events = [
            {
                "id": f"cli-{i}",
                "source": "cli",
                "type": "claim.submitted",
                "time": "2026-11-02T09:00:00-05:00",
                "facility": "main",
                "data": {"claim_ref": f"C{i}", "amount": "10.00", "clean": True},
            }
            for i in range(6)
        ]
        path = tmp_path / "events.ndjson"
        path.write_text("\n".join(json.dumps(e) for e in events))
        env = {"VR_URL": gw.url, "VR_API_KEY": pipeline}
        # Batches of 1 against a burst of 2: later requests meet a 429 first and wait for Retry-After.
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["events", "push", str(path), "--batch", "1"], env=env
        )
        assert result.exit_code == 0, result.output
        assert "accepted 6, rejected 0" in result.output
        limited = exposed_metrics()
        assert metric_value(limited, 'vr_gateway_rate_limited_total{role="pipeline"}') >= 1
        refused = await asyncio.to_thread(
            CliRunner().invoke, app, ["events", "push", str(path)], env={**env, "VR_API_KEY": "vrk_wrong"}
        )
        assert refused.exit_code == 1 and "401" in refused.output

"""The whole stack through the gateway, as a client uses it: the services on the session's broker and
PostgreSQL, the gateway in front (the fixtures of tests/integration/gateway/conftest.py)."""

from __future__ import annotations

from tests.integration.gateway.conftest import services, stack

__all__ = ["services", "stack"]

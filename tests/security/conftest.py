"""The security tests run through the real stack: the services on the session's broker and
PostgreSQL, the gateway in front (tests/integration/gateway/conftest.py)."""

from __future__ import annotations

from tests.integration.gateway.conftest import services, stack

__all__ = ["services", "stack"]

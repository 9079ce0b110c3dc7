"""`python -m devstack up` runs the local stack; `python -m devstack token` mints a caller identity."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devstack import stack
from devstack.secrets import local_secrets
from vr_shared.identity import Identity, IdentitySigner, audience
from vr_shared.roles import KEY_ROLES, Role


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devstack")
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="repository root (state goes to ROOT/.local)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="start PostgreSQL, the broker and every service, supervised; Ctrl-C stops them in order"
    )
    commands.add_parser("down", help="stop the make up running for --root in order (or its leftovers)")
    token = commands.add_parser("token", help="print a gateway-style identity token for direct service calls")
    token.add_argument("--tenant", required=True)
    token.add_argument("--facilities", default="", help="comma-separated facility ids of the tenant")
    token.add_argument("--role", default="pipeline", choices=sorted(KEY_ROLES))
    token.add_argument(
        "--service", default="ingest", choices=("ingest", "kpi-engine", "settlement"), help="the audience"
    )
    token.add_argument("--ttl", type=int, default=300)
    token.add_argument("--timezone", default="UTC", help="the tenant's IANA time zone (KPIs are local days)")
    commands.add_parser(
        "admin-key", help="print the local stack's platform admin key (VR_BOOTSTRAP_ADMIN_KEY)"
    )
    args = parser.parse_args(argv)

    if args.command == "up":
        return stack.run(args.root)
    if args.command == "down":
        return stack.down(args.root)
    if args.command == "admin-key":
        print(local_secrets(args.root / ".local")["bootstrap_admin_key"])
        return 0
    private_key = local_secrets(args.root / ".local")["gateway_private_key"]
    identity = Identity(
        tenant=args.tenant,
        role=Role(args.role),
        key_id="local-dev",
        timezone=args.timezone,
        facilities=frozenset(f for f in args.facilities.split(",") if f),
    )
    print(IdentitySigner(private_key, ttl_seconds=args.ttl).sign(identity, audience(args.service)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

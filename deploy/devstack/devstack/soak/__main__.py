"""`python -m devstack.soak`: the soak with random faults (docs/reliability.md). Starts its own stack
under --root (wiped at start), runs pipelines, settling contracts and a billing receiver that is down
part of the time while the seeded fault injector SIGKILLs a part of the stack every 20–60 s, then
checks every invariant through the public API. Exit 0 when every invariant holds, 1 otherwise."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

from devstack.soak.api import SetUpFailed, Stuck
from devstack.soak.faults import (
    PARTS,
    ComposeTarget,
    DevstackTarget,
    Fault,
    compose_restarts,
    restarts_in,
    schedule,
)
from devstack.soak.report import Outcome, render, write_section
from devstack.soak.run import Gathered, Plan, repository_root, soak
from devstack.soak.stackrun import LocalStack, StackFailed


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    parser.add_argument("--seed", type=int, default=None, help="the fault schedule's seed (default: random)")
    parser.add_argument("--root", type=Path, default=repository_root() / ".local" / "soak")
    parser.add_argument(
        "--report", type=Path, default=None, help="write the report under the marker of this file"
    )
    parser.add_argument("--fault-every", nargs=2, type=float, default=(20.0, 60.0), metavar=("MIN", "MAX"))
    parser.add_argument("--no-faults", action="store_true", help="traffic and checks only")
    parser.add_argument(
        "--compose",
        action="store_true",
        help="inject into a running `docker compose` stack instead (no local stack)",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="with --compose: the gateway")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    duration = args.minutes * 60
    print(f"[soak] seed {seed} ({args.minutes:g} min; again with --seed {seed})", flush=True)
    parts = ComposeTarget.parts if args.compose else PARTS
    faults = [] if args.no_faults else schedule(seed, duration, tuple(args.fault_every), parts)
    for fault in faults:
        print(f"[soak]   planned: {fault.at:7.1f} s  {fault.part}", flush=True)
    command = " ".join(["python -m devstack.soak", *(argv if argv is not None else sys.argv[1:])])
    try:
        gathered = (
            _compose(args, seed, duration, faults) if args.compose else _local(args, seed, duration, faults)
        )
    except (StackFailed, SetUpFailed, Stuck) as exc:
        print(f"[soak] failed: {exc}", flush=True)
        return 1
    outcome = Outcome(
        seed=seed,
        minutes=args.minutes,
        command=f"{command} --seed {seed}" if args.seed is None else command,
        faults=gathered.faults,
        planned_faults=len(faults),
        restarts=gathered.restarts,
        per_minute={t.pipeline: t.per_minute for t in gathered.tallies},
        invariants=gathered.invariants,
        finished=datetime.now(UTC),
        activity=gathered.activity,
    )
    section = render(outcome)
    print(section, flush=True)
    if args.report:
        write_section(args.report, section)
        print(f"[soak] report written to {args.report}", flush=True)
    violated = {name: v for name, v in gathered.invariants.items() if v}
    for name, violations in violated.items():
        print(f"[soak] VIOLATED: {name}", flush=True)
        for violation in violations:
            print(f"[soak]   {violation}", flush=True)
    print(f"[soak] seed {seed}: {'FAILED' if violated else 'every invariant holds'}", flush=True)
    return 1 if violated else 0


def _local(args: argparse.Namespace, seed: int, duration: float, faults: list[Fault]) -> Gathered:
    stack = LocalStack(args.root.resolve(), repository_root())
    print(f"[soak] starting the stack under {stack.root} (log: {stack.log_path})", flush=True)
    stack.start()
    try:
        plan = Plan(
            seed,
            duration,
            faults,
            stack.gateway_url,
            stack.admin_key(),
            stack.ready_urls,
            None
            if args.no_faults
            else (lambda http: DevstackTarget(stack.record_path, stack.ready_urls, http)),
            lambda: restarts_in(stack.record_path),
        )
        return asyncio.run(soak(plan))
    finally:
        print("[soak] stopping the stack (SIGINT)", flush=True)
        stack.stop()


def _compose(args: argparse.Namespace, seed: int, duration: float, faults: list[Fault]) -> Gathered:
    """Against `docker compose up`: the admin key from VR_ADMIN_KEY; settlement there delivers to no
    private address, so the webhook invariant is not checked (the feed still is, by the statements)."""
    admin_key = os.environ.get("VR_ADMIN_KEY", "")
    if not admin_key:
        raise StackFailed("--compose needs the platform admin key in VR_ADMIN_KEY")
    url = args.url.rstrip("/")
    compose_file = repository_root() / "docker-compose.yml"
    plan = Plan(
        seed,
        duration,
        faults,
        url,
        admin_key,
        [f"{url}/readyz"],
        None if args.no_faults else (lambda http: ComposeTarget(compose_file, [f"{url}/readyz"], http)),
        lambda: compose_restarts(compose_file),
        receiver_reachable=False,
        restarts_are_kills=False,
    )
    return asyncio.run(soak(plan))


if __name__ == "__main__":
    sys.exit(main())

"""Create (or update) one Airflow pool per delivery destination: `plg_<destination>`.

Every `deliver_<target>` task of plg_reverse_etl runs in its destination's pool (see
plugins/plg_bridge/delivery/targets.py). A pool is how one vendor app's rate budget is shared
across Airflow tasks and workers: ONE slot per vendor app, so its targets run one after another,
each using the whole budget with several requests in flight (delivery/base.py), instead of two
tasks each pacing itself to the full limit and together doubling it. Within a process, clients of
the same credential share one limiter (delivery/transport.shared_limiter), and the limiter learns
from the vendor's rate-limit headers what other integrations of the customer spend.

    plg_hubspot     1  HubSpot: 100 (Free/Starter) or 190 (Pro/Enterprise) requests per 10 s per
                       app, shared by every caller of the app.
    plg_salesforce  1  Salesforce: a daily API budget per org; concurrent upserts of the same
                       sObject lock rows (UNABLE_TO_LOCK_ROW); one target at a time.
    plg_intercom    1  Intercom: 10,000 calls/min per app (25,000 per workspace) in 10 s windows.
    plg_slack       1  Slack: about one message per second per channel; one writer keeps messages
                       in order and inside the limit.

A second pool slot is only safe for a destination whose targets use different credentials
(e.g. two HubSpot apps): each app then keeps its own budget.

Usage (run wherever the `airflow` command reaches the metadata DB: the init service of
docker-compose, the scheduler's container, a CI job):

    python scripts/create_pools.py                    # create/update the pools via `airflow pools import`
    python scripts/create_pools.py --slots hubspot=4  # override a size (e.g. a higher HubSpot tier)
    python scripts/create_pools.py --json > pools.json   # only print the pools file, then:
    airflow pools import pools.json                       # (or `airflowctl pools import pools.json`)

Creating a pool that exists updates its slots and description, so the command is safe to rerun.
Exit codes: 0 pools created, 1 the airflow command failed, 2 bad arguments or a destination
without a pool.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# destination -> (slots, why)
POOLS: dict[str, tuple[int, str]] = {
    "hubspot": (
        1,
        "one app's 100-190 requests per 10 s: its targets run one after another, each with the whole budget",
    ),
    "salesforce": (1, "one org's daily API budget; concurrent upserts of one sObject lock rows"),
    "intercom": (1, "one app's 10,000 calls/min in 10 s windows: its targets run one after another"),
    "slack": (1, "about one message per second per channel; one writer keeps the order"),
}


def pool_name(destination: str) -> str:
    return f"plg_{destination}"


def destinations_in_use() -> set[str]:
    """Destinations of the DAG's targets (each needs a pool, or its deliver task never runs)."""
    plugins = str(REPO / "plugins")
    if plugins not in sys.path:
        sys.path.insert(0, plugins)
    from plg_bridge.delivery.targets import TARGETS

    return {t.destination for t in TARGETS.values()}


def pools_file(overrides: dict[str, int]) -> dict[str, dict]:
    """The pools as `airflow pools import` reads them."""
    pools = {}
    for destination, (default, why) in POOLS.items():
        pools[pool_name(destination)] = {
            "slots": overrides.get(destination, default),
            "description": f"plg-bridge deliveries to {destination}: {why}",
            "include_deferred": False,
        }
    return pools


def parse_overrides(values: list[str]) -> dict[str, int]:
    overrides = {}
    for value in values:
        destination, sep, slots = value.partition("=")
        if not sep or destination not in POOLS or not slots.isdigit() or int(slots) < 1:
            raise SystemExit(
                f"create_pools: --slots {value!r}: expected DESTINATION=N with N >= 1 and "
                f"DESTINATION one of {', '.join(POOLS)}"
            )
        overrides[destination] = int(slots)
    return overrides


def airflow_command(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "airflow"  # the venv this script runs in
    if beside.exists():
        return str(beside)
    found = shutil.which("airflow")
    if not found:
        raise SystemExit("create_pools: no `airflow` command found; pass --airflow PATH")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--slots", action="append", default=[], metavar="DEST=N", help="override a pool's size"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the pools file for `airflow pools import` and exit"
    )
    parser.add_argument("--airflow", help="the airflow command (default: the one beside this Python)")
    args = parser.parse_args(argv)

    missing = destinations_in_use() - set(POOLS)
    if missing:
        print(f"create_pools: no pool size defined for destination(s) {sorted(missing)}", file=sys.stderr)
        return 2
    pools = pools_file(parse_overrides(args.slots))
    if args.json:
        print(json.dumps(pools, indent=2, sort_keys=True))
        return 0

    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="plg-pools-", delete=False) as f:
        json.dump(pools, f)
    try:
        done = subprocess.run([airflow_command(args.airflow), "pools", "import", f.name], check=False)
    finally:
        os.unlink(f.name)
    if done.returncode:
        print(f"create_pools: `airflow pools import` failed (exit {done.returncode})", file=sys.stderr)
        return 1
    for name, pool in pools.items():
        print(f"{name}: {pool['slots']} slot(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

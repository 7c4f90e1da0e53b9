"""`make demo`: the whole flow on a laptop, with no cloud account and no configuration.

A local folder stands in for the S3 bucket, SQLite is Airflow's metadata DB, and the fake
HubSpot runs on loopback. The real DAG runs through `airflow dags test`; then the demo prints
the scores, the run report and what the fake HubSpot received.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / ".demo"
AS_OF = "2026-11-20"
ROWS = int(os.environ.get("DEMO_ROWS", "200000"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run(args: list[str], env: dict[str, str], quiet: bool = False) -> None:
    out = subprocess.run(args, check=False, env=env, cwd=REPO, text=True, capture_output=quiet)
    if out.returncode:
        if quiet:
            print(out.stdout[-4000:], out.stderr[-4000:], sep="\n")
        sys.exit(f"demo: {' '.join(args[:3])} failed with exit code {out.returncode}")


def fetch(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    bucket, airflow_home = DEMO / "bucket", DEMO / "airflow"
    exports, work = bucket / "posthog", bucket / "plg-bridge"
    bin_dir = Path(sys.executable).parent
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API_AUTH__JWT_SECRET": "plg-bridge-demo-" + "x" * 64,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
        "PLG_BRIDGE__EXPORTS__LOCATION": str(exports),
        "PLG_BRIDGE__WORK_LOCATION": str(work),
        "AIRFLOW_CONN_HUBSPOT_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": port,
                "schema": "http",
                "password": "demo-token",
            }
        ),
    }

    step(f"generating a PostHog-shaped export: {ROWS:,} events, daily files ending {AS_OF}")
    run(
        [str(bin_dir / "plg-bridge"), "generate", "--out", str(exports), "--rows", str(ROWS), "--end", AS_OF],
        env,
    )

    step(f"starting the fake HubSpot on 127.0.0.1:{port}")
    hubspot = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.hubspot", "--port", str(port), "--token", "demo-token"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            try:
                fetch(f"http://127.0.0.1:{port}/_fake/state")
                break
            except OSError:
                time.sleep(0.1)

        step("creating Airflow's metadata DB (SQLite)")
        run([str(bin_dir / "airflow"), "db", "migrate"], env, quiet=True)

        step(f"running the real DAG: airflow dags test plg_reverse_etl {AS_OF}")
        started = time.monotonic()
        run([str(bin_dir / "airflow"), "dags", "test", "plg_reverse_etl", AS_OF], env, quiet=True)
        print(f"DAG run succeeded in {time.monotonic() - started:.0f}s")

        run_dir = work / f"runs/as_of={AS_OF}"
        step(f"run report ({run_dir / 'summary.md'})")
        print((run_dir / "summary.md").read_text())

        state = fetch(f"http://127.0.0.1:{port}/_fake/state")
        calls = fetch(f"http://127.0.0.1:{port}/_fake/requests")
        companies = state.get("companies", {})
        step(f"the fake HubSpot received {len(calls)} calls and now holds {len(companies)} companies; a few:")
        for record in list(companies.values())[:5]:
            print("  ", json.dumps(record.get("properties", record))[:180])
    finally:
        hubspot.terminate()
        hubspot.wait(timeout=10)

    step("where everything is")
    print(f"  export files     {exports}")
    print(f"  scores           {run_dir / 'scores.csv'}")
    print(f"  data quality     {run_dir / 'quality.json'}")
    print(f"  per-target plan, outcomes, dead letters  {run_dir}/<target>/")
    print(f"  delivery state   {work / 'state'}")
    print(f"  Airflow logs     {airflow_home / 'logs'}")


if __name__ == "__main__":
    main()

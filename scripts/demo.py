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


FAKES = {  # name -> (extra CLI args, Airflow connection given the port)
    "hubspot": (["--token", "demo-token"], lambda p: _http(p, password="demo-token")),
    "salesforce": (
        ["--with-pql-status"],
        lambda p: _http(p, login="plg-client-id", password="plg-client-secret"),
    ),
    "intercom": (["--token", "demo-token"], lambda p: _http(p, password="demo-token")),
    "slack": (
        ["--bot-token", "xoxb-demo", "--channel", "plg-alerts"],
        lambda p: {
            "conn_type": "slack",
            "password": "xoxb-demo",
            "extra": {"base_url": f"http://127.0.0.1:{p}/api/"},
        },
    ),
}


def _http(port: int, **fields) -> dict:
    return {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", **fields}


def start_fakes(env: dict[str, str]) -> dict[str, tuple[subprocess.Popen, int]]:
    """Each fake vendor as its own process on a free loopback port; waits until each answers."""
    fakes = {}
    for name, (args, _) in FAKES.items():
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", f"tests.fakes.{name}", "--port", str(port), *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        fakes[name] = (proc, port)
    for name, (_, port) in fakes.items():
        for _ in range(100):
            try:
                fetch(f"http://127.0.0.1:{port}/_fake/state")
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit(f"demo: the fake {name} did not start")
    return fakes


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    bucket, airflow_home = DEMO / "bucket", DEMO / "airflow"
    exports, work = bucket / "posthog", bucket / "plg-bridge"
    bin_dir = Path(sys.executable).parent
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
        "PLG_BRIDGE__DEMO": "true",  # allows the work location under .demo/ (production refuses it)
        "PLG_BRIDGE__DELIVERY__DESTINATIONS": ",".join(FAKES),
    }

    step(f"generating a PostHog-shaped export: {ROWS:,} events, daily files ending {AS_OF}")
    run(
        [str(bin_dir / "plg-bridge"), "generate", "--out", str(exports), "--rows", str(ROWS), "--end", AS_OF],
        env,
    )

    step("starting fake HubSpot, Salesforce, Intercom and Slack servers on loopback")
    fakes = start_fakes(env)
    for name, (_, port) in fakes.items():
        env[f"AIRFLOW_CONN_{name.upper()}_DEFAULT"] = json.dumps(FAKES[name][1](port))
        print(f"  {name:<11} http://127.0.0.1:{port}")
    try:
        step("creating Airflow's metadata DB (SQLite)")
        run([str(bin_dir / "airflow"), "db", "migrate"], env, quiet=True)

        step(f"running the real DAG: airflow dags test plg_reverse_etl {AS_OF}")
        started = time.monotonic()
        run([str(bin_dir / "airflow"), "dags", "test", "plg_reverse_etl", AS_OF], env, quiet=True)
        print(f"DAG run succeeded in {time.monotonic() - started:.0f}s")

        run_dir = work / f"runs/as_of={AS_OF}"
        step(f"run report ({run_dir / 'summary.md'})")
        print((run_dir / "summary.md").read_text())

        step("what the fake vendors received")
        for name, (_, port) in fakes.items():
            calls = fetch(f"http://127.0.0.1:{port}/_fake/requests")
            state = fetch(f"http://127.0.0.1:{port}/_fake/state")
            held = ", ".join(
                f"{len(v)} {k}" for k, v in state.items() if isinstance(v, list | dict) and k != "properties"
            )
            print(f"  {name:<11} {len(calls):>4} calls; holds {held or 'see its request log'}")
        hubspot_state = fetch(f"http://127.0.0.1:{fakes['hubspot'][1]}/_fake/state")
        print("  a few HubSpot companies:")
        for record in list(hubspot_state.get("companies", {}).values())[:3]:
            print("    ", json.dumps(record.get("properties", record))[:160])

        # The weekly insights report on the same data. The demo export spans 28 days, so the PQL
        # calibration uses a 7-day conversion horizon here (the default 30 days needs 44+ days).
        step(f"running the weekly report: airflow dags test plg_insights_report {AS_OF}")
        report_env = {**env, "PLG_BRIDGE__CALIBRATION__HORIZON_DAYS": "7"}
        started = time.monotonic()
        run([str(bin_dir / "airflow"), "dags", "test", "plg_insights_report", AS_OF], report_env, quiet=True)
        print(f"DAG run succeeded in {time.monotonic() - started:.0f}s")
        report_dir = work / f"insights/as_of={AS_OF}"
        step(f"insights summary ({report_dir / 'summary.md'})")
        print((report_dir / "summary.md").read_text().split("\n## Time to value")[0])
        slack_port = fakes["slack"][1]
        posted = fetch(f"http://127.0.0.1:{slack_port}/_fake/state").get("messages", [])
        announced = [m for m in posted if "PLG insights" in json.dumps(m)]
        print(f"  announced in the fake Slack: {'yes' if announced else 'no'}")
    finally:
        for proc, _ in fakes.values():
            proc.terminate()
            proc.wait(timeout=10)

    step("where everything is")
    print(f"  export files     {exports}")
    print(f"  scores           {run_dir / 'scores.csv'}")
    print(f"  data quality     {run_dir / 'quality.json'}")
    print(f"  per-target plan, outcomes, dead letters  {run_dir}/<target>/")
    print(f"  delivery state   {work / 'state'}")
    print(f"  insights report  {report_dir / 'report.html'} (charts in {report_dir / 'charts'})")
    print(f"  Airflow logs     {airflow_home / 'logs'}")


if __name__ == "__main__":
    main()

"""The `demo-init` service of docker-compose.yaml (profile `demo`): the whole flow, once.

Runs inside the Airflow image, next to the scheduler, dag-processor and Celery worker:

1. creates the demo bucket on moto and writes a PostHog-shaped export into it (`plg-bridge generate`);
2. waits until the dag-processor has registered plg_reverse_etl, unpauses it and triggers one run
   with `{"as_of": AS_OF}` and no logical date (the window comes from the on-call param);
3. waits for the run to finish and prints the run report from the work location and what each
   fake vendor API now holds.

Safe to rerun: the export is rewritten identically, and an existing run of the same id is reused.
Exit code 0 when the run succeeded, 1 when it failed or timed out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit

DAG_ID = "plg_reverse_etl"
FAKES = {
    "HubSpot": "http://fake-hubspot:8701",
    "Salesforce": "http://fake-salesforce:8702",
    "Intercom": "http://fake-intercom:8703",
    "Slack": "http://fake-slack:8704",
}


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run(args: list[str], check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and done.returncode:
        sys.exit(
            f"demo: {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return done


def split_s3(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        sys.exit(f"demo: {uri} is not an s3:// location; the demo writes to the moto bucket")
    return parts.netloc, parts.path.strip("/")


def s3_client(endpoint: str | None):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint or None)


def make_export(exports: str, endpoint: str | None, as_of: str, rows: int) -> None:
    bucket, _ = split_s3(exports)
    client = s3_client(endpoint)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    step(f"writing a sample export to {exports}: {rows:,} events, daily files ending {as_of}")
    cmd = ["plg-bridge", "generate", "--out", exports, "--rows", str(rows), "--end", as_of]
    if endpoint:
        cmd += ["--endpoint-url", endpoint]
    done = run(cmd)
    print(done.stdout.strip())


def register_and_trigger(as_of: str, timeout: float) -> str:
    step(f"waiting for the dag-processor to register {DAG_ID}")
    deadline = time.monotonic() + timeout
    # `dags details` fails until the DAG is in the metadata DB (`dags unpause` does not: it
    # succeeds with "No paused DAGs were found")
    while run(["airflow", "dags", "details", DAG_ID], check=False).returncode:
        if time.monotonic() > deadline:
            sys.exit(f"demo: {DAG_ID} was not registered within {timeout:.0f}s (see the dag-processor's log)")
        time.sleep(5)
    run(["airflow", "dags", "unpause", DAG_ID])  # DAGs are paused at creation in this stack
    run_id = f"demo__{as_of}"
    step(f"triggering {DAG_ID} run {run_id} with params {{'as_of': '{as_of}'}} (no logical date)")
    done = run(
        ["airflow", "dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps({"as_of": as_of})],
        check=False,
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        print(f"(not triggered again: {last})")
    return run_id


def wait_for(run_id: str, timeout: float) -> str:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        out = run(["airflow", "dags", "list-runs", DAG_ID, "-o", "json"], check=False).stdout
        try:
            runs = json.loads(out[out.index("[") :]) if "[" in out else []
        except ValueError:
            runs = []
        state = next((r.get("state") for r in runs if r.get("run_id") == run_id), None)
        if state != last:
            print(f"run {run_id}: {state}", flush=True)
            last = state
        if state in ("success", "failed"):
            return state
        time.sleep(10)
    return "timed out"


def show_report(work: str, endpoint: str | None, as_of: str) -> None:
    bucket, prefix = split_s3(work)
    client = s3_client(endpoint)
    run_prefix = f"{prefix}/runs/as_of={as_of}/".lstrip("/")
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=run_prefix)
        for o in page.get("Contents", [])
    ]
    summary = next((k for k in keys if k.endswith("summary.md")), None)
    step(f"run report (s3://{bucket}/{summary or run_prefix})")
    if summary:
        print(client.get_object(Bucket=bucket, Key=summary)["Body"].read().decode())
    else:
        print("no summary.md found; objects of the run:", *keys[:20], sep="\n  ")


def show_fakes() -> None:
    step("what the fake vendor APIs hold now")
    for name, url in FAKES.items():
        try:
            with urllib.request.urlopen(f"{url}/_fake/state", timeout=5) as r:
                state = json.loads(r.read())
            with urllib.request.urlopen(f"{url}/_fake/requests", timeout=5) as r:
                calls = json.loads(r.read())
        except OSError as exc:
            print(f"  {name:<10} unreachable: {exc}")
            continue
        held = ", ".join(f"{len(v)} {k}" for k, v in state.items() if isinstance(v, list | dict)) or "nothing"
        print(f"  {name:<10} {len(calls)} calls; holds {held}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--as-of", required=True, help="window end T of the demo run (YYYY-MM-DD)")
    parser.add_argument("--rows", type=int, default=200_000, help="events in the sample export")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run")
    args = parser.parse_args(argv)

    exports = os.environ["PLG_BRIDGE__EXPORTS__LOCATION"]
    work = os.environ["PLG_BRIDGE__WORK_LOCATION"]
    endpoint = os.environ.get("PLG_BRIDGE__EXPORTS__ENDPOINT_URL") or None

    make_export(exports, endpoint, args.as_of, args.rows)
    run_id = register_and_trigger(args.as_of, timeout=600)
    state = wait_for(run_id, args.timeout)
    show_report(work, endpoint, args.as_of)
    show_fakes()
    step(f"{DAG_ID} {run_id}: {state}; Airflow UI: http://localhost:8080 (airflow / airflow)")
    return 0 if state == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())

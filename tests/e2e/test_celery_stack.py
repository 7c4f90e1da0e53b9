"""plg_reverse_etl on a real distributed Airflow: api-server, scheduler, dag-processor and a Celery
worker as separate processes, Postgres metadata DB, Redis broker, moto S3 and the four fake
vendors (HubSpot, Salesforce, Intercom, Slack) as processes.

The run is triggered and cleared with the CLI commands on-call uses (`airflow dags trigger`,
`airflow tasks clear`); the DAG is unpaused and progress is read through the REST API with a JWT.

    .venv/bin/pytest tests/e2e -m e2e -s      # about 2-3 minutes on 2 cores
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter

import pandas as pd
import pytest

from plg_bridge.config import load_settings
from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from tests.e2e.conftest import AS_OF, DAG_ID, E2E, FAKES
from tests.e2e.stack import AIRFLOW, Stack

pytestmark = pytest.mark.e2e

RUN_ID = f"e2e__{AS_OF.isoformat()}"
RUN_TIMEOUT = 360
POOLS = {"plg_hubspot": 1, "plg_salesforce": 1, "plg_intercom": 1, "plg_slack": 1}


def wait_for_run(stack: Stack, run_id: str, after: str | None = None, timeout: float = RUN_TIMEOUT) -> dict:
    """Poll the run until it is success or failed (and ended after `after`, for a cleared run)."""

    def finished():
        run = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed") and (after is None or (run["end_date"] or "") > after):
            return run
        return None

    return stack.wait_for(f"run {run_id} to finish", finished, timeout=timeout, every=2)


def task_instances(stack: Stack, run_id: str) -> list[dict]:
    return stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]


def not_done(stack: Stack, run_id: str) -> str:
    return ", ".join(
        f"{t['task_id']}[{t['map_index']}]={t['state']}"
        for t in task_instances(stack, run_id)
        if t["state"] not in ("success", "skipped")
    )


def writes(e2e: E2E) -> dict[str, list[str]]:
    """Every request that could change a vendor's data, per fake (an OAuth token is no write)."""
    return {
        name: [
            f"{r['method']} {r['path']}"
            for r in e2e.fake(name, "requests")
            if r["method"] != "GET" and "oauth2/token" not in r["path"]
        ]
        for name in FAKES
    }


def held(e2e: E2E) -> dict[str, dict[str, int]]:
    """How many records of each kind every fake holds."""
    return {
        name: {
            kind: len(records)
            for kind, records in e2e.fake(name, "state").items()
            if isinstance(records, list | dict) and kind != "properties"
        }
        for name in FAKES
    }


def deliveries(work) -> dict[str, dict]:
    summary = json.loads(work.read_bytes(f"runs/as_of={AS_OF}/summary.json"))
    return {d["target"]: d for d in summary["deliveries"]}


def test_celery_stack_delivers_once_and_a_cleared_rerun_sends_nothing(celery_stack: E2E, monkeypatch):
    e2e, stack = celery_stack, celery_stack.stack
    for name, value in stack.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    work = location(f"s3://{e2e.bucket}/plg-bridge")

    # The pools exist with their sizes (scripts/create_pools.py ran before the scheduler started).
    pools = {p["name"]: p["slots"] for p in stack.api("GET", "/pools")["pools"]}
    assert {name: pools.get(name) for name in POOLS} == POOLS

    # -- first run ---------------------------------------------------------------------------------
    started = time.monotonic()
    stack.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    # The window is named in conf: a CLI/REST trigger's data interval is the trigger's wall clock
    # (see test_a_logical_date_alone_names_the_window below).
    conf = json.dumps({"as_of": AS_OF.isoformat()})
    stack.run("cli", [AIRFLOW, "dags", "trigger", DAG_ID, "-l", AS_OF.isoformat(), "-r", RUN_ID, "-c", conf])
    run = wait_for_run(stack, RUN_ID)
    assert run["state"] == "success", f"run {RUN_ID} {run['state']}: {not_done(stack, RUN_ID)}"
    print(f"\nfirst run: {time.monotonic() - started:.0f}s", flush=True)

    # Every task ran on the Celery worker's queue; each delivery in its destination's pool.
    tis = task_instances(stack, RUN_ID)
    queue = stack.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    ran = [t for t in tis if t["state"] == "success"]
    assert ran and all(t["queue"] == queue and t["hostname"] for t in ran)
    delivered = {t["task_id"]: t for t in tis if t["task_id"].startswith("deliver_")}
    assert delivered and all(t["state"] == "success" for t in delivered.values()), not_done(stack, RUN_ID)
    assert {t["pool"] for t in delivered.values()} == set(POOLS)
    assert all(t["pool"] == "plg_" + task_id.split("_")[1] for task_id, t in delivered.items())
    rollups = [t for t in tis if t["task_id"] == "rollup"]
    assert len(rollups) == 21 and all(t["state"] == "success" for t in rollups)  # one per export file

    # The scores of the distributed run are those of the one-process path.
    scores = pd.read_csv(io.BytesIO(work.read_bytes(f"runs/as_of={AS_OF}/scores.csv")))
    expected = score_export(
        location(f"s3://{e2e.bucket}/posthog"),
        pd.Timestamp(AS_OF, tz="UTC").to_pydatetime(),
        load_settings(env={}),
    ).scores
    assert len(scores) > 0 and scores["org_id"].is_unique
    got = dict(zip(scores["org_id"], scores["pql_score"], strict=True))
    want = dict(zip(expected["org_id"], expected["pql_score"], strict=True))
    assert got == want

    # HubSpot holds every scored organization once, with its score.
    companies = list(e2e.fake("hubspot", "state")["companies"].values())
    per_org = Counter(c["properties"]["posthog_group_id"] for c in companies)
    assert set(per_org) == set(got)
    assert max(per_org.values()) == 1, [org for org, n in per_org.items() if n > 1][:10]
    stored = {c["properties"]["posthog_group_id"]: c["properties"].get("plg_pql_score") for c in companies}
    assert {org: stored[org] for org in got} == {org: str(score) for org, score in got.items()}

    # Every target delivered without failures; every vendor received data.
    first = deliveries(work)
    assert {name: d["failed"] for name, d in first.items()} == dict.fromkeys(first, 0)
    assert first["hubspot_companies"]["created"] == len(scores)
    before_writes, before_held = writes(e2e), held(e2e)
    assert all(before_writes.values()), before_writes

    # -- clear the whole run: every task reruns, nothing is sent twice ------------------------------
    started = time.monotonic()
    stack.run(
        "cli", [AIRFLOW, "tasks", "clear", DAG_ID, "-y", "-s", AS_OF.isoformat(), "-e", AS_OF.isoformat()]
    )
    rerun = wait_for_run(stack, RUN_ID, after=run["end_date"])
    assert rerun["state"] == "success", f"rerun {rerun['state']}: {not_done(stack, RUN_ID)}"
    print(f"cleared rerun: {time.monotonic() - started:.0f}s", flush=True)
    again = {t["task_id"]: t for t in task_instances(stack, RUN_ID) if t["task_id"].startswith("deliver_")}
    assert {task_id: (t["try_number"], t["state"]) for task_id, t in again.items()} == {
        task_id: (2, "success") for task_id in delivered
    }

    after_writes = writes(e2e)
    assert {name: after_writes[name][len(before_writes[name]) :] for name in FAKES} == {n: [] for n in FAKES}
    assert held(e2e) == before_held
    companies = list(e2e.fake("hubspot", "state")["companies"].values())
    assert Counter(c["properties"]["posthog_group_id"] for c in companies) == per_org
    second = deliveries(work)
    assert {
        name: (d["plan"]["create"], d["plan"]["update"], d["plan"]["retry"]) for name, d in second.items()
    } == {name: (0, 0, 0) for name in first}
    stack.check_alive()  # no component crashed along the way


def test_a_logical_date_alone_names_the_window(celery_stack: E2E):
    """`airflow dags trigger -l DATE` without conf, as on-call would type it, runs that day's window."""
    stack = celery_stack.stack
    run_id = "e2e__logical_date_only"
    stack.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    stack.run("cli", [AIRFLOW, "dags", "trigger", DAG_ID, "-l", "2026-11-19", "-r", run_id])
    run = wait_for_run(stack, run_id, timeout=240)
    resolved = next(t for t in task_instances(stack, run_id) if t["task_id"] == "resolve_window")
    assert (run["state"], resolved["state"]) == ("success", "success"), (
        f"data interval {run['data_interval_start']} - {run['data_interval_end']}"
    )


def test_backfill_reproduces_the_window_and_sends_nothing(celery_stack: E2E, monkeypatch):
    """`airflow backfill create` over the delivered day reruns it through the scheduler: the outputs
    are byte-identical and nothing is created twice. (Upserts may be sent: the previous test ran the
    2026-11-19 window after this one, so the CRMs now hold that day's values and the backfill puts
    2026-11-20's back.)"""
    e2e, stack = celery_stack, celery_stack.stack
    for name, value in stack.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    work = location(f"s3://{e2e.bucket}/plg-bridge")
    before = {name: work.read_bytes(f"runs/as_of={AS_OF}/{name}") for name in ("scores.csv", "quality.json")}
    before_held = held(e2e)

    day = AS_OF.isoformat()
    stack.run(
        "cli",
        [
            AIRFLOW,
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            day,
            "--to-date",
            day,
            "--reprocess-behavior",
            "completed",
            "--dag-run-conf",
            json.dumps({"as_of": day}),
        ],
    )

    def backfilled():
        runs = stack.api("GET", f"/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"]
        done = [r for r in runs if r["run_type"] == "backfill" and r["state"] in ("success", "failed")]
        return done[0] if done else None

    run = stack.wait_for("the backfill run to finish", backfilled, timeout=RUN_TIMEOUT, every=3)
    assert run["state"] == "success", f"backfill {run['state']}: {not_done(stack, run['dag_run_id'])}"
    assert {name: work.read_bytes(f"runs/as_of={AS_OF}/{name}") for name in before} == before
    assert held(e2e) == before_held  # no company, contact, task, tag, event or message twice

"""The real DAG end to end with dag.test(): generated export -> scores -> fake HubSpot over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from plg_bridge.config import load_settings
from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from plg_bridge.synthetic.generate import generate
from tests.fakes.hubspot import FakeHubSpot
from tests.support import REPO
from tests.support.clocks import AS_OF
from tests.support.events import event, write_export


@pytest.fixture
def pipeline_env(tmp_path, monkeypatch, airflow_db):
    exports, work = tmp_path / "bucket" / "posthog", tmp_path / "bucket" / "plg-bridge"
    generate(str(exports), 20_000, AS_OF.date(), days=21)
    with FakeHubSpot(token="t0k3n") as hubspot:
        monkeypatch.setenv("PLG_BRIDGE__EXPORTS__LOCATION", str(exports))
        monkeypatch.setenv("PLG_BRIDGE__WORK_LOCATION", str(work))
        conn = {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": hubspot.port,
            "schema": "http",
            "password": "t0k3n",
        }
        monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
        yield exports, work, hubspot


def run_dag(logical_date=AS_OF, conf=None):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["plg_reverse_etl"]
    return dag.test(logical_date=logical_date, run_conf=conf)


def test_dag_scores_and_upserts_every_organization(pipeline_env):
    exports, work, hubspot = pipeline_env
    dagrun = run_dag()
    assert dagrun.state == "success"

    run_dir = work / "runs" / "as_of=2026-11-20"
    scores = pd.read_csv(run_dir / "scores.csv")
    expected = score_export(location(str(exports)), AS_OF, load_settings(env={})).scores
    assert scores["org_id"].tolist() == expected["org_id"].tolist()
    assert scores["pql_score"].tolist() == expected["pql_score"].tolist()

    stored = {c["properties"]["posthog_group_id"]: c["properties"] for c in hubspot.objects("companies")}
    assert set(stored) == set(scores["org_id"])
    top = scores.iloc[0]
    assert stored[top["org_id"]]["plg_pql_score"] == str(top["pql_score"])
    summary = json.loads((run_dir / "summary.json").read_text())
    hubspot_run = next(d for d in summary["deliveries"] if d["target"] == "hubspot_companies")
    assert (hubspot_run["created"], hubspot_run["failed"]) == (len(scores), 0)
    assert summary["quality"]["organizations_scored"] == len(scores)
    assert "| hubspot_companies |" in (run_dir / "summary.md").read_text()

    # A cleared-and-rerun window sends nothing: every record diffs as unchanged.
    calls = len(hubspot.calls("POST", "batch/upsert"))
    assert run_dag().state == "success"
    assert len(hubspot.calls("POST", "batch/upsert")) == calls
    summary = json.loads((run_dir / "summary.json").read_text())
    rerun = next(d for d in summary["deliveries"] if d["target"] == "hubspot_companies")
    assert rerun["plan"] == {"create": 0, "update": 0, "retry": 0, "unchanged": len(scores)}


def test_dry_run_plans_and_sends_nothing(pipeline_env):
    _, work, hubspot = pipeline_env
    assert run_dag(conf={"dry_run": True}).state == "success"
    assert hubspot.calls("POST", "batch/upsert") == []
    plan = json.loads((work / "runs" / "as_of=2026-11-20" / "hubspot_companies" / "plan.json").read_text())
    assert plan["plan"]["create"] > 0 and len(plan["sample"]) == 5


def test_manual_run_without_window_is_refused(pipeline_env):
    _, _, hubspot = pipeline_env
    dagrun = run_dag(logical_date=None)
    assert dagrun.state == "failed"
    assert hubspot.calls("POST") == []


def test_rerun_reproduces_outputs_after_newer_exports_arrive(pipeline_env):
    """Backfill semantics: a window only uses export intervals that ended by T, so a rerun after
    later exports (carrying late events of earlier days) writes the same outputs."""
    exports, work, _ = pipeline_env
    assert run_dag().state == "success"
    run_dir = work / "runs" / "as_of=2026-11-20"
    first = {name: (run_dir / name).read_bytes() for name in ("scores.csv", "quality.json")}

    later = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    late_events = [event("core_feature_used", "2026-11-19T12:00", org="org_0001") for _ in range(50)]
    write_export(exports, late_events, name=f"{AS_OF.isoformat()}-{later.isoformat()}.parquet.zst")
    assert run_dag(logical_date=later).state == "success"  # the next day's run sees them
    next_scores = pd.read_csv(work / "runs" / "as_of=2026-11-21" / "scores.csv")
    assert next_scores.set_index("org_id").loc["org_0001", "events_this_week"] >= 50

    assert run_dag().state == "success"  # clearing the 2026-11-20 run again
    assert {name: (run_dir / name).read_bytes() for name in first} == first


def test_next_day_folds_its_new_file_and_a_reexport_rebuilds(pipeline_env):
    """The daily increment (ingest/history.py): the next day's score task starts from the previous
    run's snapshot and merges only the new file; a re-exported old interval invalidates the
    snapshots that merged its old version. Both equal the CLI's score over the same files."""
    exports, work, _ = pipeline_env
    settings = load_settings(env={})
    later = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    next_dir = work / "runs" / "as_of=2026-11-21"

    def scored_like_the_cli() -> None:
        scores = pd.read_csv(next_dir / "scores.csv")
        expected = score_export(location(str(exports)), later, settings).scores
        assert scores["org_id"].tolist() == expected["org_id"].tolist()
        assert scores["pql_score"].tolist() == expected["pql_score"].tolist()
        assert scores["events_this_week"].tolist() == expected["events_this_week"].tolist()

    assert run_dag().state == "success"
    late_events = [event("core_feature_used", "2026-11-19T12:00", org="org_0001") for _ in range(50)]
    write_export(exports, late_events, name=f"{AS_OF.isoformat()}-{later.isoformat()}.parquet.zst")
    assert run_dag(logical_date=later).state == "success"
    assert json.loads((next_dir / "history.json").read_text())["base"] == AS_OF.isoformat()
    assert json.loads((next_dir / "history.json").read_text())["folded"] == 1
    scored_like_the_cli()

    old = next(exports.glob("2026-11-15T00:00:00+00:00-*.parquet*"))  # PostHog re-exports it, with more rows
    rows = pq.read_table(old).to_pylist()
    rows += [event("core_feature_used", "2026-11-15T12:00", org="org_0002") for _ in range(30)]
    write_export(exports, rows, old.name)
    os.utime(old, (old.stat().st_atime, old.stat().st_mtime + 60))
    assert run_dag(logical_date=later).state == "success"  # clearing the 2026-11-21 run
    assert json.loads((next_dir / "history.json").read_text())["base"] is None  # rebuilt from every partial
    scored_like_the_cli()

"""The fast path and the daily run share signal keys and delivery state: whichever sees a signal first
alerts, nobody alerts it twice, under reruns; late intervals neither block the fast path nor make
it alert twice. Both DAGs run with dag.test() against the four fake vendors over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from plg_bridge.synthetic.generate import generate
from tests.dags.test_all_destinations import four_vendors
from tests.fakes.slack import FakeSlack
from tests.support import REPO

AS_OF = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
LAST_DAY = AS_OF - dt.timedelta(days=1)
# how a digest line names its signal (delivery/slack/mapping.py)
PHRASES = "crossed the PQL threshold|showed enterprise interest|is hitting a usage ceiling"
PARTS = 24  # the last day is exported hourly (the run checks the last 24 h hour by hour)


def split_last_day(exports: Path) -> list[Path]:
    """Re-export the last day as hourly intervals, cut by `_inserted_at` like PostHog's."""
    (daily,) = [p for p in exports.rglob("*.parquet*") if p.name.startswith(LAST_DAY.strftime("%Y-%m-%dT"))]
    table = pq.read_table(daily)
    daily.unlink()
    inserted = pc.cast(table["_inserted_at"], pa.timestamp("us", tz="UTC"))
    paths = []
    for i in range(PARTS):
        start, end = LAST_DAY + dt.timedelta(hours=i), LAST_DAY + dt.timedelta(hours=i + 1)
        mask = pc.and_(pc.greater_equal(inserted, start), pc.less(inserted, end))
        if i == PARTS - 1:  # anything ingested later than the day (late rows) rides in the last part
            mask = pc.greater_equal(inserted, start)
        path = daily.parent / f"{start.isoformat()}-{end.isoformat()}.parquet"
        pq.write_table(table.filter(mask), path, compression="zstd")
        paths.append(path)
    return paths


@pytest.fixture
def vendors(tmp_path, monkeypatch, airflow_db):
    exports, work = tmp_path / "bucket" / "posthog", tmp_path / "bucket" / "plg-bridge"
    generate(str(exports), 30_000, AS_OF.date(), days=15)
    parts = split_last_day(exports)
    with four_vendors(exports, work, monkeypatch, exports__interval="hour") as fakes:
        yield work, parts, *fakes


def dags():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).dags


def run_fast(at: str):
    return dags()["plg_fast_signals"].test(run_conf={"at": at})


def run_daily():
    return dags()["plg_reverse_etl"].test(logical_date=AS_OF)


def slack_mentions(slack: FakeSlack) -> list[str]:
    """Every organization-and-signal line posted to Slack (one per alerted signal)."""
    lines = []
    for message in slack.messages("plg-alerts"):
        for block in message.get("blocks") or []:
            text = (block.get("text") or {}).get("text") or ""
            lines += [line for line in text.splitlines() if re.search(PHRASES, line)]
    return lines


def test_one_signal_one_alert_whichever_path_sees_it_first(vendors):
    work, parts, hubspot, salesforce, intercom, slack = vendors
    late = {p: p.read_bytes() for p in parts[8:12]}  # 08:00-12:00 lands late: after the noon run
    for path in late:
        path.unlink()

    assert run_fast("2026-11-19T12:00:00Z").state == "success"
    noon = work / "runs" / "fast" / "at=2026-11-19T120000Z"
    report = json.loads((noon / "report.json").read_text())
    assert report["window_end"] == AS_OF.isoformat()
    fast_keys = set(pd.read_parquet(noon / "signals.parquet")["signal_key"])

    for path, body in late.items():
        path.write_bytes(body)
    assert run_fast("2026-11-19T20:00:00Z").state == "success"
    assert run_daily().state == "success"
    daily = pd.read_parquet(work / "runs" / "as_of=2026-11-20" / "signals.parquet")

    # the fast path raised nothing the daily run does not raise, under the same keys
    assert fast_keys and fast_keys <= set(daily["signal_key"])

    tasks = daily[
        (daily.signal == "usage_ceiling") | ((daily.signal == "enterprise_interest") & daily.is_pql)
    ]
    assert len(hubspot.tasks) == len(tasks) > 0
    assert len(intercom.events) == (daily.signal == "aha_reached").sum()
    crossed = set(daily[daily.signal == "pql_crossed"]["org_id"])
    assert {
        lead["PostHog_Group_Id__c"] for lead in salesforce.leads.values() if lead["Status"] == "PQL"
    } == crossed
    alerted = daily[daily.signal.isin(["pql_crossed", "usage_ceiling", "enterprise_interest"])]
    mentions = slack_mentions(slack)
    assert len(mentions) == len(alerted), mentions
    assert len(mentions) == len(set(mentions))

    # reruns of either path, in any order, alert nothing again
    before = (len(hubspot.tasks), len(intercom.events), len(slack.posted), len(salesforce.requests))
    assert run_fast("2026-11-19T12:00:00Z").state == "success"
    assert run_daily().state == "success"
    assert (len(hubspot.tasks), len(intercom.events), len(slack.posted)) == before[:3]

"""The whole DAG against all four fake vendors over HTTP: the seed's signal table reaches HubSpot,
Salesforce, Intercom and Slack, and a cleared-and-rerun window creates nothing twice."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd
import pytest

from plg_bridge.synthetic.generate import generate
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.intercom import FakeIntercom
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.slack import FakeSlack
from tests.support import REPO
from tests.support.clocks import AS_OF


def http_conn(fake, **fields) -> str:
    return json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": fake.port, "schema": "http", **fields}
    )


@contextlib.contextmanager
def four_vendors(exports: Path, work: Path, monkeypatch, **settings: str):
    """The four fake vendors started, with every organization's two Salesforce leads, and the
    settings and connections that point plg-bridge at them (extra `settings` as PLG_BRIDGE__ vars)."""
    hubspot, salesforce = FakeHubSpot(token="hs"), FakeSalesforce(with_pql_status=True)
    intercom, slack = FakeIntercom(token="ic"), FakeSlack(bot_token="xoxb-1", channels=("plg-alerts",))
    fakes = (hubspot, salesforce, intercom, slack)
    for fake in fakes:
        fake.start()
    for n in range(60):
        for i in range(2):
            salesforce.add_lead(
                LastName=f"Lead {i}", Company=f"org_{n:04d}", PostHog_Group_Id__c=f"org_{n:04d}"
            )
    env = {
        "PLG_BRIDGE__EXPORTS__LOCATION": str(exports),
        "PLG_BRIDGE__WORK_LOCATION": str(work),
        "PLG_BRIDGE__DELIVERY__DESTINATIONS": "hubspot,salesforce,intercom,slack",
        "PLG_BRIDGE__ALERTS__ENABLED": "false",
        **{f"PLG_BRIDGE__{k.upper()}": v for k, v in settings.items()},
        "AIRFLOW_CONN_HUBSPOT_DEFAULT": http_conn(hubspot, password="hs"),
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": http_conn(
            salesforce, login="plg-client-id", password="plg-client-secret"
        ),
        "AIRFLOW_CONN_INTERCOM_DEFAULT": http_conn(intercom, password="ic"),
        "AIRFLOW_CONN_SLACK_DEFAULT": json.dumps(
            {"conn_type": "slack", "password": "xoxb-1", "extra": {"base_url": f"{slack.url}/api/"}}
        ),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        yield fakes
    finally:
        for fake in fakes:
            fake.stop()


@pytest.fixture
def stack(tmp_path, monkeypatch, airflow_db):
    exports, work = tmp_path / "bucket" / "posthog", tmp_path / "bucket" / "plg-bridge"
    generate(str(exports), 30_000, AS_OF.date(), days=21)
    with four_vendors(exports, work, monkeypatch) as fakes:
        yield work / "runs" / "as_of=2026-11-20", *fakes


def run_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).dags["plg_reverse_etl"].test(logical_date=AS_OF)


def effects(hubspot, salesforce, intercom, slack) -> dict:
    """Everything a rerun must not add to."""
    return {
        "hubspot_companies": len(hubspot.objects("companies")),
        "hubspot_contacts": len(hubspot.objects("contacts")),
        "hubspot_tasks": len(hubspot.tasks),
        "salesforce_accounts": len(salesforce.accounts),
        "intercom_companies": len(intercom.companies),
        "intercom_events": len(intercom.events),
        "slack_messages": len(slack.posted),
    }


def test_every_destination_gets_the_signal_table_once(stack):
    run_dir, hubspot, salesforce, intercom, slack = stack
    assert run_dag().state == "success"

    scores = pd.read_csv(run_dir / "scores.csv")
    signals = pd.read_parquet(run_dir / "signals.parquet")
    summary = json.loads((run_dir / "summary.json").read_text())
    delivered = {d["target"]: d for d in summary["deliveries"]}
    assert all(d.get("failed", 0) == 0 for d in delivered.values()), delivered
    assert not any("skipped" in d for d in delivered.values())

    orgs = set(scores["org_id"])
    assert {c["properties"]["posthog_group_id"] for c in hubspot.objects("companies")} == orgs
    assert set(salesforce.accounts) == orgs
    assert orgs <= set(intercom.companies)
    assert len(hubspot.objects("contacts")) == delivered["hubspot_contacts"]["created"] > 0

    tasks = signals[
        (signals.signal == "usage_ceiling") | ((signals.signal == "enterprise_interest") & signals.is_pql)
    ]
    assert len(hubspot.tasks) == len(tasks) > 0
    assert all(t["associations"] for t in hubspot.tasks)  # each task sits on its company

    aha = signals[signals.signal == "aha_reached"]
    assert len(intercom.events) == len(aha)
    tagged = signals[signals.signal.isin(["integration_connected", "enterprise_interest"])]
    assert sum(len(intercom.company_tags(c)) for c in intercom.companies) >= tagged["org_id"].nunique()

    crossed = set(signals[signals.signal == "pql_crossed"]["org_id"])
    pql_leads = {lead["PostHog_Group_Id__c"] for lead in salesforce.leads.values() if lead["Status"] == "PQL"}
    assert pql_leads == crossed
    # Slack's create-once unit is the signal: each alerted signal once, in one of the digest messages
    alerted = signals[signals.signal.isin(["pql_crossed", "usage_ceiling", "enterprise_interest"])]
    assert delivered["slack_digest"]["created"] == len(alerted) > 0
    assert 1 <= len(slack.messages("plg-alerts")) <= len(alerted)
    assert slack.broadcasts() == []
    assert intercom.spec_violations == [] and slack.spec_violations == []

    before = effects(hubspot, salesforce, intercom, slack)
    calls = len(hubspot.requests) + len(salesforce.requests) + len(intercom.requests) + len(slack.requests)
    assert run_dag().state == "success"  # a cleared-and-rerun window
    assert effects(hubspot, salesforce, intercom, slack) == before
    assert (
        len(hubspot.requests) + len(intercom.requests) + len(slack.requests) + len(salesforce.requests)
        == calls
    )

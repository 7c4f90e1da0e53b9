"""Salesforce through the targets the DAG runs (sync_target -> salesforce_accounts /
salesforce_lead_status -> SalesforceClient.from_connection), over real HTTP against FakeSalesforce:
sessions that expire mid-run and a daily API budget other integrations have nearly spent."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from plg_bridge.config import DeliverySettings, SalesforceSettings, Settings
from plg_bridge.controls import RunOptions
from plg_bridge.delivery.deliver import RejectedRowsError, RunInputs, sync_target
from plg_bridge.delivery.targets import TARGETS
from tests.fakes.salesforce import FakeSalesforce
from tests.support.deliver import http_connection
from tests.support.frames import scores

CLIENT_ID, CLIENT_SECRET = "plg-client-id", "plg-client-secret"
TOKEN = "/services/oauth2/token"
UPSERT = "/composite/sobjects/Account/PostHog_Group_Id__c"


def named_scores(n: int) -> pd.DataFrame:
    """Every organization named, so each Collections call is one upsert (no Name fallback pass)."""
    frame = scores(n)
    frame["org_name"] = frame["org_name"].fillna("Org " + frame["org_id"])
    return frame


def connect(fake: FakeSalesforce, monkeypatch) -> None:
    conn = http_connection(fake, CLIENT_SECRET, login=CLIENT_ID)
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", conn)


def settings(tmp_path, **salesforce) -> Settings:
    return Settings(
        work_location=str(tmp_path),
        delivery=DeliverySettings(destinations=("salesforce",)),
        salesforce=SalesforceSettings(max_in_flight=1, **salesforce),  # calls in order
    ).validate()


def run(cfg: Settings, tmp_path, frame: pd.DataFrame, day: int, target: str = "salesforce_accounts") -> dict:
    frames = {"scores": frame, "signals": pd.DataFrame(), "contacts": pd.DataFrame()}
    as_of = dt.datetime(2026, 11, day, tzinfo=dt.UTC)
    return sync_target(
        cfg, TARGETS[target], RunInputs(str(tmp_path), None, as_of, _cache=frames), RunOptions()
    )


def test_sessions_expiring_mid_run_are_renewed_and_every_account_arrives_once(monkeypatch, tmp_path):
    """Each token serves one data call: 450 accounts = 3 Collections calls; the 2nd and 3rd are
    refused 401 INVALID_SESSION_ID, a new token is fetched and the call is sent again:
    3 token calls, 5 upsert calls, 450 accounts and no duplicates."""
    with FakeSalesforce(token_lifetime=1) as fake:
        connect(fake, monkeypatch)
        result = run(settings(tmp_path), tmp_path, named_scores(450), 20)

        assert (result["created"], result["failed"]) == (450, 0)
        assert len(fake.calls("POST", TOKEN)) == 3
        upserts = fake.calls("PATCH", UPSERT)
        assert [len(c.json["records"]) for c in upserts] == [200, 200, 200, 50, 50]
        assert upserts[1].json == upserts[2].json and upserts[3].json == upserts[4].json
        assert len(fake.records["Account"]) == 450 and len(fake.accounts) == 450
        assert fake.api_usage == 3  # a refused call is not counted by Salesforce


def dead_letters(tmp_path, day: int) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / f"runs/as_of=2026-11-{day}/salesforce_accounts/dead_letters.parquet")


def test_the_daily_budget_stops_at_the_reserve_and_the_rest_goes_next_run(monkeypatch, tmp_path):
    """Limit 1,000, 5 % (50 calls) reserved, 949 already used by other integrations. The first
    call makes it 950 (50 left: fine), the second 951 (49 left: below the reserve), so the third
    batch is not sent: 400 created, 50 kept as dead letters DAILY_BUDGET_RESERVED, and the task
    fails loudly after committing (as for Salesforce's own daily limit). The next run, on a new
    day at Salesforce, sends only those 50."""
    with FakeSalesforce(daily_limit=1000, api_usage=949) as fake:
        connect(fake, monkeypatch)
        cfg = settings(tmp_path)
        frame = named_scores(450)

        with pytest.raises(RejectedRowsError, match="DAILY_BUDGET_RESERVED") as raised:
            run(cfg, tmp_path, frame, 20)

        assert "50 of 450 rows" in str(raised.value)
        assert "other integrations" in str(raised.value)
        assert [len(c.json["records"]) for c in fake.calls("PATCH", UPSERT)] == [200, 200]
        assert fake.api_usage == 951 and len(fake.accounts) == 400
        dead = dead_letters(tmp_path, 20)
        assert set(dead["record_key"]) == {f"org-{i:04d}" for i in range(400, 450)}
        assert set(dead["error_code"]) == {"DAILY_BUDGET_RESERVED"}

        fake.api_usage = 0  # a new day at Salesforce
        second = run(cfg, tmp_path, frame, 21)
        assert (second["created"], second["failed"]) == (50, 0)
        assert [len(c.json["records"]) for c in fake.calls("PATCH", UPSERT)] == [200, 200, 50]
        assert len(fake.accounts) == 450


def test_no_reserve_lets_the_run_spend_up_to_salesforces_own_limit(monkeypatch, tmp_path):
    """With salesforce.api_reserve = 0 the client sends until Salesforce itself answers 403
    REQUEST_LIMIT_EXCEEDED: limit 1,000 with 998 used leaves two calls."""
    with FakeSalesforce(daily_limit=1000, api_usage=998) as fake:
        connect(fake, monkeypatch)
        with pytest.raises(RejectedRowsError, match="REQUEST_LIMIT_EXCEEDED"):
            run(settings(tmp_path, api_reserve=0.0), tmp_path, named_scores(450), 20)

        assert len(fake.calls("PATCH", UPSERT)) == 3  # the third answered 403 and is not retried
        assert len(fake.accounts) == 400
        assert set(dead_letters(tmp_path, 20)["error_code"]) == {"REQUEST_LIMIT_EXCEEDED"}


def test_a_bulk_job_started_above_the_reserve_is_seen_through(monkeypatch, tmp_path):
    """Limit 1,000, 949 used, Bulk above 50 rows: creating the job makes it 950 (50 left: may
    start); the upload makes it 951, below the reserve, but the job's own calls (upload, close,
    polls, three result reads) go on so its 60 rows get real outcomes. The next run learns the count
    from its job's creation and aborts that job before uploading anything."""
    with FakeSalesforce(daily_limit=1000, api_usage=949) as fake:
        connect(fake, monkeypatch)
        cfg = settings(tmp_path, bulk_threshold=50)

        first = run(cfg, tmp_path, named_scores(60), 20)

        assert (first["created"], first["failed"]) == (60, 0)
        assert len(fake.calls("POST", r"/jobs/ingest/?$")) == 1
        assert len(fake.accounts) == 60
        # create, upload, close, two polls (the fake's first sees InProgress), three result reads
        assert fake.api_usage == 949 + 8

        calls = len(fake.requests)
        changed = named_scores(60).assign(pql_score=99.0)
        with pytest.raises(RejectedRowsError, match="DAILY_BUDGET_RESERVED"):
            run(cfg, tmp_path, changed, 21)
        # the new client's job creation is its first answer: 958/1000, so the job is aborted
        # unused (nothing uploaded) and its rows wait for the next run
        assert [(r.method, r.path.rsplit("/", 2)[-2]) for r in fake.requests[calls:]] == [
            ("POST", "jobs"),
            ("PATCH", "ingest"),
        ]
        assert len(fake.calls("PUT", "/batches")) == 1
        assert sorted(job["state"] for job in fake.jobs.values()) == ["Aborted", "JobComplete"]
        assert {a["PLG_Score__c"] for a in fake.accounts.values()} != {99}


def test_the_reserve_setting_is_validated():
    from plg_bridge.config import ConfigError

    with pytest.raises(ConfigError, match=r"salesforce\.api_reserve"):
        SalesforceSettings(api_reserve=0.7).validate()

"""Salesforce delivery over real HTTP against FakeSalesforce on loopback: the token, sObject
Collections, Bulk API 2.0, faults, the daily limit, lead status and the Airflow connection."""

from __future__ import annotations

import csv
import io
import json
import logging
import time

import pandas as pd
import pytest

from plg_bridge.delivery.salesforce.client import SalesforceClient
from plg_bridge.delivery.salesforce.deliver import deliver_accounts, deliver_lead_status
from plg_bridge.delivery.salesforce.mapping import account_records
from plg_bridge.delivery.transport import RetryPolicy
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.server import Fault, Response
from tests.support.deliver import http_connection
from tests.support.frames import scores

CLIENT_ID, CLIENT_SECRET = "plg-client-id", "plg-client-secret"
TOKEN = "/services/oauth2/token"
UPSERT = "/composite/sobjects/Account/PostHog_Group_Id__c"
UPDATE = r"/composite/sobjects/?$"


class Sleeps:
    """Records every wait the client asks for, without waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def records(n: int, start: int = 0, *, named: bool = True, **kwargs) -> list[dict]:
    """Account records; every organization named unless `named=False` (the frames leave every
    tenth without a name, which the Name fallback test is about)."""
    frame = scores(n, start)
    if named:
        frame["org_name"] = frame["org_name"].fillna("Org " + frame["org_id"])
    return account_records(frame, **kwargs)


def make_client(fake: FakeSalesforce, **kwargs) -> SalesforceClient:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("policy", RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=1.0))
    kwargs.setdefault("max_in_flight", 1)  # calls in order: the in-flight test sets its own
    return SalesforceClient(fake.url, CLIENT_ID, CLIENT_SECRET, **kwargs)


def statuses(outcomes: pd.DataFrame) -> dict[str, int]:
    return outcomes["status"].value_counts().to_dict()


def sizes(calls) -> list[int]:
    return [len(c.json["records"]) for c in calls]


@pytest.fixture
def fake():
    with FakeSalesforce() as server:
        yield server


# -- token ---------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_reused(fake):
    client = make_client(fake)
    deliver_accounts(client, records(5))
    deliver_accounts(client, records(5, start=5))

    assert len(fake.calls("POST", TOKEN)) == 1
    token_form = fake.calls("POST", TOKEN)[0].body.decode()
    assert "grant_type=client_credentials" in token_form and "client_id=plg-client-id" in token_form
    data_calls = fake.calls(path="/services/data/")
    assert len(data_calls) == 2
    assert {c.header("authorization") for c in data_calls} == {f"Bearer {next(iter(fake.tokens))}"}
    assert client.token_fetches == 1


def test_expired_token_is_refreshed_and_the_call_replayed_without_duplicates(fake):
    client = make_client(fake)
    assert statuses(deliver_accounts(client, records(3))) == {"created": 3}
    fake.expire_tokens()

    outcomes = deliver_accounts(client, records(5))  # 3 known + 2 new

    assert list(outcomes["status"]) == ["updated"] * 3 + ["created"] * 2
    assert len(fake.calls("POST", TOKEN)) == 2
    patches = fake.calls("PATCH", UPSERT)
    assert len(patches) == 3  # first delivery, the refused call, its replay
    assert patches[1].json == patches[2].json
    assert patches[1].header("authorization") != patches[2].header("authorization")
    assert len(fake.records["Account"]) == 5
    assert set(fake.accounts) == {f"org-{i:04d}" for i in range(5)}


def test_refused_credentials_fail_every_row_and_stop_the_client(fake):
    client = SalesforceClient(fake.url, CLIENT_ID, "wrong-secret", sleep=Sleeps())
    outcomes = deliver_accounts(client, records(450))

    assert set(outcomes["status"]) == {"failed"}
    assert set(outcomes["error_code"]) == {"OAUTH_INVALID_CLIENT"}
    assert len(fake.calls("POST", TOKEN)) == 1  # not retried per batch
    assert fake.calls(path="/services/data/") == []
    assert client.stopped is not None
    again = deliver_lead_status(client, ["org-0001"])
    assert list(again["error_code"]) == ["OAUTH_INVALID_CLIENT"]
    assert len(fake.requests) == 1
    assert "wrong-secret" not in str(client.stopped) and "wrong-secret" not in repr(client)


# -- sObject Collections -------------------------------------------------------------------------


def test_450_accounts_take_three_collection_calls_and_store_mapped_fields(fake):
    client = make_client(fake)
    outcomes = deliver_accounts(client, records(450))

    patches = fake.calls("PATCH", UPSERT)
    assert sizes(patches) == [200, 200, 50]
    assert all(c.json["allOrNone"] is False for c in patches)
    assert all(c.path.startswith("/services/data/v67.0/") for c in patches)
    assert len(outcomes) == 450 and statuses(outcomes) == {"created": 450}
    assert list(outcomes["record_key"]) == [f"org-{i:04d}" for i in range(450)]
    assert len(fake.accounts) == 450
    acme = fake.accounts["org-0007"]
    assert acme["Name"] == "Org 7"
    assert acme["PLG_Score__c"] == pytest.approx(2.59)
    assert acme["PQL__c"] is False
    assert fake.accounts["org-0008"]["PQL__c"] is True
    assert fake.accounts["org-0010"]["Name"] == "Org org-0010"  # (unnamed rows: the Name fallback test)
    by_key = outcomes.set_index("record_key")["destination_id"]
    assert by_key["org-0007"] == acme["Id"]
    assert client.api_usage == (3, 100_000)


def test_rerun_updates_and_does_not_duplicate(fake):
    client = make_client(fake)
    first = deliver_accounts(client, records(450))
    changed = scores(450)
    changed["pql_score"] = 99.0
    second = deliver_accounts(client, account_records(changed))

    assert statuses(second) == {"updated": 450}
    assert list(second["destination_id"]) == list(first["destination_id"])
    assert len(fake.records["Account"]) == 450
    assert {a["PLG_Score__c"] for a in fake.accounts.values()} == {99}


def test_partial_failure_fails_only_that_row_with_its_code():
    failures = {"org-0003": ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Score must be below 100")}
    with FakeSalesforce(fail_records=failures) as fake:
        outcomes = deliver_accounts(make_client(fake), records(250))

        bad = outcomes[outcomes["status"] == "failed"]
        assert list(bad["record_key"]) == ["org-0003"]
        assert bad.iloc[0]["error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert bad.iloc[0]["error_message"] == "Score must be below 100"
        assert pd.isna(bad.iloc[0]["destination_id"])
        assert (outcomes["status"] == "created").sum() == 249
        assert len(fake.accounts) == 249 and "org-0003" not in fake.accounts
        assert sizes(fake.calls("PATCH", UPSERT)) == [200, 50]  # a lasting error is not resent


def test_unknown_field_fails_rows_with_invalid_field(fake):
    outcomes = deliver_accounts(make_client(fake), records(3, field_map={"events_this_week": "Events_7d__c"}))
    assert set(outcomes["error_code"]) == {"INVALID_FIELD"}
    assert outcomes["error_message"].str.contains("Events_7d__c").all()
    assert fake.accounts == {}


def test_record_lock_errors_are_resent_until_they_pass():
    failures = {"org-0002": ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", 2)}
    with FakeSalesforce(fail_records=failures) as fake:
        sleeps = Sleeps()
        outcomes = deliver_accounts(make_client(fake, sleep=sleeps), records(5))

        assert statuses(outcomes) == {"created": 5}
        assert sizes(fake.calls("PATCH", UPSERT)) == [5, 1, 1]  # only the locked record is resent
        assert len(sleeps.waits) == 2
        assert len(fake.accounts) == 5


def test_a_lock_that_never_clears_fails_after_the_retries():
    with FakeSalesforce(fail_records={"org-0001": ("UNABLE_TO_LOCK_ROW", "locked")}) as fake:
        outcomes = deliver_accounts(make_client(fake), records(3))
        row = outcomes.set_index("record_key").loc["org-0001"]
        assert (row["status"], row["error_code"]) == ("failed", "UNABLE_TO_LOCK_ROW")
        assert sizes(fake.calls("PATCH", UPSERT)) == [3, 1, 1]  # RECORD_ROUNDS = 3 rounds of the record


@pytest.mark.parametrize(
    "fault",
    [
        Response(503, [{"message": "try later", "errorCode": "SERVER_UNAVAILABLE"}]),
        Response(500, [{"message": "oops", "errorCode": "UNKNOWN_EXCEPTION"}]),
        Response(400, [{"message": "locked", "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}]),
        Response(403, [{"message": "busy", "errorCode": "API_TEMPORARILY_UNAVAILABLE", "fields": []}]),
    ],
    ids=["503", "500", "400-lock", "403-unavailable"],
)
def test_transient_errors_are_retried_then_succeed(fake, fault):
    sleeps = Sleeps()
    fake.inject(Fault(path=UPSERT, response=fault))
    outcomes = deliver_accounts(make_client(fake, sleep=sleeps), records(3))

    assert statuses(outcomes) == {"created": 3}
    assert len(fake.calls("PATCH", UPSERT)) == 2
    assert len(sleeps.waits) == 1
    assert len(fake.records["Account"]) == 3


def test_lasting_5xx_fails_the_batch_with_retries_exhausted(fake):
    fake.inject(Fault(path=UPSERT, response=Response(503, [{"errorCode": "SERVER_UNAVAILABLE"}]), times=4))
    outcomes = deliver_accounts(make_client(fake), records(250))

    first = outcomes.iloc[:200]
    assert set(first["error_code"]) == {"RETRIES_EXHAUSTED"}
    assert statuses(outcomes.iloc[200:]) == {"created": 50}  # the next batch still goes out


def test_request_limit_exceeded_stops_the_destination_for_the_run():
    with FakeSalesforce(daily_limit=2) as fake:
        client = make_client(fake, api_reserve=0)  # no reserve: the vendor's 403 is what stops
        outcomes = deliver_accounts(client, records(450))

        assert statuses(outcomes.iloc[:400]) == {"created": 400}
        rest = outcomes.iloc[400:]
        assert set(rest["status"]) == {"failed"} and set(rest["error_code"]) == {"REQUEST_LIMIT_EXCEEDED"}
        assert len(fake.calls("PATCH", UPSERT)) == 3  # the 403 is not retried
        assert client.stopped is not None and client.stopped.code == "REQUEST_LIMIT_EXCEEDED"

        calls = len(fake.requests)
        more = deliver_accounts(client, records(5, start=1000))
        leads = deliver_lead_status(client, ["org-0001", "org-0002"])
        assert set(more["error_code"]) == {"REQUEST_LIMIT_EXCEEDED"}
        assert set(leads["error_code"]) == {"REQUEST_LIMIT_EXCEEDED"}
        assert len(fake.requests) == calls  # nothing more was sent
        assert len(fake.accounts) == 400


def test_repeated_keys_fail_as_duplicates_and_are_not_sent(fake):
    batch = records(3) + records(1, start=1)
    outcomes = deliver_accounts(make_client(fake), batch)
    assert list(outcomes["status"]) == ["created", "created", "created", "failed"]
    assert outcomes.iloc[3]["error_code"] == "DUPLICATE_ID"
    assert sizes(fake.calls("PATCH", UPSERT)) == [3]


def test_external_id_field_is_configurable():
    with FakeSalesforce(
        sobjects={"Account": ("Name", "Group_Key__c", "PLG_Score__c", "PQL__c")},
        external_ids={"Account": ("Group_Key__c",)},
    ) as fake:
        client = make_client(fake)
        outcomes = deliver_accounts(
            client, records(2, field_map={"signals": None}), external_id_field="Group_Key__c"
        )
        assert statuses(outcomes) == {"created": 2}
        assert set(fake.accounts) == {"org-0000", "org-0001"}
        wrong = deliver_accounts(client, records(2))  # default field is no external id there
        assert set(wrong["error_code"]) == {"NOT_FOUND"}


# -- Bulk API 2.0 --------------------------------------------------------------------------------


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_bulk_path_above_the_threshold_maps_failed_rows_back_to_their_keys():
    failures = {
        "org-0017": ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Score must be below 100"),
        "org-0101": ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access"),
    }
    with FakeSalesforce(fail_records=failures, bulk_polls=2) as fake:
        fake.add_record("Account", PostHog_Group_Id__c="org-0005", Name="Old name")
        sleeps = Sleeps()
        client = make_client(fake, sleep=sleeps)
        outcomes = deliver_accounts(client, records(120), bulk_threshold=50, bulk_poll_interval=2.0)

        assert fake.calls("PATCH", UPSERT) == []
        jobs = fake.calls("POST", r"/jobs/ingest/?$")
        assert len(jobs) == 1
        assert jobs[0].json == {
            "object": "Account",
            "operation": "upsert",
            "externalIdFieldName": "PostHog_Group_Id__c",
            "contentType": "CSV",
            "lineEnding": "LF",
        }
        upload = fake.calls("PUT", "/batches")[0]
        assert upload.header("content-type") == "text/csv"
        assert b"\r" not in upload.body
        assert len(read_csv(upload.body.decode())) == 120
        assert sleeps.waits == [2.0, 2.0]  # two polls saw InProgress

        assert len(outcomes) == 120
        by_key = outcomes.set_index("record_key")
        assert by_key.loc["org-0017", "error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert by_key.loc["org-0017", "error_message"].startswith("Score must be below 100")
        assert by_key.loc["org-0101", "error_code"] == "UNABLE_TO_LOCK_ROW"
        assert list(outcomes[outcomes["status"] == "failed"]["record_key"]) == ["org-0017", "org-0101"]
        assert by_key.loc["org-0005", "status"] == "updated"
        assert by_key.loc["org-0006", "status"] == "created"
        assert by_key.loc["org-0006", "destination_id"] == fake.accounts["org-0006"]["Id"]
        assert len(fake.accounts) == 118
        assert fake.accounts["org-0005"]["Name"] == "Org 5"
        assert fake.accounts["org-0008"]["PQL__c"] == "true"
        assert fake.accounts["org-0010"]["Name"] == "Org org-0010"


def test_bulk_job_that_fails_leaves_every_row_unprocessed_for_the_next_run(fake):
    batch = records(120, field_map={"events_this_week": "Events_7d__c"})  # unknown to the org
    outcomes = deliver_accounts(make_client(fake), batch, bulk_threshold=50)

    assert len(outcomes) == 120
    assert set(outcomes["error_code"]) == {"UNPROCESSED"}
    assert outcomes["error_message"].str.contains("Failed: InvalidBatch : Field name not found").all()
    assert fake.accounts == {}


def test_bulk_job_not_finished_within_the_poll_bound_is_aborted():
    with FakeSalesforce(bulk_polls=100) as fake:
        sleeps = Sleeps()
        outcomes = deliver_accounts(
            make_client(fake, sleep=sleeps), records(60), bulk_threshold=50, bulk_max_polls=3
        )

        assert len(fake.calls("GET", r"/jobs/ingest/\w+/?$")) == 3
        assert len(sleeps.waits) == 2
        job_id = next(iter(fake.jobs))
        assert fake.jobs[job_id]["state"] == "Aborted"
        assert set(outcomes["error_code"]) == {"UNPROCESSED"}
        assert outcomes["error_message"].str.contains("aborted").all()
        assert len(outcomes) == 60 and fake.accounts == {}


def test_bulk_rerun_after_unprocessed_rows_delivers_them(fake):
    client = make_client(fake)
    deliver_accounts(client, records(60), bulk_threshold=50, bulk_max_polls=0)  # gives up at once
    outcomes = deliver_accounts(client, records(60), bulk_threshold=50)
    assert statuses(outcomes) == {"created": 60}
    assert len(fake.records["Account"]) == 60


def test_bulk_job_creation_refused_fails_every_row(fake):
    fake.inject(
        Fault(path=r"/jobs/ingest/?$", response=Response(400, [{"errorCode": "INVALIDJOB", "message": "no"}]))
    )
    outcomes = deliver_accounts(make_client(fake), records(60), bulk_threshold=50)
    assert set(outcomes["error_code"]) == {"INVALIDJOB"} and len(outcomes) == 60
    assert fake.calls("PUT") == []


def test_bulk_results_that_miss_rows_fail_them_as_no_result(fake):
    # the fake answers an empty successfulResults once: those rows must not be reported delivered
    fake.inject(Fault(path="successfulResults", response=Response(200, "", content_type="text/csv")))
    outcomes = deliver_accounts(make_client(fake), records(60), bulk_threshold=50)
    assert set(outcomes["error_code"]) == {"NO_RESULT"} and len(outcomes) == 60


# -- lead status ---------------------------------------------------------------------------------


def test_lead_status_updates_only_leads_not_already_there():
    with FakeSalesforce(with_pql_status=True) as fake:
        open_a = fake.add_lead(LastName="A", PostHog_Group_Id__c="org-1")
        pql_b = fake.add_lead(LastName="B", PostHog_Group_Id__c="org-1", Status="PQL")
        done_c = fake.add_lead(LastName="C", PostHog_Group_Id__c="org-1", Status="Closed - Converted")
        working_d = fake.add_lead(LastName="D", PostHog_Group_Id__c="org-2", Status="Working - Contacted")
        other_e = fake.add_lead(LastName="E", PostHog_Group_Id__c="org-9")
        client = make_client(fake)

        outcomes = deliver_lead_status(client, ["org-1", "org-2", "org-3", "org-1"])

        assert list(outcomes["record_key"]) == ["org-1", "org-2", "org-3"]
        assert list(outcomes["status"]) == ["updated"] * 3
        assert outcomes["error_code"].isna().all()
        assert outcomes.iloc[0]["destination_id"] == f"{open_a},{pql_b},{done_c}"
        assert outcomes.iloc[1]["destination_id"] == working_d
        assert pd.isna(outcomes.iloc[2]["destination_id"])  # no leads: nothing to do
        patches = fake.calls("PATCH", UPDATE)
        assert len(patches) == 1 and patches[0].json["allOrNone"] is False
        assert [r["Id"] for r in patches[0].json["records"]] == [open_a, working_d]
        assert {r["attributes"]["type"] for r in patches[0].json["records"]} == {"Lead"}
        assert {i: fake.leads[i]["Status"] for i in (open_a, pql_b, done_c, working_d, other_e)} == {
            open_a: "PQL",
            pql_b: "PQL",
            done_c: "Closed - Converted",
            working_d: "PQL",
            other_e: "Open - Not Contacted",
        }

        again = deliver_lead_status(client, ["org-1", "org-2"])
        assert list(again["status"]) == ["updated", "updated"]
        assert len(fake.calls("PATCH", UPDATE)) == 1  # nothing left to change
        lead_status_queries = [c for c in fake.calls("GET", "/query") if "LeadStatus" in c.query["q"][0]]
        assert len(lead_status_queries) == 1  # cached per client


def test_missing_lead_status_fails_rows_without_sending_updates():
    with FakeSalesforce() as fake:  # no PQL value in LeadStatus
        fake.add_lead(LastName="A", PostHog_Group_Id__c="org-1")
        outcomes = deliver_lead_status(make_client(fake), ["org-1", "org-2"])

        assert list(outcomes["status"]) == ["failed", "failed"]
        assert set(outcomes["error_code"]) == {"LEAD_STATUS_MISSING"}
        message = outcomes.iloc[0]["error_message"]
        assert "'PQL'" in message and "'Open - Not Contacted'" in message
        assert fake.calls("PATCH") == []
        assert [c.query["q"][0] for c in fake.calls("GET", "/query")] == [
            "SELECT ApiName, IsConverted FROM LeadStatus"
        ]


def test_lead_queries_are_chunked_paged_and_escaped():
    with FakeSalesforce(with_pql_status=True, query_page_size=2) as fake:
        orgs = [f"org-{i}" for i in range(210)] + ["o'brien"]
        with_leads = ["org-3", "org-150", "org-199", "org-205", "o'brien"]
        ids = {org: fake.add_lead(LastName=org, PostHog_Group_Id__c=org) for org in with_leads}
        fake.add_lead(LastName="second", PostHog_Group_Id__c="org-3")

        outcomes = deliver_lead_status(make_client(fake), orgs)

        assert len(outcomes) == 211 and set(outcomes["status"]) == {"updated"}
        lead_queries = [c for c in fake.calls("GET", "/query") if "FROM Lead " in c.query.get("q", [""])[0]]
        assert len(lead_queries) == 2  # 200 + 11 org ids
        assert len(fake.calls("GET", r"/query/01g")) >= 1  # nextRecordsUrl followed
        assert {fake.leads[i]["Status"] for i in ids.values()} == {"PQL"}
        assert all(lead["Status"] == "PQL" for lead in fake.leads.values())
        assert sizes(fake.calls("PATCH", UPDATE)) == [6]


def test_a_failed_lead_fails_its_organization_only():
    with FakeSalesforce(with_pql_status=True) as fake:
        a1 = fake.add_lead(LastName="A1", PostHog_Group_Id__c="org-a")
        a2 = fake.add_lead(LastName="A2", PostHog_Group_Id__c="org-a")
        b1 = fake.add_lead(LastName="B1", PostHog_Group_Id__c="org-b")
        fake.fail_record(a2, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Owner required for PQL")

        outcomes = deliver_lead_status(make_client(fake), ["org-a", "org-b"]).set_index("record_key")

        assert outcomes.loc["org-a", "status"] == "failed"
        assert outcomes.loc["org-a", "error_code"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        assert a2 in outcomes.loc["org-a", "error_message"]
        assert "1 of 2 leads" in outcomes.loc["org-a", "error_message"]
        assert outcomes.loc["org-b", "status"] == "updated"
        assert (fake.leads[a1]["Status"], fake.leads[a2]["Status"], fake.leads[b1]["Status"]) == (
            "PQL",
            "Open - Not Contacted",
            "PQL",
        )


def test_lead_status_value_and_org_field_are_configurable():
    with FakeSalesforce(
        sobjects={"Lead": ("LastName", "Status", "Org_Key__c")}, lead_statuses=("Open", "Hot")
    ) as fake:
        lead = fake.add_lead(LastName="A", Org_Key__c="org-1")
        outcomes = deliver_lead_status(make_client(fake), ["org-1"], status="Hot", org_field="Org_Key__c")
        assert list(outcomes["status"]) == ["updated"]
        assert fake.leads[lead]["Status"] == "Hot"


# -- Airflow connection --------------------------------------------------------------------------


def test_from_connection_reads_the_airflow_connection_and_reaches_the_fake(fake, monkeypatch, caplog):
    conn = http_connection(fake, CLIENT_SECRET, login=CLIENT_ID, api_version="v66.0")
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", conn)
    caplog.set_level(logging.DEBUG)

    client = SalesforceClient.from_connection(sleep=Sleeps())
    outcomes = deliver_accounts(client, records(3))

    assert client.base_url == fake.url
    assert client.api_version == "v66.0"
    assert statuses(outcomes) == {"created": 3}
    assert fake.calls("PATCH", UPSERT)[0].path.startswith("/services/data/v66.0/")
    for request in fake.requests:
        assert "api_version" not in request.headers
        assert not (request.header("authorization") or "").startswith("Basic")
    assert CLIENT_SECRET not in repr(client)
    assert CLIENT_SECRET not in caplog.text
    assert next(iter(fake.tokens)) not in caplog.text


def test_from_connection_needs_host_and_credentials(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_NO_SECRET", json.dumps({"conn_type": "http", "host": "https://x.my.salesforce.com"})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SF_NO_HOST", json.dumps({"conn_type": "http", "login": "a", "password": "b"})
    )
    with pytest.raises(ValueError, match="client secret"):
        SalesforceClient.from_connection("sf_no_secret")
    with pytest.raises(ValueError, match="no host"):
        SalesforceClient.from_connection("sf_no_host")


def test_collections_calls_in_flight_at_a_500ms_round_trip(fake):
    fake.with_latency(0.5, 0.05)
    client = make_client(fake, max_in_flight=None)  # the default: 10 in flight
    client.auth.token()  # the token call is not what this measures
    started = time.monotonic()
    outcomes = deliver_accounts(client, records(2000), bulk_threshold=None)
    seconds = time.monotonic() - started

    assert list(outcomes["record_key"]) == [r["record_key"] for r in records(2000)]
    assert statuses(outcomes) == {"created": 2000}
    assert seconds < 2.5, f"10 calls at 500 ms took {seconds:.2f}s: one at a time would be 5 s"


def test_a_new_account_without_a_name_is_created_with_its_org_id_and_a_set_name_is_kept(fake):
    client = make_client(fake)
    fake_existing = records(1, start=10)[0]  # org-0010: unnamed in the frame
    fake.records["Account"]["001000000000001AAA"] = {
        "Id": "001000000000001AAA",
        "Name": "Acme (set by a salesperson)",
        "PostHog_Group_Id__c": fake_existing["record_key"],
    }
    batch = records(12, named=False)
    unnamed = [r["record_key"] for r in batch if "Name" not in r["fields"]]
    assert "org-0010" in unnamed and len(unnamed) >= 2

    outcomes = deliver_accounts(client, batch, bulk_threshold=None)

    assert set(outcomes["status"]) <= {"created", "updated"}, outcomes[outcomes["status"] == "failed"]
    stored = {r["PostHog_Group_Id__c"]: r for r in fake.records["Account"].values()}
    assert stored["org-0010"]["Name"] == "Acme (set by a salesperson)"
    for key in unnamed:
        if key != "org-0010":
            assert stored[key]["Name"] == key
    named = next(r for r in batch if "Name" in r["fields"])
    assert stored[named["record_key"]]["Name"] == named["fields"]["Name"]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(path=r"/batches$", response=Response(503, "Service Unavailable")),
        Fault(path=r"/batches$", reset=True),
    ],
    ids=["503", "reset"],
)
def test_a_transient_upload_fault_retries_the_bulk_load_with_a_fresh_job(fake, fault):
    fake.inject(fault)
    client = make_client(fake)
    outcomes = deliver_accounts(client, records(60), bulk_threshold=50, bulk_poll_interval=0.0)

    assert statuses(outcomes) == {"created": 60}
    jobs = fake.calls("POST", r"/jobs/ingest/?$")
    assert len(jobs) == 2
    assert len(fake.calls("PUT", "/batches")) == 2
    aborted = [c for c in fake.calls("PATCH", r"/jobs/ingest/\w+$") if c.json.get("state") == "Aborted"]
    assert len(aborted) == 1
    assert len(fake.accounts) == 60

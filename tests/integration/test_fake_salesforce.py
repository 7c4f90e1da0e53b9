"""The fake Salesforce org, exercised over real HTTP with `requests`."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.fakes.salesforce import DEFAULT_LEAD_STATUSES, FakeSalesforce
from tests.fakes.server import Fault, Response

V = "/services/data/v67.0"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sf():
    with FakeSalesforce() as server:
        yield server


def login(server: FakeSalesforce) -> requests.Session:
    reply = requests.post(
        f"{server.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "plg-client-id",
            "client_secret": "plg-client-secret",
        },
        timeout=5,
    )
    reply.raise_for_status()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
    return session


def account(group: str, **fields) -> dict:
    """An Account upsert record; named (a new Account requires Name) unless Name=None."""
    fields.setdefault("Name", f"Account {group}")
    return {
        "attributes": {"type": "Account"},
        "PostHog_Group_Id__c": group,
        **{k: v for k, v in fields.items() if v is not None},
    }


def upsert(server, session, records, all_or_none=False) -> requests.Response:
    url = f"{server.url}{V}/composite/sobjects/Account/PostHog_Group_Id__c"
    return session.patch(url, json={"allOrNone": all_or_none, "records": records}, timeout=5)


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# -- auth ----------------------------------------------------------------------------------------


def test_client_credentials_token_points_at_the_fake(sf):
    reply = requests.post(
        f"{sf.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "plg-client-id",
            "client_secret": "plg-client-secret",
        },
        timeout=5,
    )
    body = reply.json()
    assert reply.status_code == 200
    assert body["instance_url"] == sf.url
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit() and body["signature"]
    assert body["access_token"] in sf.tokens


@pytest.mark.parametrize(
    ("grant", "secret", "error"),
    [
        ("client_credentials", "nope", "invalid_client"),
        ("password", "plg-client-secret", "unsupported_grant_type"),
    ],
)
def test_bad_credentials_are_refused(sf, grant, secret, error):
    form = {"grant_type": grant, "client_id": "plg-client-id", "client_secret": secret}
    reply = requests.post(f"{sf.url}/services/oauth2/token", data=form, timeout=5)
    assert reply.status_code == 400
    assert reply.json()["error"] == error
    assert reply.json()["error_description"]
    assert not sf.tokens


def test_missing_and_expired_tokens_answer_invalid_session(sf):
    anonymous = requests.get(f"{sf.url}{V}/limits", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]

    session = login(sf)
    assert session.get(f"{sf.url}{V}/limits", timeout=5).status_code == 200
    sf.expire_tokens()
    expired = session.get(f"{sf.url}{V}/limits", timeout=5)
    assert expired.status_code == 401
    assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert login(sf).get(f"{sf.url}{V}/limits", timeout=5).status_code == 200


def test_api_version_is_checked():
    with FakeSalesforce(api_versions=["59.0", "67.0"]) as server:
        session = login(server)
        assert session.get(f"{server.url}/services/data/v59.0/limits", timeout=5).status_code == 200
        unknown = session.get(f"{server.url}/services/data/v99.0/limits", timeout=5)
        assert unknown.status_code == 404
        assert unknown.json() == [
            {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND", "fields": []}
        ]
        listed = requests.get(f"{server.url}/services/data/", timeout=5).json()
        assert [v["version"] for v in listed] == ["59.0", "67.0"]


# -- sObject Collections upsert ------------------------------------------------------------------


def test_upsert_creates_then_updates_by_external_id(sf):
    session = login(sf)
    first = upsert(sf, session, [account("g1", Name="Acme", PLG_Score__c=80), account("g2", Name="Beta")])
    assert first.status_code == 200
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    results = first.json()
    assert [r["created"] for r in results] == [True, True]
    assert all(r["success"] and r["errors"] == [] for r in results)
    assert all(len(r["id"]) == 18 and r["id"].startswith("001") for r in results)

    again = upsert(sf, session, [account("g1", Name=None, PLG_Score__c=95)]).json()
    assert again == [{"id": results[0]["id"], "success": True, "errors": [], "created": False}]
    assert sf.accounts["g1"]["PLG_Score__c"] == 95
    assert sf.accounts["g1"]["Name"] == "Acme"
    assert set(sf.accounts) == {"g1", "g2"}


def test_more_than_200_records_is_a_400_and_stores_nothing(sf):
    reply = upsert(sf, login(sf), [account(f"g{i}") for i in range(201)])
    assert reply.status_code == 400
    assert reply.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert sf.accounts == {}
    assert upsert(sf, login(sf), [account(f"g{i}") for i in range(200)]).status_code == 200
    assert len(sf.accounts) == 200


def test_partial_failure_is_200_with_results_in_input_order():
    with FakeSalesforce(
        fail_records={"g3": ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access", 1)}
    ) as sf:
        session = login(sf)
        records = [account("g1"), account("g2", Bogus__c=1), account("g3"), account("g4")]
        reply = upsert(sf, session, records)
        assert reply.status_code == 200
        results = reply.json()
        assert [r["success"] for r in results] == [True, False, False, True]
        assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
        assert "Bogus__c" in results[1]["errors"][0]["message"]
        assert results[2]["errors"] == [
            {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access", "fields": []}
        ]
        assert results[1]["id"] is None
        assert set(sf.accounts) == {"g1", "g4"}
        # the injected lock error was for one attempt only: the retry goes through
        assert upsert(sf, session, [account("g3")]).json()[0]["success"] is True


def test_all_or_none_rolls_everything_back(sf):
    sf.fail_record("g2", "UNABLE_TO_LOCK_ROW", "locked")
    results = upsert(sf, login(sf), [account("g1"), account("g2"), account("g3")], all_or_none=True).json()
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert sf.accounts == {}


def test_duplicate_external_ids_in_one_call_fail(sf):
    results = upsert(sf, login(sf), [account("g1"), account("g1", Name="x"), account("g2")]).json()
    assert [r["success"] for r in results] == [False, False, True]
    assert results[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"


def test_upsert_on_a_field_that_is_not_an_external_id(sf):
    reply = login(sf).patch(f"{sf.url}{V}/composite/sobjects/Account/Name", json={"records": []}, timeout=5)
    assert reply.status_code == 404
    assert reply.json()[0]["errorCode"] == "NOT_FOUND"


def test_daily_limit_answers_request_limit_exceeded():
    with FakeSalesforce(daily_limit=3) as sf:
        session = login(sf)
        codes = [session.get(f"{sf.url}{V}/limits", timeout=5).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        over = session.get(f"{sf.url}{V}/limits", timeout=5)
        assert over.status_code == 403
        assert over.json() == [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED", "fields": []}
        ]
        assert over.headers["Sforce-Limit-Info"] == "api-usage=4/3"


# -- SOQL and leads ------------------------------------------------------------------------------


def test_lead_statuses_come_from_the_org():
    with FakeSalesforce() as plain, FakeSalesforce(with_pql_status=True) as with_pql:
        for server, expect_pql in ((plain, False), (with_pql, True)):
            body = (
                login(server)
                .get(f"{server.url}{V}/query", params={"q": "SELECT ApiName FROM LeadStatus"})
                .json()
            )
            names = [r["ApiName"] for r in body["records"]]
            assert names[: len(DEFAULT_LEAD_STATUSES)] == list(DEFAULT_LEAD_STATUSES)
            assert ("PQL" in names) is expect_pql
            assert body["totalSize"] == len(names) and body["done"] is True
            assert body["records"][0]["attributes"]["type"] == "LeadStatus"
        labels = login(plain).get(f"{plain.url}{V}/query", params={"q": "select MasterLabel from LeadStatus"})
        assert labels.json()["records"][0]["MasterLabel"] == "Open - Not Contacted"


def test_lead_query_by_org_field(sf):
    a = sf.add_lead(LastName="A", Company="Acme", PostHog_Group_Id__c="g1")
    sf.add_lead(LastName="B", Company="Beta", PostHog_Group_Id__c="g2")
    c = sf.add_lead(LastName="O'Neil", Company="Acme", PostHog_Group_Id__c="g'3")
    session = login(sf)
    q = "SELECT Id, Status, PostHog_Group_Id__c FROM Lead WHERE PostHog_Group_Id__c IN ('g1', 'g\\'3')"
    body = session.get(f"{sf.url}{V}/query", params={"q": q}).json()
    assert [r["Id"] for r in body["records"]] == [a, c]
    assert body["records"][0] == {
        "attributes": {"type": "Lead", "url": f"/services/data/v67.0/sobjects/Lead/{a}"},
        "Id": a,
        "Status": "Open - Not Contacted",
        "PostHog_Group_Id__c": "g1",
    }
    one = session.get(
        f"{sf.url}{V}/query", params={"q": "SELECT Id FROM Lead WHERE PostHog_Group_Id__c = 'g2'"}
    )
    assert one.json()["totalSize"] == 1
    bad = session.get(f"{sf.url}{V}/query", params={"q": "SELECT Id, Nope__c FROM Lead"})
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_FIELD"
    malformed = session.get(f"{sf.url}{V}/query", params={"q": "SELEKT Id FROM Lead"})
    assert malformed.status_code == 400 and malformed.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_query_pages_with_next_records_url():
    with FakeSalesforce(query_page_size=2) as sf:
        for i in range(5):
            sf.add_lead(LastName=f"L{i}", PostHog_Group_Id__c="g1")
        session = login(sf)
        page = session.get(f"{sf.url}{V}/query", params={"q": "SELECT Id FROM Lead"}).json()
        seen = [r["Id"] for r in page["records"]]
        while not page["done"]:
            page = session.get(f"{sf.url}{page['nextRecordsUrl']}").json()
            seen += [r["Id"] for r in page["records"]]
        assert page["totalSize"] == 5
        assert seen == list(sf.leads)


def test_lead_status_update_is_a_restricted_picklist(sf):
    lead = sf.add_lead(LastName="A", PostHog_Group_Id__c="g1")
    other = sf.add_lead(LastName="B", PostHog_Group_Id__c="g2")
    records = [
        {"attributes": {"type": "Lead"}, "id": lead, "Status": "Working - Contacted"},
        {"attributes": {"type": "Lead"}, "Id": other, "Status": "PQL"},
        {"attributes": {"type": "Lead"}, "id": "00QFk0000000zzzAAA", "Status": "Working - Contacted"},
    ]
    results = login(sf).patch(f"{sf.url}{V}/composite/sobjects", json={"records": records}, timeout=5).json()
    assert results[0] == {"id": lead, "success": True, "errors": []}
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[1]["errors"][0]["fields"] == ["Status"]
    assert results[2]["success"] is False
    assert sf.leads[lead]["Status"] == "Working - Contacted"
    assert sf.leads[other]["Status"] == "Open - Not Contacted"
    sf.add_lead_status("PQL")
    again = login(sf).patch(f"{sf.url}{V}/composite/sobjects", json={"records": records[1:2]}, timeout=5)
    assert again.json()[0]["success"] is True
    assert sf.leads[other]["Status"] == "PQL"


# -- Bulk API 2.0 --------------------------------------------------------------------------------


def bulk_job(sf, session, line_ending="LF") -> str:
    body = {
        "object": "Account",
        "operation": "upsert",
        "externalIdFieldName": "PostHog_Group_Id__c",
        "contentType": "CSV",
        "lineEnding": line_ending,
    }
    reply = session.post(f"{sf.url}{V}/jobs/ingest", json=body, timeout=5)
    assert reply.status_code == 200
    assert reply.json()["state"] == "Open"
    return reply.json()["id"]


def put_csv(sf, session, job_id, text) -> requests.Response:
    url = f"{sf.url}{V}/jobs/ingest/{job_id}/batches"
    return session.put(url, data=text.encode(), headers={"Content-Type": "text/csv"}, timeout=5)


def test_bulk_upsert_lifecycle_and_result_csvs():
    with FakeSalesforce(bulk_polls=2, fail_records={"g3": ("UNABLE_TO_LOCK_ROW", "locked")}) as sf:
        sf.add_record("Account", PostHog_Group_Id__c="g2", Name="Old")
        session = login(sf)
        job_id = bulk_job(sf, session)
        assert job_id.startswith("750") and len(job_id) == 18
        data = "PostHog_Group_Id__c,Name,PLG_Score__c\ng1,Acme,80\ng2,Beta,\ng3,Gamma,10\n,NoKey,1\n"
        assert put_csv(sf, session, job_id, data).status_code == 201
        closed = session.patch(
            f"{sf.url}{V}/jobs/ingest/{job_id}", json={"state": "UploadComplete"}, timeout=5
        )
        assert closed.json()["state"] == "UploadComplete"
        early = session.get(f"{sf.url}{V}/jobs/ingest/{job_id}/successfulResults/", timeout=5)
        assert early.status_code == 400

        states = [session.get(f"{sf.url}{V}/jobs/ingest/{job_id}", timeout=5).json() for _ in range(3)]
        assert [s["state"] for s in states] == ["InProgress", "InProgress", "JobComplete"]
        assert states[-1]["numberRecordsProcessed"] == 4
        assert states[-1]["numberRecordsFailed"] == 2

        ok = session.get(f"{sf.url}{V}/jobs/ingest/{job_id}/successfulResults/", timeout=5)
        assert ok.headers["Content-Type"] == "text/csv"
        rows = read_csv(ok.text)
        assert list(rows[0]) == ["sf__Id", "sf__Created", "PostHog_Group_Id__c", "Name", "PLG_Score__c"]
        assert [(r["PostHog_Group_Id__c"], r["sf__Created"]) for r in rows] == [
            ("g1", "true"),
            ("g2", "false"),
        ]
        assert rows[0]["sf__Id"] == sf.accounts["g1"]["Id"]
        assert sf.accounts["g2"]["Name"] == "Beta"

        failed = read_csv(session.get(f"{sf.url}{V}/jobs/ingest/{job_id}/failedResults/", timeout=5).text)
        assert [r["Name"] for r in failed] == ["Gamma", "NoKey"]
        assert failed[0]["sf__Error"].startswith("UNABLE_TO_LOCK_ROW:locked")
        assert failed[1]["sf__Error"].startswith("MISSING_ARGUMENT")
        unprocessed = session.get(f"{sf.url}{V}/jobs/ingest/{job_id}/unprocessedrecords/", timeout=5)
        assert read_csv(unprocessed.text) == []
        assert "g3" not in sf.accounts


def test_bulk_line_ending_mismatch_fails_the_job(sf):
    session = login(sf)
    job_id = bulk_job(sf, session, line_ending="LF")
    put_csv(sf, session, job_id, "PostHog_Group_Id__c,Name\r\ng1,Acme\r\n")
    session.patch(f"{sf.url}{V}/jobs/ingest/{job_id}", json={"state": "UploadComplete"}, timeout=5)
    info = [session.get(f"{sf.url}{V}/jobs/ingest/{job_id}", timeout=5).json() for _ in range(2)][-1]
    assert info["state"] == "Failed"
    assert "LineEnding" in info["errorMessage"]
    unprocessed = session.get(f"{sf.url}{V}/jobs/ingest/{job_id}/unprocessedrecords/", timeout=5)
    assert read_csv(unprocessed.text) == [{"PostHog_Group_Id__c": "g1", "Name": "Acme"}]
    assert sf.accounts == {}


def test_bulk_single_upload_and_abort(sf):
    session = login(sf)
    job_id = bulk_job(sf, session)
    assert put_csv(sf, session, job_id, "PostHog_Group_Id__c\ng1\n").status_code == 201
    second = put_csv(sf, session, job_id, "PostHog_Group_Id__c\ng2\n")
    assert second.status_code == 400 and second.json()[0]["errorCode"] == "BULK_API_ERROR"
    aborted = session.patch(f"{sf.url}{V}/jobs/ingest/{job_id}", json={"state": "Aborted"}, timeout=5)
    assert aborted.json()["state"] == "Aborted"
    assert sf.jobs[job_id]["state"] == "Aborted"
    unprocessed = session.get(f"{sf.url}{V}/jobs/ingest/{job_id}/unprocessedrecords/", timeout=5)
    assert read_csv(unprocessed.text) == [{"PostHog_Group_Id__c": "g1"}]
    assert sf.accounts == {}


# -- faults and the entry point ------------------------------------------------------------------


def test_fault_injection_reset_and_503(sf):
    session = login(sf)
    sf.inject(Fault(path="/composite/", reset=True))
    with pytest.raises(requests.ConnectionError):
        upsert(sf, session, [account("g1")])
    sf.inject(Fault(path="/composite/", response=Response(503, [{"errorCode": "SERVER_UNAVAILABLE"}])))
    assert upsert(sf, session, [account("g1")]).status_code == 503
    assert sf.accounts == {}
    assert upsert(sf, session, [account("g1")]).status_code == 200
    assert len(sf.calls("PATCH", "/composite/sobjects/Account")) == 3


def test_module_entry_point_serves_and_prints_its_url():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.salesforce", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        versions = requests.get(f"{url}/services/data/", timeout=5)
        assert versions.json()[-1]["version"] == "67.0"
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_a_new_account_without_its_required_name_is_refused(sf):
    session = login(sf)
    results = upsert(sf, session, [account("x", Name=None), account("y")]).json()
    assert results[0]["success"] is False
    assert results[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[1]["success"] is True
    assert set(sf.accounts) == {"y"}


def test_token_lifetime_and_other_integrations_usage_settings():
    with FakeSalesforce(token_lifetime=2, daily_limit=1000, api_usage=990) as server:
        session = login(server)
        url = f"{server.url}{V}/limits"
        first, second, third = (session.get(url, timeout=5) for _ in range(3))
        assert (first.status_code, second.status_code, third.status_code) == (200, 200, 401)
        assert third.json()[0]["errorCode"] == "INVALID_SESSION_ID"
        assert first.headers["Sforce-Limit-Info"] == "api-usage=991/1000"
        assert second.headers["Sforce-Limit-Info"] == "api-usage=992/1000"
        assert server.api_usage == 992  # a refused session is not counted

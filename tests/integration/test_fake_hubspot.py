"""The fake HubSpot refuses what HubSpot documents it refuses (types, lengths, required fields,
valid emails), over real HTTP, with HubSpot's VALIDATION_ERROR bodies.

Expected answers come from shared/reference/destination-apis.md (tasks need hs_timestamp; status,
priority and type are EMAIL|CALL|TODO-style enumerations; 207 bodies carry the input's
objectWriteTraceId) and HubSpot's properties guide (65,536 characters per value; number, bool,
date = midnight UTC), not from the fake's code.
"""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from tests.fakes.hubspot import DEFAULT_COMPANY_PROPERTIES, FakeHubSpot, prop

UPSERT = "/crm/v3/objects/{}/batch/upsert"
TASKS = "/crm/v3/objects/tasks/batch/create"


@pytest.fixture
def hs():
    properties = [
        *DEFAULT_COMPANY_PROPERTIES,
        prop("plg_pql_score", "PQL score", "number", "number"),
        prop("plg_is_pql", "Is PQL", "bool", "booleancheckbox"),
        prop("plg_scored_at", "Scored at", "date", "date"),
    ]
    with FakeHubSpot(company_properties=properties) as server:
        yield server


def post(hs: FakeHubSpot, path: str, inputs: list[dict]) -> requests.Response:
    headers = {"Authorization": "Bearer test-token"}
    return requests.post(f"{hs.url}{path}", json={"inputs": inputs}, headers=headers, timeout=10)


def company(org: str, **properties) -> dict:
    return {"id": org, "idProperty": "posthog_group_id", "objectWriteTraceId": org, "properties": properties}


def refused(answer: requests.Response) -> dict[str, str]:
    """{objectWriteTraceId: error code} of a 207's refused inputs."""
    assert answer.status_code == 207, answer.text
    body = answer.json()
    assert body["numErrors"] == len(body["errors"])
    out = {}
    for error in body["errors"]:
        assert error["status"] == "error" and error["category"] == "VALIDATION_ERROR"
        (trace,) = error["context"]["objectWriteTraceId"]
        (detail,) = error["errors"]
        out[trace] = detail["code"]
    return out


MIDNIGHT_MS = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"plg_pql_score": "high"}, "INVALID_INTEGER"),  # number property, not a number
        ({"plg_pql_score": True}, "INVALID_INTEGER"),
        ({"plg_is_pql": "yes"}, "INVALID_BOOLEAN"),  # bool takes true / false only
        ({"plg_scored_at": MIDNIGHT_MS + 3_600_000}, "INVALID_DATE"),  # 01:00 UTC, not midnight
        ({"plg_scored_at": "2026-11-20T10:00:00Z"}, "INVALID_DATE"),  # a datetime, not a date
        ({"plg_scored_at": "2026-02-30"}, "INVALID_DATE"),
        ({"name": "x" * 65_537}, "INVALID_LENGTH"),  # one over HubSpot's 65,536
        ({"unknown_prop": "1"}, "PROPERTY_DOESNT_EXIST"),
    ],
)
def test_a_value_hubspot_refuses_fails_only_its_input_with_a_207(hs, properties, code):
    answer = post(
        hs, UPSERT.format("companies"), [company("org-good", name="Good"), company("org-bad", **properties)]
    )
    assert refused(answer) == {"org-bad": code}
    assert [o["properties"]["posthog_group_id"] for o in hs.objects("companies")] == ["org-good"]


def test_values_hubspot_accepts_are_stored(hs):
    answer = post(
        hs,
        UPSERT.format("companies"),
        [
            company(
                "org-1",
                name="y" * 65_536,  # exactly the limit
                plg_pql_score="71.5",
                plg_is_pql="true",
                plg_scored_at=MIDNIGHT_MS,
            ),
            company("org-2", plg_pql_score=3, plg_is_pql=False, plg_scored_at="2026-11-20"),
        ],
    )
    assert answer.status_code == 200, answer.text
    one = hs.find("companies", "posthog_group_id", "org-1")["properties"]
    two = hs.find("companies", "posthog_group_id", "org-2")["properties"]
    assert (len(one["name"]), one["plg_pql_score"], one["plg_is_pql"], one["plg_scored_at"]) == (
        65_536,
        "71.5",
        "true",
        "2026-11-20",
    )
    assert (two["plg_is_pql"], two["plg_scored_at"]) == ("false", "2026-11-20")


def test_without_trace_ids_an_invalid_input_refuses_the_whole_batch_with_400(hs):
    inputs = [{"id": "org-1", "idProperty": "posthog_group_id", "properties": {"plg_is_pql": "yes"}}]
    answer = post(hs, UPSERT.format("companies"), inputs)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["correlationId"]
    assert body["message"].startswith("Property values were not valid: ")
    assert [e["code"] for e in body["errors"]] == ["INVALID_BOOLEAN"]
    assert hs.objects("companies") == []


@pytest.mark.parametrize("email", ["bob", "bob@", "@example.com", "bob smith@example.com", "bob@example"])
def test_a_contact_upserted_by_an_invalid_email_is_refused(hs, email):
    good = {"id": "ann@example.com", "idProperty": "email", "objectWriteTraceId": "1", "properties": {}}
    bad = {"id": email, "idProperty": "email", "objectWriteTraceId": "2", "properties": {}}
    assert refused(post(hs, UPSERT.format("contacts"), [good, bad])) == {"2": "INVALID_EMAIL"}
    assert [c["properties"]["email"] for c in hs.objects("contacts")] == ["ann@example.com"]


def _task(**properties) -> dict:
    company_id = properties.pop("company_id")
    types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}]
    return {"properties": properties, "associations": [{"to": {"id": company_id}, "types": types}]}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"hs_timestamp": None}, "REQUIRED_FIELD"),  # the reference: hs_timestamp (required)
        ({"hs_timestamp": "tomorrow"}, "INVALID_DATE"),
        ({"hs_task_priority": "URGENT"}, "INVALID_OPTION"),  # LOW | MEDIUM | HIGH
        ({"hs_task_type": "MEETING"}, "INVALID_OPTION"),  # EMAIL | CALL | TODO
        ({"hs_task_status": "DONE"}, "INVALID_OPTION"),  # NOT_STARTED | COMPLETED
        ({"hs_task_body": "z" * 65_537}, "INVALID_LENGTH"),
        ({"plg_signal_key": "k"}, "PROPERTY_DOESNT_EXIST"),  # a custom property not created yet
    ],
)
def test_a_task_hubspot_refuses_refuses_the_batch_and_creates_nothing(hs, change, code):
    assert post(hs, UPSERT.format("companies"), [company("org-1")]).status_code == 200
    company_id = hs.find("companies", "posthog_group_id", "org-1")["id"]
    valid = {
        "company_id": company_id,
        "hs_timestamp": "2026-11-20T10:00:00.000Z",
        "hs_task_subject": "Expansion",
        "hs_task_body": "body",
        "hs_task_priority": "HIGH",
        "hs_task_status": "NOT_STARTED",
        "hs_task_type": "TODO",
    }
    properties = {k: v for k, v in {**valid, **change}.items() if v is not None}
    answer = post(hs, TASKS, [_task(**valid), _task(**properties)])
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["category"] == "VALIDATION_ERROR" and code in [e["code"] for e in body["errors"]]
    assert hs.tasks == []

    assert post(hs, TASKS, [_task(**valid)]).status_code == 201
    assert [t["properties"]["hs_task_priority"] for t in hs.tasks] == ["HIGH"]

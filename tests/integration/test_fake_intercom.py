"""The fake Intercom workspace, exercised over real HTTP with `requests`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fakes.intercom import FakeIntercom, FixedWindow
from tests.fakes.server import Fault, Response
from tests.fakes.specs import INTERCOM_PATCHES, intercom_spec

REPO = Path(__file__).resolve().parents[2]
TOKEN = "intercom-test-token"


@pytest.fixture
def ic():
    with FakeIntercom(company_attributes={"plg_score": "integer", "pql": "boolean"}) as server:
        yield server


def client(token: str = TOKEN, version: str | None = "2.16") -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    if version:
        session.headers["Intercom-Version"] = version
    return session


def error_codes(reply: requests.Response) -> list[str]:
    body = reply.json()
    assert body["type"] == "error.list"
    assert body["request_id"]
    return [e["code"] for e in body["errors"]]


# -- auth and versions ---------------------------------------------------------------------------


def test_bad_or_missing_token_is_unauthorized(ic):
    for session in (client(token="wrong"), requests.Session()):
        reply = session.post(f"{ic.url}/companies", json={"company_id": "g1"}, timeout=5)
        assert reply.status_code == 401
        assert error_codes(reply) == ["unauthorized"]
    assert ic.companies == {}


def test_intercom_version_header_is_required_and_checked(ic):
    missing = client(version=None).post(f"{ic.url}/companies", json={"company_id": "g1"}, timeout=5)
    assert missing.status_code == 400 and error_codes(missing) == ["intercom_version_invalid"]
    old = client(version="2.10").post(f"{ic.url}/companies", json={"company_id": "g1"}, timeout=5)
    assert old.status_code == 400 and "2.10" in old.json()["errors"][0]["message"]
    ok = client(version="2.11").post(f"{ic.url}/companies", json={"company_id": "g1"}, timeout=5)
    assert ok.status_code == 200
    with FakeIntercom(versions=["2.10"]) as legacy:
        assert client(version="2.10").get(f"{legacy.url}/data_attributes", timeout=5).status_code == 200


# -- companies and data attributes ---------------------------------------------------------------


def test_company_create_then_update_on_company_id(ic):
    session = client()
    body = {
        "company_id": "g1",
        "name": "Acme",
        "plan": "Pro",
        "size": 40,
        "website": "https://acme.test",
        "industry": "Software",
        "remote_created_at": 1_700_000_000,
        "monthly_spend": 99.9,
        "custom_attributes": {"plg_score": 80, "pql": True},
    }
    created = session.post(f"{ic.url}/companies", json=body, timeout=5)
    assert created.status_code == 200
    company = created.json()
    assert company["type"] == "company" and company["company_id"] == "g1"
    assert company["plan"]["name"] == "Pro"
    assert company["monthly_spend"] == 99  # truncated, as Intercom documents
    updated = session.post(
        f"{ic.url}/companies", json={"company_id": "g1", "custom_attributes": {"plg_score": 95}}, timeout=5
    ).json()
    assert updated["id"] == company["id"]
    assert updated["name"] == "Acme"
    assert ic.companies["g1"]["custom_attributes"] == {"plg_score": 95, "pql": True}
    assert len(ic.companies) == 1
    assert ic.spec_violations == []


def test_undefined_or_mistyped_custom_attribute_is_refused(ic):
    session = client()
    undefined = session.post(
        f"{ic.url}/companies", json={"company_id": "g1", "custom_attributes": {"plg_stage": "hot"}}, timeout=5
    )
    assert undefined.status_code == 400
    error = undefined.json()["errors"][0]
    assert error["code"] == "parameter_invalid"
    assert "plg_stage" in error["message"] and "data attribute" in error["message"]
    mistyped = session.post(
        f"{ic.url}/companies",
        json={"company_id": "g1", "custom_attributes": {"plg_score": "high"}},
        timeout=5,
    )
    assert mistyped.status_code == 400 and "integer" in mistyped.json()["errors"][0]["message"]
    assert ic.companies == {}

    created = session.post(
        f"{ic.url}/data_attributes",
        json={"name": "plg_stage", "model": "company", "data_type": "string"},
        timeout=5,
    )
    assert created.status_code == 200
    assert created.json()["full_name"] == "custom_attributes.plg_stage"
    again = session.post(
        f"{ic.url}/companies", json={"company_id": "g1", "custom_attributes": {"plg_stage": "hot"}}, timeout=5
    )
    assert again.status_code == 200
    assert ic.companies["g1"]["custom_attributes"] == {"plg_stage": "hot"}


def test_data_attributes_list_and_duplicates(ic):
    session = client()
    listed = session.get(f"{ic.url}/data_attributes", params={"model": "company"}, timeout=5).json()
    custom = {a["name"] for a in listed["data"] if a["custom"]}
    assert custom == {"plg_score", "pql"}
    assert {a["model"] for a in listed["data"]} == {"company"}
    dup = session.post(
        f"{ic.url}/data_attributes",
        json={"name": "plg_score", "model": "company", "data_type": "integer"},
        timeout=5,
    )
    assert dup.status_code == 400 and "already have 'plg_score'" in dup.json()["errors"][0]["message"]
    bad_name = session.post(
        f"{ic.url}/data_attributes",
        json={"name": "!nv@l!d", "model": "company", "data_type": "string"},
        timeout=5,
    )
    assert bad_name.status_code == 400


# -- spec validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/companies", {"company_id": "g1", "size": "forty"}, "size"),
        (
            "/companies",
            {"company_id": "g1", "custom_attributes": {"nested": {"a": 1}}},
            "custom_attributes.nested",
        ),
        ("/events", {"event_name": "aha", "created_at": 1_700_000_000}, None),  # no user_id, email or id
        ("/data_attributes", {"name": "x", "model": "company", "data_type": "mithril"}, None),
        ("/tags", {"companies": [{"company_id": "g1"}]}, None),  # no name
    ],
)
def test_requests_that_do_not_match_the_spec_are_400_parameter_invalid(ic, path, body, field):
    reply = client().post(f"{ic.url}{path}", json=body, timeout=5)
    assert reply.status_code == 400
    assert error_codes(reply) == ["parameter_invalid"]
    assert reply.json()["errors"][0].get("field") == field
    assert ic.companies == {} and ic.events == []


def test_query_parameters_and_content_type_are_checked_too(ic):
    bad_model = client().get(f"{ic.url}/data_attributes", params={"model": "conversation"}, timeout=5)
    assert bad_model.status_code == 400 and "model" in bad_model.json()["errors"][0]["message"]
    as_text = client().post(
        f"{ic.url}/companies", data='{"company_id": "g1"}', headers={"Content-Type": "text/plain"}, timeout=5
    )
    assert as_text.status_code == 400 and error_codes(as_text) == ["parameter_invalid"]


def test_unknown_top_level_parameter_is_bad_request(ic):
    reply = client().post(f"{ic.url}/companies", json={"company_id": "g1", "test": "invalid"}, timeout=5)
    assert reply.status_code == 400
    assert reply.json()["errors"] == [{"code": "bad_request", "message": "bad 'test' parameter"}]


def test_spec_is_loaded_once_and_patches_still_apply():
    spec = intercom_spec()
    assert intercom_spec() is spec
    tags_body = spec.doc["paths"]["/tags"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "anyOf" in tags_body and "oneOf" not in tags_body
    assert len(INTERCOM_PATCHES) == 6
    started = time.perf_counter()
    with FakeIntercom():
        pass
    assert time.perf_counter() - started < 0.5  # the description is not re-read per server


# -- tags and events -----------------------------------------------------------------------------


def test_tag_companies_by_company_id_or_intercom_id_and_untag(ic):
    session = client()
    company = session.post(f"{ic.url}/companies", json={"company_id": "g1", "name": "Acme"}, timeout=5).json()
    session.post(f"{ic.url}/companies", json={"company_id": "g2"}, timeout=5)
    tagged = session.post(
        f"{ic.url}/tags",
        json={"name": "PQL", "companies": [{"company_id": "g1"}, {"company_id": "g2"}]},
        timeout=5,
    )
    assert tagged.status_code == 200
    assert tagged.json()["name"] == "PQL"
    assert [c["tagged"] for c in tagged.json()["companies"]] == [True, True]
    assert ic.company_tags("g1") == ["PQL"] and ic.company_tags("g2") == ["PQL"]

    session.post(f"{ic.url}/tags", json={"name": "PQL", "companies": [{"company_id": "g1"}]}, timeout=5)
    assert ic.company_tags("g1") == ["PQL"]  # tagging twice does not duplicate
    untag = {"name": "PQL", "companies": [{"id": company["id"], "untag": True}]}
    assert session.post(f"{ic.url}/tags", json=untag, timeout=5).json()["companies"][0]["tagged"] is False
    assert ic.company_tags("g1") == [] and ic.company_tags("g2") == ["PQL"]
    missing = session.post(
        f"{ic.url}/tags", json={"name": "PQL", "companies": [{"company_id": "nope"}]}, timeout=5
    )
    assert missing.status_code == 404 and error_codes(missing) == ["company_not_found"]
    assert ic.spec_violations == []


def test_events_are_accepted_with_202_and_recorded(ic):
    session = client()
    event = {
        "event_name": "aha-moment",
        "created_at": 1_700_000_000,
        "user_id": "u1",
        "metadata": {f"k{i}": i for i in range(12)},
    }
    first = session.post(f"{ic.url}/events", json=event, timeout=5)
    assert first.status_code == 202 and first.content == b""
    assert session.post(f"{ic.url}/events", json=event, timeout=5).status_code == 202
    assert [e["duplicate"] for e in ic.events] == [False, True]
    assert len(ic.events[0]["metadata"]) == 10  # Intercom keeps the first ten keys
    with FakeIntercom(known_users={"u1"}) as strict:
        unknown = client().post(f"{strict.url}/events", json={**event, "user_id": "u2"}, timeout=5)
        assert unknown.status_code == 404 and strict.events == []


# -- rate limit and faults -----------------------------------------------------------------------


def test_rate_limit_headers_and_429():
    now = [1_000_003.0]
    with FakeIntercom(limit_per_10s=2, clock=lambda: now[0]) as ic:
        session = client()
        replies = [session.get(f"{ic.url}/data_attributes", timeout=5) for _ in range(3)]
        assert [r.status_code for r in replies] == [200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["1", "0", "0"]
        assert {r.headers["X-RateLimit-Limit"] for r in replies} == {"2"}
        assert {r.headers["X-RateLimit-Reset"] for r in replies} == {"1000010"}
        assert error_codes(replies[2]) == ["rate_limit_exceeded"]
        now[0] = 1_000_010.0  # next 10-second window
        assert session.get(f"{ic.url}/data_attributes", timeout=5).status_code == 200
        assert len(ic.calls("GET", "/data_attributes")) == 4


def test_fixed_window_counts_per_period():
    now = [20.0]
    window = FixedWindow(3, 10, clock=lambda: now[0])
    assert [window.hit()[0] for _ in range(4)] == [True, True, True, False]
    assert window.reset_at() == 30
    now[0] = 29.9
    assert window.hit() == (False, 0)
    now[0] = 30.0
    assert window.hit() == (True, 2)


def test_fault_injection_reset_and_503(ic):
    session = client()
    ic.inject(Fault(path="^/companies$", reset=True))
    with pytest.raises(requests.ConnectionError):
        session.post(f"{ic.url}/companies", json={"company_id": "g1"}, timeout=5)
    ic.inject(Fault(path="^/companies$", response=Response(503, {"type": "error.list", "errors": []})))
    down = session.post(f"{ic.url}/companies", json={"company_id": "g1"}, timeout=5)
    assert down.status_code == 503
    assert "X-RateLimit-Remaining" in down.headers
    assert ic.companies == {}
    assert session.post(f"{ic.url}/companies", json={"company_id": "g1"}, timeout=5).status_code == 200
    assert list(ic.companies) == ["g1"]


def test_module_entry_point_serves_and_prints_its_url():
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.intercom", "--port", "0", "--token", "t0k"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert client(token="t0k").get(f"{url}/data_attributes", timeout=5).status_code == 200
        assert client().get(f"{url}/data_attributes", timeout=5).status_code == 401
    finally:
        proc.kill()
        proc.wait(timeout=5)


# -- what Intercom's documentation refuses beyond the description ---------------------------------


def test_company_name_and_text_attribute_are_limited_to_255_characters():
    with FakeIntercom(company_attributes={"plg_note": "string"}) as ic:
        session = client()
        ok = {"company_id": "c1", "name": "n" * 255, "custom_attributes": {"plg_note": "t" * 255}}
        assert session.post(f"{ic.url}/companies", json=ok, timeout=5).status_code == 200
        for body, field in (
            ({"company_id": "c2", "name": "n" * 256}, "name"),
            (
                {"company_id": "c2", "custom_attributes": {"plg_note": "t" * 256}},
                "custom_attributes.plg_note",
            ),
        ):
            reply = session.post(f"{ic.url}/companies", json=body, timeout=5)
            assert reply.status_code == 400 and error_codes(reply) == ["parameter_invalid"]
            assert reply.json()["errors"][0]["field"] == field
        assert list(ic.companies) == ["c1"]


def test_a_company_without_company_id_is_refused(ic):
    reply = client().post(f"{ic.url}/companies", json={"name": "Acme"}, timeout=5)
    assert reply.status_code == 400 and error_codes(reply) == ["parameter_not_found"]
    assert ic.companies == {}


@pytest.mark.parametrize(
    "event",
    [
        {"created_at": 1_700_000_000, "user_id": "u1"},  # no event_name
        {"event_name": "aha-moment", "user_id": "u1"},  # no created_at
        {"event_name": "aha-moment", "created_at": 1_700_000_000},  # nobody to attribute it to
        {"event_name": "aha-moment", "created_at": 1_700_000_000_000, "user_id": "u1"},  # milliseconds
    ],
)
def test_an_event_missing_what_intercom_requires_is_refused(ic, event):
    reply = client().post(f"{ic.url}/events", json=event, timeout=5)
    assert reply.status_code == 400
    assert error_codes(reply)[0] in {"parameter_invalid", "parameter_not_found"}
    assert ic.events == []

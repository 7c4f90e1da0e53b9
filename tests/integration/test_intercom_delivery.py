"""Intercom delivery over real HTTP against FakeIntercom on loopback: data attributes, companies
created then updated in place, tags, data events, rate limits, faults, bad credentials and the
Airflow connection. Every test ends with the fake's spec check: no request or answer of ours
strayed from Intercom's published description."""

from __future__ import annotations

import datetime as dt
import json
import time

import pandas as pd
import pytest

from plg_bridge.config import IntercomSettings
from plg_bridge.delivery.intercom.client import IntercomClient
from plg_bridge.delivery.intercom.deliver import (
    deliver_companies,
    deliver_events,
    ensure_data_attributes,
)
from plg_bridge.delivery.intercom.mapping import (
    COMPANY_ATTRIBUTES,
    company_records,
    event_records,
)
from plg_bridge.delivery.transport import RateLimiter, RetryPolicy
from tests.fakes.intercom import FakeIntercom
from tests.fakes.server import Fault, Response
from tests.support import frames
from tests.support.deliver import Deployment, http_connection

TOKEN = "intercom-test-token"
START = 1_795_000_003.0  # a fake wall clock, 3 s into a 10-second window
ATTRIBUTE_TYPES = {a["name"]: a["data_type"] for a in COMPANY_ATTRIBUTES}


class Clock:
    """A wall clock that only moves when the client sleeps (or the test says so)."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def scores(n: int, offset: int = 0) -> pd.DataFrame:
    return frames.scores(n, offset, id_digits=3, unnamed_every=5, percent_scores=True)


def signals(rows: list[tuple[str, str, str | None, str | None]]) -> pd.DataFrame:
    """rows of (signal, org_id, detail, distinct_id)."""
    return pd.DataFrame(
        {
            "signal_key": [f"{s}:{org}:{detail or '-'}:{who or '-'}" for s, org, detail, who in rows],
            "signal": [r[0] for r in rows],
            "org_id": [r[1] for r in rows],
            "org_name": [f"Name of {r[1]}" for r in rows],
            "distinct_id": [r[3] for r in rows],
            "email": [f"{r[3]}@acme.test" if r[3] else None for r in rows],
            "detail": [r[2] for r in rows],
            "occurred_at": pd.to_datetime(["2026-11-20T10:00:00Z"] * len(rows)),
            "as_of": ["2026-11-20"] * len(rows),
            "pql_score": [80] * len(rows),
            "is_pql": [True] * len(rows),
        }
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def serve(clock: Clock, **kwargs) -> FakeIntercom:
    return FakeIntercom(clock=clock, **kwargs)


@pytest.fixture
def fake(clock):
    with serve(clock) as server:
        yield server
        assert server.spec_violations == []


@pytest.fixture
def ready_fake(clock):
    """A workspace where plg-bridge's data attributes already exist."""
    with serve(clock, company_attributes=ATTRIBUTE_TYPES) as server:
        yield server
        assert server.spec_violations == []


def make_client(fake: FakeIntercom, clock: Clock, token: str = TOKEN, **kwargs) -> IntercomClient:
    kwargs.setdefault("policy", RetryPolicy(base_delay=0.01, max_delay=30.0))
    kwargs.setdefault("max_in_flight", 1)  # calls in order: the in-flight test sets its own
    return IntercomClient(fake.url, token, sleep=clock.sleep, clock=clock, **kwargs)


def statuses(outcomes: pd.DataFrame) -> list[str]:
    return list(outcomes["status"])


# -- client level: guards and transport the DAG path cannot reach cheaply -------------------


def test_without_the_attributes_every_row_fails_naming_the_attribute(fake, clock):
    outcomes = deliver_companies(
        make_client(fake, clock), company_records(scores(3)), ensure_attributes=False
    )
    assert set(outcomes["error_code"]) == {"parameter_invalid"}
    assert outcomes["error_message"].str.contains("plg_pql_score").all()
    assert outcomes["error_message"].str.contains("HTTP 400").all()
    assert fake.companies == {}


def test_ensure_data_attributes_is_remembered_and_tolerates_existing_ones(clock):
    existing = {"plg_pql_score": "integer", "plg_is_pql": "boolean"}
    with serve(clock, company_attributes=existing) as fake:
        client = make_client(fake, clock)
        created = ensure_data_attributes(client)
        assert set(created) == set(ATTRIBUTE_TYPES) - set(existing)
        assert ensure_data_attributes(client) == []  # remembered: no new calls
        assert len(fake.calls("GET", "/data_attributes")) == 1
        assert fake.spec_violations == []


def test_an_attribute_of_another_type_fails_only_through_its_rows(clock, caplog):
    with serve(clock, company_attributes={**ATTRIBUTE_TYPES, "plg_pql_score": "string"}) as fake:
        outcomes = deliver_companies(make_client(fake, clock), company_records(scores(2)))
        assert set(outcomes["error_code"]) == {"parameter_invalid"}
        assert outcomes["error_message"].str.contains("must be of type string").all()
        assert "plg_pql_score" in caplog.text and "is string" in caplog.text
        assert fake.spec_violations == []


def test_a_5xx_on_an_event_is_retried_and_intercom_keeps_one_event(fake, clock):
    fake.inject(Fault(path="^/events$", response=Response(503, {"type": "error.list", "errors": []})))
    records = event_records(signals([("aha_reached", "o1", "m", "u1")]))
    outcomes = deliver_events(make_client(fake, clock), records)
    assert statuses(outcomes) == ["created"]
    assert len(fake.calls("POST", "^/events$")) == 2
    assert len(fake.events) == 1


# -- credentials, rate limits and faults ------------------------------------------------------


def test_an_unsupported_version_stops_with_its_code(ready_fake, clock):
    outcomes = deliver_companies(make_client(ready_fake, clock, version="2.10"), company_records(scores(3)))
    assert set(outcomes["error_code"]) == {"intercom_version_invalid"}
    assert len(ready_fake.calls("POST", "/companies")) == 1


def test_429s_wait_for_the_reset_header_and_no_row_is_lost(clock):
    with serve(clock, limit_per_10s=4, company_attributes=ATTRIBUTE_TYPES) as fake:
        # a limiter that ignores the headers, so the fake's 429s are what the client meets
        blind = RateLimiter(10_000, 10.0, clock=clock, sleep=clock.sleep)
        outcomes = deliver_companies(
            make_client(fake, clock, limiter=blind), company_records(scores(10)), ensure_attributes=False
        )

        assert statuses(outcomes) == ["created"] * 10
        assert len(fake.companies) == 10
        assert len(fake.calls("POST", "/companies")) > 10  # some were refused with 429 and sent again
        assert clock.waits == [7.0, 10.0]  # to each window's X-RateLimit-Reset, not a guess
        assert fake.spec_violations == []


def test_the_header_limiter_waits_before_a_429_happens(clock):
    with serve(clock, limit_per_10s=4, company_attributes=ATTRIBUTE_TYPES) as fake:
        outcomes = deliver_companies(
            make_client(fake, clock), company_records(scores(10)), ensure_attributes=False
        )
        assert statuses(outcomes) == ["created"] * 10
        assert len(fake.calls("POST", "/companies")) == 10  # never refused
        assert clock.waits == [7.0, 10.0]
        assert fake.spec_violations == []


def test_an_injected_429_is_retried_after_the_reset(ready_fake, clock):
    body = {
        "type": "error.list",
        "errors": [{"code": "rate_limit_exceeded", "message": "Exceeded rate limit"}],
    }
    ready_fake.inject(Fault(path="^/companies$", response=Response(429, body)))
    outcomes = deliver_companies(
        make_client(ready_fake, clock), company_records(scores(2)), ensure_attributes=False
    )
    assert statuses(outcomes) == ["created", "created"]
    assert len(ready_fake.calls("POST", "/companies")) == 3
    assert clock.waits == [7.0]  # START is 3 s into its window


def test_a_5xx_fault_then_success(ready_fake, clock):
    ready_fake.inject(
        Fault(
            path="^/companies$", response=Response(502, "<html>Bad Gateway</html>", content_type="text/html")
        )
    )
    outcomes = deliver_companies(
        make_client(ready_fake, clock), company_records(scores(3)), ensure_attributes=False
    )
    assert statuses(outcomes) == ["created"] * 3
    assert len(ready_fake.calls("POST", "/companies")) == 4
    assert len(clock.waits) == 1


def test_a_connection_reset_is_retried(ready_fake, clock):
    ready_fake.inject(Fault(path="^/companies$", reset=True))
    outcomes = deliver_companies(
        make_client(ready_fake, clock), company_records(scores(2)), ensure_attributes=False
    )
    assert statuses(outcomes) == ["created", "created"]
    assert len(ready_fake.companies) == 2


def test_exhausted_retries_fail_that_row_and_the_next_is_still_sent(ready_fake, clock):
    ready_fake.inject(
        Fault(path="^/companies$", response=Response(503, {"type": "error.list", "errors": []}), times=3)
    )
    client = make_client(ready_fake, clock, policy=RetryPolicy(max_attempts=3, base_delay=0.0))
    outcomes = deliver_companies(client, company_records(scores(2)), ensure_attributes=False)
    assert statuses(outcomes) == ["failed", "created"]
    assert outcomes["error_code"].iloc[0] == "RETRIES_EXHAUSTED"
    assert "503" in outcomes["error_message"].iloc[0]


# -- Airflow connection -----------------------------------------------------------------------


def test_client_from_an_airflow_connection(fake, clock, monkeypatch):
    conn = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": fake.port,
        "schema": "http",
        "login": "ignored-user",  # no basic auth: the token goes in the bearer header only
        "password": TOKEN,
        "extra": {"region": "eu", "intercom_version": "2.16"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_INTERCOM_DEFAULT", json.dumps(conn))

    client = IntercomClient.from_connection(sleep=clock.sleep, clock=clock)
    outcomes = deliver_companies(client, company_records(scores(3)))

    assert client.rest.base_url == fake.url  # the host overrides the region
    assert statuses(outcomes) == ["created"] * 3
    assert {r.header("authorization") for r in fake.requests} == {f"Bearer {TOKEN}"}
    assert {r.header("intercom-version") for r in fake.requests} == {"2.16"}
    assert all(r.header("region") is None and r.header("intercom_version") is None for r in fake.requests)
    assert TOKEN not in repr(client)


def test_connection_without_host_uses_the_region_and_a_token_is_required(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTERCOM_EU",
        json.dumps({"conn_type": "http", "password": "t", "extra": {"region": "eu"}}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_INTERCOM_US", json.dumps({"conn_type": "http", "password": "t"}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTERCOM_HOST",
        json.dumps({"conn_type": "http", "host": "api.au.intercom.io", "password": "t"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTERCOM_NO_TOKEN", json.dumps({"conn_type": "http", "host": "127.0.0.1"})
    )
    assert IntercomClient.from_connection("intercom_eu").rest.base_url == "https://api.eu.intercom.io"
    assert IntercomClient.from_connection("intercom_us").rest.base_url == "https://api.intercom.io"
    assert IntercomClient.from_connection("intercom_host").rest.base_url == "https://api.au.intercom.io"
    with pytest.raises(ValueError, match="no password"):
        IntercomClient.from_connection("intercom_no_token")


def test_several_calls_in_flight_at_a_200ms_round_trip(ready_fake):
    ready_fake.with_latency(0.2, 0.02)
    client = IntercomClient(ready_fake.url, TOKEN, calls_per_10s=1000, policy=RetryPolicy(base_delay=0.01))
    started = time.monotonic()
    outcomes = deliver_companies(client, company_records(scores(40)))
    seconds = time.monotonic() - started

    assert list(outcomes["record_key"]) == [f"org-{i:03d}" for i in range(40)]
    assert set(outcomes["status"]) == {"created"}
    assert seconds < 3.0, f"40 calls at 200 ms took {seconds:.2f}s: one at a time would be 8 s"


def test_plg_scored_at_is_sent_through_the_sync_path(ready_fake, monkeypatch, tmp_path):
    """intercom_companies as the DAG and `sync` run it: the company's plg_scored_at is midnight UTC
    of the run's as-of date; the next day with the same scores sends nothing."""
    import datetime as dt

    from plg_bridge.config import DeliverySettings, Settings
    from plg_bridge.controls import RunOptions
    from plg_bridge.delivery.deliver import RunInputs, sync_target
    from plg_bridge.delivery.targets import TARGETS

    conn = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": ready_fake.port,
        "schema": "http",
        "password": TOKEN,
    }
    monkeypatch.setenv("AIRFLOW_CONN_INTERCOM_DEFAULT", json.dumps(conn))
    settings = Settings(
        work_location=str(tmp_path), delivery=DeliverySettings(destinations=("intercom",))
    ).validate()
    frame = scores(3)

    def run(day: int) -> dict:
        frames = {"scores": frame, "signals": pd.DataFrame(), "contacts": pd.DataFrame()}
        as_of = dt.datetime(2026, 11, day, tzinfo=dt.UTC)
        return sync_target(
            settings,
            TARGETS["intercom_companies"],
            RunInputs(str(tmp_path), None, as_of, _cache=frames),
            RunOptions(),
        )

    assert run(20)["created"] == 3
    midnight = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp())
    stored = [c["custom_attributes"]["plg_scored_at"] for c in ready_fake.companies.values()]
    assert stored == [midnight] * 3

    calls = len(ready_fake.requests)
    assert run(21)["plan"]["unchanged"] == 3 and len(ready_fake.requests) == calls


# -- through the production path: deliver_run(target) as the DAG's deliver task runs it ----------


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """A deployment delivering to Intercom; `connect(fake, token)` points intercom_default at a fake."""
    dep = Deployment(tmp_path / "work", "intercom")

    def connect(fake: FakeIntercom, token: str = TOKEN) -> Deployment:
        monkeypatch.setenv("AIRFLOW_CONN_INTERCOM_DEFAULT", http_connection(fake, token))
        return dep

    dep.connect = connect
    return dep


@pytest.fixture
def wall_fake():
    """A workspace on the wall clock (the production client reads the real time)."""
    with FakeIntercom() as server:
        yield server
        assert server.spec_violations == []


def test_missing_data_attributes_are_created_first_then_every_company_lands(wall_fake, deployment):
    result = deployment.connect(wall_fake).run("intercom_companies", scores=scores(12))
    outcomes = deployment.outcomes("intercom_companies")
    fake = wall_fake

    assert result["created"] == 12 and statuses(outcomes) == ["created"] * 12
    assert {name: a["data_type"] for (_m, name), a in fake.data_attributes.items()} == ATTRIBUTE_TYPES
    paths = [(r.method, r.path) for r in fake.requests]
    assert paths[0] == ("GET", "/data_attributes")
    assert paths[1 : 1 + len(COMPANY_ATTRIBUTES)] == [("POST", "/data_attributes")] * len(COMPANY_ATTRIBUTES)
    assert paths[1 + len(COMPANY_ATTRIBUTES) :] == [("POST", "/companies")] * 12
    stored = fake.companies["org-007"]
    assert stored["name"] == "Org 7"
    assert stored["custom_attributes"] == {
        "plg_pql_score": 7,
        "plg_is_pql": False,
        "plg_events_this_week": 21,
        "plg_events_last_week": 14,
        "plg_active_creators": 0,
        "plg_integrations_connected": 1,
        "plg_scored_at": 1_795_132_800,  # 2026-11-20T00:00Z
    }
    assert "name" not in fake.companies["org-005"]
    assert outcomes.set_index("record_key").loc["org-007", "destination_id"] == stored["id"]
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in fake.requests)
    assert {r.header("intercom-version") for r in fake.requests} == {"2.11"}


def test_companies_are_created_then_updated_in_place(fake, clock, deployment):
    """`fake` stamps companies on the test's clock: the second run is a minute later there, so
    Intercom's updated_at differs from created_at as it would between two real runs."""
    wall_fake = fake
    deployment.connect(wall_fake).run("intercom_companies", scores=scores(20))
    clock.now += 60
    first = deployment.outcomes("intercom_companies").set_index("record_key")
    changed = scores(20)
    changed.loc[4, "pql_score"] = 97
    changed.loc[4, "is_pql"] = True
    attribute_posts = len(wall_fake.calls("POST", "/data_attributes"))
    next_day = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)

    result = deployment.run("intercom_companies", next_day, scores=changed)
    second = deployment.outcomes("intercom_companies", next_day)

    assert statuses(first) == ["created"] * 20
    assert result["plan"]["update"] == 1 and list(second["status"]) == ["updated"]
    assert second["destination_id"].iloc[0] == first.loc["org-004", "destination_id"]
    assert len(wall_fake.companies) == 20  # no duplicates
    assert wall_fake.companies["org-004"]["custom_attributes"]["plg_pql_score"] == 97
    assert wall_fake.companies["org-004"]["custom_attributes"]["plg_is_pql"] is True
    assert len(wall_fake.calls("POST", "/data_attributes")) == attribute_posts  # all exist now


TAG_SIGNALS = [
    ("integration_connected", "org-000", "Slack", None),
    ("integration_connected", "org-001", "slack", None),
    ("integration_connected", "org-001", "Google Sheets", None),
    ("enterprise_interest", "org-002", "sso", None),
    ("enterprise_interest", "org-000", None, None),
    ("aha_reached", "org-003", "first_report", "u3"),  # an event, not a tag
]


def test_tags_are_applied_per_provider_in_one_call_per_tag(wall_fake, deployment):
    deployment.connect(wall_fake).run("intercom_companies", scores=scores(4))
    frame = signals(TAG_SIGNALS)
    result = deployment.run("intercom_tags", signals=frame)
    outcomes = deployment.outcomes("intercom_tags")
    fake = wall_fake

    assert result["created"] == 5 and len(outcomes) == 5 and statuses(outcomes) == ["created"] * 5
    assert sorted(fake.company_tags("org-000")) == ["enterprise-interest", "integration:slack"]
    assert sorted(fake.company_tags("org-001")) == ["integration:google-sheets", "integration:slack"]
    assert fake.company_tags("org-002") == ["enterprise-interest"]
    assert fake.company_tags("org-003") == []
    tag_calls = fake.calls("POST", "^/tags$")
    assert len(tag_calls) == 3  # enterprise-interest, integration:google-sheets, integration:slack
    slack_call = next(c.json for c in tag_calls if c.json["name"] == "integration:slack")
    assert slack_call["companies"] == [{"company_id": "org-000"}, {"company_id": "org-001"}]
    by_key = outcomes.set_index("record_key")["destination_id"]
    assert by_key["enterprise_interest:org-000:-:-"] == fake.tags["enterprise-interest"]["id"]

    again = deployment.run("intercom_tags", signals=frame)  # a rerun: create-once, nothing sent
    assert again["plan"]["unchanged"] == 5 and len(fake.calls("POST", "^/tags$")) == 3
    assert sorted(fake.company_tags("org-000")) == ["enterprise-interest", "integration:slack"]


def test_a_tag_for_a_missing_company_fails_only_its_row(wall_fake, deployment):
    deployment.connect(wall_fake).run("intercom_companies", scores=scores(2))
    frame = signals(
        [
            ("integration_connected", "org-000", "Slack", None),
            ("integration_connected", "org-404", "Slack", None),
            ("integration_connected", "org-001", "Slack", None),
        ]
    )
    deployment.run("intercom_tags", signals=frame)
    outcomes = deployment.outcomes("intercom_tags").set_index("record_key")

    failed = outcomes[outcomes["status"] == "failed"]
    assert list(failed.index) == ["integration_connected:org-404:Slack:-"]
    assert failed["error_code"].iloc[0] == "company_not_found"
    assert (outcomes["status"] == "created").sum() == 2
    assert wall_fake.company_tags("org-000") == wall_fake.company_tags("org-001") == ["integration:slack"]


def test_events_are_posted_with_metadata(wall_fake, deployment):
    frame = signals(
        [
            ("aha_reached", "org-001", "first_report_generated", "u1"),
            ("aha_reached", "org-002", "first_api_call_completed", None),  # no distinct_id: email
            ("usage_ceiling", "org-001", "seats", "u1"),  # not an event
        ]
    )
    frame.loc[1, "email"] = "only-email@acme.test"

    result = deployment.connect(wall_fake).run("intercom_events", signals=frame)

    assert result["created"] == 2
    # events go out several in flight: compare them in a fixed order
    events = sorted(wall_fake.events, key=lambda e: e["metadata"]["signal_key"])
    assert [(e["event_name"], e.get("user_id"), e.get("email")) for e in events] == [
        ("aha-moment-reached", "u1", None),
        ("aha-moment-reached", None, "only-email@acme.test"),
    ]
    assert events[0]["created_at"] == 1_795_168_800  # 2026-11-20T10:00Z
    assert events[0]["metadata"] == {
        "signal_key": "aha_reached:org-001:first_report_generated:u1",
        "milestone": "first_report_generated",
        "org_id": "org-001",
        "org_name": "Name of org-001",
        "pql_score": 80,
        "is_pql": True,
    }
    assert not any(e["duplicate"] for e in wall_fake.events)
    assert deployment.run("intercom_events", signals=frame)["plan"]["unchanged"] == 2  # create-once
    assert len(wall_fake.events) == 2


def test_an_event_for_an_unknown_user_fails_only_its_row(deployment):
    with FakeIntercom(known_users={"u1"}) as fake:
        frame = signals([("aha_reached", "o1", "m", "u1"), ("aha_reached", "o2", "m", "ghost")])
        deployment.connect(fake).run("intercom_events", signals=frame)
        outcomes = deployment.outcomes("intercom_events").set_index("record_key")
        assert outcomes.loc["aha_reached:o1:m:u1", "status"] == "created"
        assert outcomes.loc["aha_reached:o2:m:ghost", "error_code"] == "not_found"
        assert len(fake.events) == 1
        assert fake.spec_violations == []


def test_a_wrong_token_fails_every_row_with_the_code_and_stops(wall_fake, deployment):
    deployment.connect(wall_fake, token="wrong-token")
    deployment.settings["intercom"] = IntercomSettings(max_in_flight=1)
    deployment.run("intercom_companies", scores=scores(25))
    outcomes = deployment.outcomes("intercom_companies")
    frame = signals([("aha_reached", "o1", "m", "u1"), ("aha_reached", "o2", "m", "u2")])
    deployment.run("intercom_events", signals=frame)
    events = deployment.outcomes("intercom_events")

    assert len(outcomes) == 25
    assert set(outcomes["status"]) == {"failed"}
    assert set(outcomes["error_code"]) == {"unauthorized"}
    assert outcomes["error_message"].str.contains("Access Token Invalid").all()
    assert len(wall_fake.calls("POST", "/companies")) <= 1  # the rest were not sent
    assert set(events["error_code"]) == {"unauthorized"}
    assert wall_fake.companies == {} and wall_fake.events == []


def test_a_company_name_intercom_refuses_is_never_sent(wall_fake, deployment):
    """Intercom keeps at most 255 characters of a company name (tests/fakes/intercom.py MAX_TEXT): the
    mapping cuts a longer $groupidentify name, so the company still lands."""
    frame = scores(2)
    frame.loc[1, "org_name"] = "Acme " * 100
    result = deployment.connect(wall_fake).run("intercom_companies", scores=frame)
    assert result["created"] == 2
    assert len(wall_fake.companies["org-001"]["name"]) <= 255


def test_a_repeated_organization_is_refused_before_anything_is_sent(wall_fake, deployment):
    """The client no longer guards against a key sent twice: plan.py refuses repeated keys, so an
    organization repeated in the scores stops the target before any call."""
    frame = scores(2)
    with pytest.raises(ValueError, match="duplicate record keys"):
        deployment.connect(wall_fake).run("intercom_companies", scores=pd.concat([frame, frame.iloc[:1]]))
    assert wall_fake.requests == [] and wall_fake.companies == {}

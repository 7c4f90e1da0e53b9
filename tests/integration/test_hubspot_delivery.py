"""HubSpot delivery over real HTTP against FakeHubSpot on loopback: batching, 207s, rate limits,
faults, the daily quota, bad credentials and the Airflow connection."""

from __future__ import annotations

import datetime as dt
import json
import time

import pandas as pd
import pytest
import requests

from plg_bridge.delivery.hubspot.client import HubSpotClient
from plg_bridge.delivery.hubspot.mapping import COMPANY_PROPERTIES, company_inputs
from plg_bridge.delivery.hubspot.targets import send_companies
from plg_bridge.delivery.transport import RateLimiter, RetryPolicy
from tests.fakes.hubspot import DEFAULT_COMPANY_PROPERTIES, FakeHubSpot, prop
from tests.fakes.server import Fault, Response
from tests.support.deliver import Deployment, http_connection
from tests.support.frames import scores

AS_OF = "2026-11-20"
UPSERT = "/crm/v3/objects/companies/batch/upsert"
ALL_COMPANY_PROPERTIES = [*DEFAULT_COMPANY_PROPERTIES, *COMPANY_PROPERTIES]
COMPANY_PROPERTY_NAMES = [
    "name",
    "plg_pql_score",
    "plg_is_pql",
    "plg_events_this_week",
    "plg_events_last_week",
    "plg_active_creators",
    "plg_integrations_connected",
    "plg_scored_at",
]


class Sleeps:
    """Records every wait the client asks for; sleeps for real only when told (rate-limit tests)."""

    def __init__(self, real: bool = False) -> None:
        self.real = real
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(seconds)


def make_client(fake: FakeHubSpot, token: str = "test-token", **kwargs) -> HubSpotClient:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("calls_per_10s", None)
    kwargs.setdefault("max_in_flight", 1)  # batches in order: the concurrency tests set their own
    kwargs.setdefault("policy", RetryPolicy(base_delay=0.01, max_delay=1.0))
    return HubSpotClient(fake.url, token, **kwargs)


@pytest.fixture
def fake():
    with FakeHubSpot() as server:
        yield server


@pytest.fixture
def ready_fake():
    """A portal where plg-bridge's properties already exist."""
    with FakeHubSpot(company_properties=ALL_COMPANY_PROPERTIES) as server:
        yield server


def upserts(fake: FakeHubSpot) -> list:
    return fake.calls("POST", UPSERT)


def records(frame: pd.DataFrame) -> list[dict]:
    """The records the hubspot_companies target builds from a scores frame."""
    return [{"record_key": r["id"], "payload": r} for r in company_inputs(frame)]


# -- client level: what the DAG path cannot reach cheaply (a stale listing, retry timing, limiter) --


def test_ensure_properties_tolerates_a_concurrent_creator(ready_fake):
    ready_fake.properties["companies"].pop("plg_scored_at")
    ready_fake.inject(
        Fault(path="/crm/v3/properties/companies", response=Response(200, {"results": []}))
    )  # a stale listing: every property looks missing, the POSTs answer 409
    created = make_client(ready_fake).ensure_properties("companies", COMPANY_PROPERTIES)
    assert created == ["plg_scored_at"]


# -- rate limits and faults ---------------------------------------------------------------------


def test_ten_secondly_429s_are_waited_out_and_no_row_is_lost():
    with FakeHubSpot(limit_per_10s=5, window_seconds=0.3, company_properties=ALL_COMPANY_PROPERTIES) as fake:
        sleeps = Sleeps(real=True)
        outcomes = make_client(fake, sleep=sleeps).upsert(
            "companies", company_inputs(scores(12), as_of=AS_OF), batch_size=1
        )

        assert [o.status for o in outcomes] == ["created"] * 12
        assert len(fake.objects("companies")) == 12
        assert len(upserts(fake)) > 12  # some calls were refused with 429 and sent again
        assert sleeps.waits and set(sleeps.waits) == {0.3}  # the interval header, not a guess


def test_a_502_is_retried(ready_fake):
    ready_fake.inject(
        Fault(path=UPSERT, response=Response(502, "<html>Bad Gateway</html>", content_type="text/html"))
    )
    sleeps = Sleeps()
    outcomes = make_client(ready_fake, sleep=sleeps).upsert("companies", company_inputs(scores(3)))
    assert [o.status for o in outcomes] == ["created"] * 3
    assert len(upserts(ready_fake)) == 2
    assert len(sleeps.waits) == 1


def test_a_connection_reset_is_retried(ready_fake):
    ready_fake.inject(Fault(path=UPSERT, reset=True))
    outcomes = make_client(ready_fake).upsert("companies", company_inputs(scores(3)))
    assert [o.status for o in outcomes] == ["created"] * 3
    assert len(upserts(ready_fake)) == 2


def test_a_timeout_is_retried_and_the_late_write_makes_no_duplicate(ready_fake):
    ready_fake.inject(Fault(path=UPSERT, delay=0.4))
    outcomes = make_client(ready_fake, timeout=0.15).upsert("companies", company_inputs(scores(3)))
    assert {o.status for o in outcomes} <= {"created", "updated"}
    time.sleep(0.4)  # let the slow first request land too
    assert len(ready_fake.objects("companies")) == 3


def test_exhausted_retries_fail_that_batch_and_the_next_is_still_sent(ready_fake):
    ready_fake.inject(Fault(path=UPSERT, response=Response(503, {"message": "down"}), times=3))
    client = make_client(ready_fake, policy=RetryPolicy(max_attempts=3, base_delay=0.0))
    outcomes = client.upsert("companies", company_inputs(scores(4)), batch_size=2)
    assert [o.status for o in outcomes] == ["failed", "failed", "created", "created"]
    assert {o.error_code for o in outcomes[:2]} == {"RETRIES_EXHAUSTED"}
    assert "503" in outcomes[0].error_message


def test_daily_limit_is_fatal_and_stops_the_delivery():
    with FakeHubSpot(daily_limit=1, company_properties=ALL_COMPANY_PROPERTIES) as fake:
        sleeps = Sleeps()
        outcomes = make_client(fake, sleep=sleeps).upsert("companies", company_inputs(scores(250)))

        assert [o.status for o in outcomes[:100]] == ["created"] * 100
        assert {(o.status, o.error_code) for o in outcomes[100:]} == {("failed", "DAILY_LIMIT")}
        assert len(upserts(fake)) == 2  # the one that hit the quota, then nothing more
        assert sleeps.waits == []  # not retried
        assert len(fake.objects("companies")) == 100


def test_client_side_limiter_keeps_under_the_fake_budget():
    with FakeHubSpot(limit_per_10s=4, window_seconds=0.2, company_properties=ALL_COMPANY_PROPERTIES) as fake:
        client = make_client(fake, limiter=RateLimiter(4, 0.4))
        outcomes = client.upsert("companies", company_inputs(scores(10)), batch_size=1)
        assert [o.status for o in outcomes] == ["created"] * 10
        assert len(upserts(fake)) == 10  # never refused: the limiter waited instead


# -- the fake itself behaves like HubSpot ---------------------------------------------------------


def test_fake_answers_like_hubspot(ready_fake):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer test-token"
    url = ready_fake.url + UPSERT

    def item(key: str, trace: bool = True, **props) -> dict:
        out = {"id": key, "idProperty": "posthog_group_id", "properties": props}
        return {**out, "objectWriteTraceId": key} if trace else out

    too_many = s.post(url, json={"inputs": [item(str(i)) for i in range(101)]})
    assert (too_many.status_code, too_many.json()["category"]) == (400, "VALIDATION_ERROR")

    not_unique = s.post(url, json={"inputs": [{**item("a"), "idProperty": "name"}]})
    assert not_unique.status_code == 400 and "non-unique" in not_unique.json()["message"]

    mixed = s.post(url, json={"inputs": [item("a", plg_pql_score="1"), item("b", plg_pql_score="x")]})
    assert mixed.status_code == 207
    body = mixed.json()
    assert body["numErrors"] == 1 and len(body["results"]) == 1 and body["results"][0]["new"] is True
    assert body["errors"][0]["context"] == {"objectWriteTraceId": ["b"]}
    assert body["errors"][0]["errors"][0]["code"] == "INVALID_INTEGER"
    assert mixed.headers["X-HubSpot-RateLimit-Max"] == "190"
    assert "X-HubSpot-RateLimit-Daily-Remaining" in mixed.headers

    all_bad = s.post(url, json={"inputs": [item("c", nope="1")]})
    assert all_bad.status_code == 207 and all_bad.json()["results"] == []

    untraced = s.post(url, json={"inputs": [item("d", trace=False), item("e", trace=False, nope="1")]})
    assert untraced.status_code == 400  # without trace ids one bad input sinks the batch
    assert ready_fake.find("companies", "posthog_group_id", "d") is None

    again = s.post(url, json={"inputs": [item("a", plg_pql_score="2")]})
    assert again.json()["results"][0]["new"] is False

    anonymous = requests.post(url, json={"inputs": [item("a")]})
    assert (anonymous.status_code, anonymous.json()["category"]) == (401, "INVALID_AUTHENTICATION")

    exists = s.post(ready_fake.url + "/crm/v3/properties/companies", json=dict(COMPANY_PROPERTIES[1]))
    assert exists.status_code == 409


# -- Airflow connection ---------------------------------------------------------------------------


def test_client_from_an_airflow_connection_sends_the_bearer_token(fake, monkeypatch):
    conn = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": fake.port,
        "schema": "http",
        "login": "ignored-user",  # HubSpot takes no basic auth: the hook must not send it
        "password": "test-token",
    }
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))

    client = HubSpotClient.from_connection(calls_per_10s=None, sleep=Sleeps())
    outcomes = send_companies(client, records(scores(3)), AS_OF)

    assert client.rest.base_url == fake.url
    assert list(outcomes["status"]) == ["created"] * 3
    assert fake.requests, "nothing reached the fake"
    assert {r.header("authorization") for r in fake.requests} == {"Bearer test-token"}
    assert "test-token" not in repr(client)


def test_connection_without_host_means_hubspot_itself_and_a_token_is_required(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_PROD", json.dumps({"conn_type": "http", "password": "pat-x"}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBSPOT_NO_TOKEN", json.dumps({"conn_type": "http", "host": "127.0.0.1"})
    )
    assert HubSpotClient.from_connection("hubspot_prod").rest.base_url == "https://api.hubapi.com"
    with pytest.raises(ValueError, match="no password"):
        HubSpotClient.from_connection("hubspot_no_token")


# -- requests in flight and one budget per app ----------------------------------------------------


def test_several_batches_in_flight_at_a_300ms_round_trip(ready_fake):
    ready_fake.with_latency(0.3, 0.03)
    client = make_client(ready_fake, max_in_flight=None, calls_per_10s=190)
    started = time.monotonic()
    outcomes = client.upsert("companies", company_inputs(scores(1000)))
    seconds = time.monotonic() - started

    assert [o.record_key for o in outcomes] == [f"org-{i:04d}" for i in range(1000)]
    assert {o.status for o in outcomes} == {"created"}
    assert len(ready_fake.objects("companies")) == 1000
    assert seconds < 1.6, f"10 batches at 300 ms took {seconds:.2f}s: one at a time would be 3 s"


def test_batches_answered_out_of_order_keep_their_own_outcomes(ready_fake):
    # The first call to arrive (one of the first four batches in flight) is answered 3 s late,
    # after the four batches sent behind it: its rows must still get their own ids, in input order.
    ready_fake.inject(Fault(path=UPSERT, delay=3.0))
    client = make_client(ready_fake, max_in_flight=4)
    outcomes = client.upsert("companies", company_inputs(scores(16)), batch_size=2)

    stored_order = [o["properties"]["posthog_group_id"] for o in ready_fake.objects("companies")]
    late = sorted(stored_order[-2:])
    first, second = (int(k.removeprefix("org-")) for k in late)
    assert second == first + 1 and first % 2 == 0 and first < 8, stored_order  # one early batch, last
    assert [o.record_key for o in outcomes] == [f"org-{i:04d}" for i in range(16)]
    for o in outcomes:
        assert o.destination_id == ready_fake.find("companies", "posthog_group_id", o.record_key)["id"]


def test_a_fatal_answer_stops_batches_not_yet_started_while_in_flight_ones_finish(ready_fake):
    from plg_bridge.redact import strip_secrets

    strip_secrets("warm")  # its first use imports Airflow's masker: seconds, during which batches go out
    daily = Response(429, {"status": "error", "errorType": "RATE_LIMIT", "policyName": "DAILY"})
    ready_fake.with_latency(0.2)
    ready_fake.inject(Fault(path=UPSERT, response=daily))
    client = make_client(ready_fake, max_in_flight=2)
    outcomes = client.upsert("companies", company_inputs(scores(20)), batch_size=2)

    failed = [o for o in outcomes if o.status == "failed"]
    assert len(outcomes) == 20 and {o.error_code for o in failed} == {"DAILY_LIMIT"}
    sent = len(upserts(ready_fake))
    # the refused batch and those started before its answer was read (one beside it, more if
    # reading it was slow): the rest never leave
    assert sent <= 3, f"{sent} calls: batches after the refusal went out"
    assert sum(o.status == "created" for o in outcomes) == 2 * (sent - 1)
    assert sum("not sent" in (o.error_message or "") for o in failed) == 20 - 2 * sent


def test_two_targets_of_one_app_running_at_once_share_its_budget(monkeypatch):
    """hubspot_companies and hubspot_contacts in two threads (as two tasks in one worker), each
    through its production send step and the Airflow connection: together they never make more
    calls in any window than the app's limit, counted per token at the fake."""
    import threading

    from plg_bridge.delivery.hubspot import targets
    from plg_bridge.delivery.hubspot.mapping import CONTACT_PROPERTIES
    from tests.fakes.hubspot import DEFAULT_CONTACT_PROPERTIES

    limit = 6
    with FakeHubSpot(
        token="app-a",
        other_tokens=("app-b",),
        limit_per_10s=limit,
        window_seconds=1.0,
        company_properties=ALL_COMPANY_PROPERTIES,
        contact_properties=[*DEFAULT_CONTACT_PROPERTIES, *CONTACT_PROPERTIES],
    ) as fake:
        fake.with_latency(0.05)
        conn = {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": fake.port,
            "schema": "http",
            "password": "app-a",
        }
        monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
        monkeypatch.setitem(HubSpotClient.__init__.__kwdefaults__, "rate_window", 1.0)
        settings = _settings(calls_per_10s=limit, batch_size=10)
        companies = [{**r, "as_of": AS_OF} for r in records(scores(60))]
        contacts = [
            {
                "record_key": f"p{i}@example.com",
                "payload": {"id": f"p{i}@example.com", "idProperty": "email", "properties": {}},
            }
            for i in range(60)
        ]
        results = {}
        threads = [
            threading.Thread(
                target=lambda: results.update(c=targets._send_hubspot_companies(settings, companies))
            ),
            threading.Thread(
                target=lambda: results.update(p=targets._send_hubspot_contacts(settings, contacts))
            ),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

        assert set(results["c"]["status"]) == {"created"} and set(results["p"]["status"]) == {"created"}
        assert len(fake.arrivals["app-a"]) >= 12  # 6 + 6 upserts, plus the property lists
        assert fake.peak_calls("app-a") <= limit


def _settings(**hubspot):
    from types import SimpleNamespace

    return SimpleNamespace(hubspot=SimpleNamespace(conn_id="hubspot_default", max_in_flight=None, **hubspot))


def test_plg_scored_at_is_sent_through_the_sync_path_and_an_unchanged_day_sends_nothing(
    ready_fake, monkeypatch, tmp_path
):
    """The target the DAG and `sync` run (sync_target -> hubspot_companies): the stored company
    carries the run's as-of date; the next day with the same scores plans nothing and calls nothing."""
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
        "password": "test-token",
    }
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
    settings = Settings(
        work_location=str(tmp_path), delivery=DeliverySettings(destinations=("hubspot",))
    ).validate()
    frame = scores(5)

    def run(day: int) -> dict:
        frames = {"scores": frame, "signals": pd.DataFrame(), "contacts": pd.DataFrame()}
        as_of = dt.datetime(2026, 11, day, tzinfo=dt.UTC)
        return sync_target(
            settings,
            TARGETS["hubspot_companies"],
            RunInputs(str(tmp_path), None, as_of, _cache=frames),
            RunOptions(),
        )

    first = run(20)
    assert first["created"] == 5
    stored = ready_fake.find("companies", "posthog_group_id", "org-0003")
    assert stored["properties"]["plg_scored_at"] == "2026-11-20"

    calls = len(ready_fake.requests)
    second = run(21)
    assert second["plan"]["unchanged"] == 5 and len(ready_fake.requests) == calls


# -- through the production path: deliver_run(target) as the DAG's deliver task runs it ----------


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """A deployment delivering to HubSpot; `connect(fake, token)` points hubspot_default at a fake."""
    dep = Deployment(tmp_path / "work", "hubspot")

    def connect(fake: FakeHubSpot, token: str = "test-token") -> Deployment:
        monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", http_connection(fake, token))
        return dep

    dep.connect = connect
    return dep


def test_250_companies_go_in_three_batches_and_are_stored_with_their_properties(fake, deployment):
    result = deployment.connect(fake).run("hubspot_companies", scores=scores(250))
    outcomes = deployment.outcomes("hubspot_companies")

    # batches of 100, several in flight: they may arrive in any order
    assert sorted(len(r.json["inputs"]) for r in upserts(fake)) == [50, 100, 100]
    assert (result["created"], result["failed"], len(outcomes)) == (250, 0, 250)
    assert set(outcomes["status"]) == {"created"}
    assert len(fake.objects("companies")) == 250

    stored = fake.find("companies", "posthog_group_id", "org-0007")
    assert stored is not None
    assert {k: stored["properties"][k] for k in COMPANY_PROPERTY_NAMES} == {
        "name": "Org 7",
        "plg_pql_score": "2.59",
        "plg_is_pql": "false",
        "plg_events_this_week": "21",
        "plg_events_last_week": "14",
        "plg_active_creators": "0",
        "plg_integrations_connected": "1",
        "plg_scored_at": AS_OF,
    }
    assert "name" not in fake.find("companies", "posthog_group_id", "org-0010")["properties"]
    row = outcomes.set_index("record_key").loc["org-0007"]
    assert row.destination_id == stored["id"]
    assert all(r.header("authorization") == "Bearer test-token" for r in fake.requests)


def test_a_rerun_updates_in_place_without_duplicates(fake, deployment):
    deployment.connect(fake).run("hubspot_companies", scores=scores(120))
    first = deployment.outcomes("hubspot_companies")
    changed = scores(120)
    changed.loc[5, "pql_score"] = 99.5
    property_posts = len(fake.calls("POST", "/crm/v3/properties/companies"))
    next_day = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)

    result = deployment.run("hubspot_companies", next_day, scores=changed)
    second = deployment.outcomes("hubspot_companies", next_day)

    # only the changed organization is planned again; it is updated in place
    assert result["plan"]["update"] == 1 and result["plan"]["unchanged"] == 119
    assert list(second["status"]) == ["updated"]
    assert second["destination_id"].iloc[0] == first.set_index("record_key").loc["org-0005", "destination_id"]
    assert len(fake.objects("companies")) == 120
    record = fake.find("companies", "posthog_group_id", "org-0005")["properties"]
    assert (record["plg_pql_score"], record["plg_scored_at"]) == ("99.5", "2026-11-21")
    assert len(fake.calls("POST", "/crm/v3/properties/companies")) == property_posts  # all exist now


def test_207_fails_only_the_rows_with_a_value_the_portal_refuses(deployment):
    """A portal where someone made plg_is_pql a dropdown with the one option "true": HubSpot refuses
    "false" for it, so only the non-PQL rows fail (207), each with its own error."""
    dropdown = prop(
        "plg_is_pql", "Is PQL", "enumeration", "select", options=[{"label": "Yes", "value": "true"}]
    )
    properties = [p for p in ALL_COMPANY_PROPERTIES if p["name"] != "plg_is_pql"] + [dropdown]
    with FakeHubSpot(company_properties=properties) as fake:
        result = deployment.connect(fake).run("hubspot_companies", scores=scores(5))
        outcomes = deployment.outcomes("hubspot_companies").set_index("record_key")

        # frames.scores: every 4th organization is a PQL (org-0000, org-0004)
        assert list(outcomes["status"]) == ["created", "failed", "failed", "failed", "created"]
        failed = outcomes[outcomes["status"] == "failed"]
        assert set(failed["error_code"]) == {"INVALID_OPTION"}
        assert failed["error_message"].str.contains("plg_is_pql").all()
        assert fake.find("companies", "posthog_group_id", "org-0003") is None
        assert len(fake.objects("companies")) == 2
        assert len(upserts(fake)) == 1
        assert result["dead_letters_waiting"] == 3


def test_a_fresh_portal_gets_the_properties_first_then_every_company_lands(fake, deployment):
    """Unknown properties would fail every row (PROPERTY_DOESNT_EXIST): the target lists the
    portal's properties once and creates the missing ones in one batch call before upserting."""
    result = deployment.connect(fake).run("hubspot_companies", scores=scores(3))

    assert result["created"] == 3
    setup = [(r.method, r.path) for r in fake.requests if "/properties/" in r.path]
    assert setup == [
        ("GET", "/crm/v3/properties/companies"),
        ("POST", "/crm/v3/properties/companies/batch/create"),
    ]
    assert {p["name"] for p in COMPANY_PROPERTIES} <= set(fake.properties["companies"])
    assert fake.properties["companies"]["plg_is_pql"]["type"] == "bool"


def test_a_wrong_token_fails_every_row_with_401_and_stops_after_the_batches_in_flight(fake, deployment):
    from plg_bridge.config import HubSpotSettings

    deployment.settings["hubspot"] = HubSpotSettings(max_in_flight=2)
    result = deployment.connect(fake, token="wrong-token").run("hubspot_companies", scores=scores(1000))
    outcomes = deployment.outcomes("hubspot_companies")

    assert len(outcomes) == 1000 and result["failed"] == 1000
    assert set(outcomes["status"]) == {"failed"}
    assert set(outcomes["error_code"]) == {"HTTP_401"}
    assert outcomes["error_message"].str.contains("INVALID_AUTHENTICATION").all()
    assert 1 <= len(upserts(fake)) <= 2  # the stop rule: of 10 batches, only those in flight went out
    assert fake.objects("companies") == []


# -- what HubSpot accepts: production mappings against the validating fake ------------------------


def test_contacts_with_addresses_hubspot_accepts_land_and_the_others_fail_only_their_rows(fake, deployment):
    """A bad address that reaches the target (models/contacts.py keeps only address-shaped emails) is refused per row."""
    contacts = pd.DataFrame(
        {
            "email": ["ann@acme.test", "bob@localhost", "carol@acme.test"],
            "person_key": ["p1", "p2", "p3"],
            "org_id": ["org-0001"] * 3,
            "first_touch_source": ["google", None, "newsletter"],
            "first_touch_medium": ["cpc", None, "email"],
            "first_touch_campaign": [None] * 3,
            "first_touch_channel": ["paid", None, "organic"],
            "signup_at": pd.to_datetime(["2026-11-02T09:30Z"] * 3),
            "aha_reached_at": pd.to_datetime(["2026-11-03T12:00Z", None, None]),
            "hours_to_aha": [26.5, None, None],
        }
    )
    result = deployment.connect(fake).run("hubspot_contacts", contacts=contacts)
    outcomes = deployment.outcomes("hubspot_contacts").set_index("record_key")

    assert result["created"] == 2
    assert outcomes.loc["bob@localhost", "error_code"] == "INVALID_EMAIL"
    ann = fake.find("contacts", "email", "ann@acme.test")["properties"]
    assert (ann["plg_signup_at"], ann["plg_aha_reached_at"], ann["plg_hours_to_aha"]) == (
        "2026-11-02",
        "2026-11-03",
        "26.5",
    )


def test_an_organization_name_longer_than_hubspot_takes_still_lands(fake, deployment):
    frame = scores(2)
    frame.loc[1, "org_name"] = "Acme " * 14_000  # 70,000 characters from $groupidentify
    result = deployment.connect(fake).run("hubspot_companies", scores=frame)
    assert result["failed"] == 0
    stored = fake.find("companies", "posthog_group_id", "org-0001")["properties"]
    assert len(stored["name"]) <= 65_536 and stored["name"].startswith("Acme Acme")


def test_a_task_with_a_huge_detail_does_not_sink_its_batch(fake, deployment):
    frame = scores(3)
    deployment.connect(fake).run("hubspot_companies", scores=frame)
    signals = pd.DataFrame(
        {
            "signal_key": [f"usage_ceiling:org-000{i}:-:2026-11-20" for i in range(3)],
            "signal": ["usage_ceiling"] * 3,
            "org_id": [f"org-000{i}" for i in range(3)],
            "org_name": ["Org 0", "Org 1", "Org 2"],
            "distinct_id": [None] * 3,
            "email": [None] * 3,
            "detail": ["seats", "x" * 70_000, "projects"],
            "occurred_at": pd.to_datetime(["2026-11-19T10:00Z"] * 3),
            "as_of": ["2026-11-20"] * 3,
            "pql_score": [80, 81, 82],
            "is_pql": [True] * 3,
        }
    )
    result = deployment.run("hubspot_tasks", scores=frame, signals=signals)
    assert result["created"] == 3 and len(fake.tasks) == 3

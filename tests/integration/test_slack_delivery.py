"""Slack digest delivery through the Airflow Slack provider (SlackHook / SlackWebhookHook) over
real HTTP against FakeSlack on loopback: splitting, escaping, 429 Retry-After, no replay of a
post that may have landed, bad credentials, the webhook route, connections from env vars."""

from __future__ import annotations

import itertools
import json
import socket

import pandas as pd
import pytest
from slack_sdk.errors import SlackApiError

from plg_bridge.delivery import state
from plg_bridge.delivery.slack.client import PACE_MARGIN, find_digest, post_digest
from plg_bridge.delivery.slack.mapping import alert_messages, alert_records
from plg_bridge.storage import location
from tests.fakes.proxy import LosingProxy
from tests.fakes.server import Fault, Response
from tests.fakes.slack import MAX_HEADER_TEXT, MAX_SECTION_TEXT, FakeSlack, channel_id
from tests.support.deliver import Deployment, slack_connection

TOKEN = "xoxb-plg-test-token"
HOOK = "/services/T000/B000/XXXX"
AS_OF = "2026-11-20"
EVIL = "<!channel> & <https://x|y>"


class Clock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def signals(n: int, signal: str = "usage_ceiling", names: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "signal_key": [f"{signal}:org-{i:03d}:{AS_OF}" for i in range(n)],
            "signal": [signal] * n,
            "org_id": [f"org-{i:03d}" for i in range(n)],
            "org_name": names or [f"Org {i}" for i in range(n)],
            "distinct_id": [None] * n,
            "email": [None] * n,
            "detail": [f"feature {i % 4}" for i in range(n)],
            "occurred_at": pd.to_datetime([f"{AS_OF}T10:00:00Z"] * n),
            "as_of": [AS_OF] * n,
            "pql_score": [i % 90 for i in range(n)],
            "is_pql": [False] * n,
        }
    )


def crossed(n: int, names: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "org_id": [f"pql-{i:02d}" for i in range(n)],
            "org_name": names or [f"PQL {i}" for i in range(n)],
            "events_this_week": [200] * n,
            "events_last_week": [100] * n,
            "active_creators": [4] * n,
            "integrations_connected": [2] * n,
            "pql_score": [80 + i for i in range(n)],
            "is_pql": [True] * n,
        }
    )


def digest_messages(scores: pd.DataFrame | None, frame: pd.DataFrame | None, as_of: str) -> list[dict]:
    """The messages the slack_digest target posts: `scores` as pql_crossed signals plus `frame`
    (digest_messages was removed from mapping.py, issue 10; H4)."""
    frames = [] if frame is None else [frame]
    if scores is not None:
        keys = [f"pql_crossed:{o}:{as_of}" for o in scores["org_id"]]
        frames.append(
            scores[["org_id", "org_name", "pql_score"]].assign(signal_key=keys, signal="pql_crossed")
        )
    messages = alert_messages(alert_records(scores, pd.concat(frames, ignore_index=True), as_of))
    return [{"record_key": m["record_key"], "payload": m["payload"]} for m in messages]  # one outcome each


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock):
    with FakeSlack(channels=["plg-alerts", "plg-digest"], clock=clock) as server:
        yield server
        assert server.spec_violations == []


@pytest.fixture
def api_conn(fake, monkeypatch):
    """AIRFLOW_CONN_SLACK_DEFAULT: a Slack API connection whose base_url is the fake."""
    conn = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": f"{fake.url}/api/"}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", json.dumps(conn))
    return conn


@pytest.fixture
def webhook_conn(fake, monkeypatch):
    """AIRFLOW_CONN_SLACK_WEBHOOK: an incoming-webhook connection (host = base, password = path)."""
    conn = {
        "conn_type": "slackwebhook",
        "host": f"{fake.url}/services",
        "password": HOOK.removeprefix("/services"),
    }
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK", json.dumps(conn))
    return conn


def post(messages, clock: Clock, **kwargs) -> pd.DataFrame:
    kwargs.setdefault("sleep", clock.sleep)
    kwargs.setdefault("clock", clock)
    return post_digest(messages, **kwargs)


def posts(fake: FakeSlack) -> list:
    return fake.calls("POST", r"chat\.postMessage")


# -- client level: retry and pacing timing on a test clock, transport faults ----------------


def test_a_429_is_waited_out_and_the_message_is_posted_exactly_once(fake, clock, api_conn):
    fake.inject(
        Fault(
            path=r"chat\.postMessage",
            response=Response(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "7"}),
        )
    )
    outcomes = post(digest_messages(crossed(2), None, AS_OF), clock)

    assert list(outcomes["status"]) == ["created"]
    assert len(posts(fake)) == 2
    assert len(fake.posted) == 1
    assert clock.waits == [7.0]  # Retry-After, not a guess


def test_back_to_back_posts_meet_the_channel_limit_and_are_retried(fake, clock, api_conn):
    messages = digest_messages(None, signals(120), AS_OF)
    assert len(messages) >= 3

    outcomes = post(messages, clock, min_interval=0)  # no pacing: the fake's 1/s limit answers 429

    assert list(outcomes["status"]) == ["created"] * len(messages)
    assert len(fake.posted) == len(messages)  # nothing duplicated
    assert len(posts(fake)) == 2 * len(messages) - 1  # each later message was refused once
    assert clock.waits == [1.0] * (len(messages) - 1)


def test_still_rate_limited_after_the_retries_stops_the_digest(fake, clock, api_conn):
    limited = Response(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"})
    fake.inject(Fault(path=r"chat\.postMessage", response=limited, times=10))
    outcomes = post(digest_messages(None, signals(120), AS_OF), clock, rate_limit_retries=2)

    assert set(outcomes["status"]) == {"failed"}
    assert set(outcomes["error_code"]) == {"ratelimited"}
    assert len(posts(fake)) == 3  # one try and two retries; the rest not sent
    assert fake.posted == []


def test_a_5xx_is_not_replayed_and_the_next_message_still_goes(fake, clock, api_conn):
    fake.inject(Fault(path=r"chat\.postMessage", response=Response(500, "oops", content_type="text/plain")))
    messages = digest_messages(None, signals(60), AS_OF)
    outcomes = post(messages, clock)

    assert list(outcomes["status"]) == ["failed", *["created"] * (len(messages) - 1)]
    assert outcomes["error_code"].iloc[0] == "HTTP_500"
    assert len(posts(fake)) == len(messages)  # the failed one was sent once, never again


def test_a_connection_reset_is_not_replayed(fake, clock, api_conn):
    fake.inject(Fault(path=r"chat\.postMessage", reset=True))
    outcomes = post(digest_messages(crossed(1), None, AS_OF), clock)

    assert outcomes["error_code"].iloc[0] == "DELIVERY_UNKNOWN"
    assert "not sent again" in outcomes["error_message"].iloc[0]
    assert len(posts(fake)) == 1


def test_a_refused_connection_is_retried_then_reported_not_sent(clock, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": f"http://127.0.0.1:{port}/api"}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", json.dumps(conn))

    outcomes = post(digest_messages(crossed(1), None, AS_OF), clock)

    assert outcomes["error_code"].iloc[0] == "NOT_SENT"  # safe for the engine to send next run
    assert clock.waits == [0.5, 1.0]


def test_base_url_without_trailing_slash_works(fake, clock, monkeypatch):
    conn = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": f"{fake.url}/api"}}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", json.dumps(conn))
    assert list(post(digest_messages(crossed(1), None, AS_OF), clock)["status"]) == ["created"]


# -- the webhook route ------------------------------------------------------------------------


def test_webhook_errors_map_to_codes(fake, clock, monkeypatch):
    conn = {"conn_type": "slackwebhook", "password": f"{fake.url}/services/T000/B000/WRONG"}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK", json.dumps(conn))
    outcomes = post(digest_messages(None, signals(120), AS_OF), clock, conn_id="slack_webhook")
    assert set(outcomes["error_code"]) == {"no_service"}
    assert len(fake.calls("POST", "/services/")) == 1  # a wrong URL: the rest not sent


# -- through the production path: deliver_run("slack_digest") as the DAG's deliver task runs it ---


@pytest.fixture
def wall_fake():
    """FakeSlack on the monotonic clock: the production client really sleeps between posts."""
    with FakeSlack(channels=["plg-alerts", "plg-digest"]) as server:
        yield server
        assert server.spec_violations == []


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """A deployment delivering to Slack; `connect(conn_json)` sets slack_default."""
    dep = Deployment(tmp_path / "work", "slack")

    def connect(conn: str) -> Deployment:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEFAULT", conn)
        return dep

    dep.connect = connect
    return dep


def posted_keys(fake: FakeSlack) -> list[str]:
    """Every signal key named by a posted message's metadata (a key posted twice shows twice)."""
    return [
        k for m in fake.posted for k in (m.get("metadata") or {}).get("event_payload", {}).get("keys", [])
    ]


def test_sixty_signals_go_out_as_valid_messages_each_signal_once(wall_fake, deployment):
    frame = signals(60)
    result = deployment.connect(slack_connection(wall_fake, TOKEN)).run("slack_digest", signals=frame)
    outcomes = deployment.outcomes("slack_digest")

    assert result["created"] == 60 and set(outcomes["status"]) == {"created"}
    stored = wall_fake.messages("#plg-alerts")
    assert len(stored) >= 3  # journaled in batches of 20 signals: a message or more each
    assert sorted(posted_keys(wall_fake)) == sorted(frame["signal_key"])  # every signal exactly once
    ts_of = {k: m["ts"] for m in stored for k in m["metadata"]["event_payload"]["keys"]}
    assert dict(zip(outcomes["record_key"], outcomes["destination_id"], strict=True)) == ts_of
    for message in stored:
        assert len(message["blocks"]) <= 50
        for block in message["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= MAX_SECTION_TEXT
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= MAX_HEADER_TEXT
    calls = [r.json for r in posts(wall_fake)]
    assert {c["channel"] for c in calls} == {"#plg-alerts"}
    assert {(c["unfurl_links"], c["unfurl_media"]) for c in calls} == {(False, False)}
    assert {r.header("authorization") for r in posts(wall_fake)} == {f"Bearer {TOKEN}"}

    again = deployment.run("slack_digest", signals=frame)  # a rerun: create-once, nothing posted
    assert again["plan"]["unchanged"] == 60 and len(wall_fake.posted) == len(stored)


def test_journaled_batches_keep_the_channel_rate_without_429s(wall_fake, deployment):
    deployment.connect(slack_connection(wall_fake, TOKEN)).run("slack_digest", signals=signals(60))
    refused = len(posts(wall_fake)) - len(wall_fake.posted)  # calls the channel answered 429
    assert refused == 0


def test_a_hostile_organization_name_cannot_ping_or_link(wall_fake, deployment):
    names = [EVIL, "@here team", *[f"Org {i}" for i in range(2, 5)]]
    frame = signals(5, names=names)
    frame.loc[0, "pql_score"] = 99
    result = deployment.connect(slack_connection(wall_fake, TOKEN)).run("slack_digest", signals=frame)

    assert result["created"] == 5
    assert wall_fake.broadcasts() == []
    (message,) = wall_fake.posted
    everything = "\n".join([message["text"], *(json.dumps(b) for b in message["blocks"])])
    assert "&lt;!channel&gt; &amp; &lt;https://x|y&gt;" in everything
    assert "<https://x" not in everything and "<!" not in everything


def test_a_bad_token_fails_every_signal_with_its_code(wall_fake, deployment):
    result = deployment.connect(slack_connection(wall_fake, "xoxb-wrong")).run(
        "slack_digest", signals=signals(60)
    )
    outcomes = deployment.outcomes("slack_digest")

    assert result["failed"] == 60 and set(outcomes["error_code"]) == {"invalid_auth"}
    assert wall_fake.posted == []
    assert 1 <= len(posts(wall_fake)) <= 3  # never retried: at most one refused post per journaled batch


def test_a_bad_token_stops_the_later_journaled_batches(wall_fake, deployment):
    deployment.connect(slack_connection(wall_fake, "xoxb-wrong")).run("slack_digest", signals=signals(60))
    assert len(posts(wall_fake)) == 1


def test_an_unknown_channel_fails_and_another_channel_is_honoured(wall_fake, deployment):
    from plg_bridge.config import SlackSettings

    deployment.connect(slack_connection(wall_fake, TOKEN))
    deployment.settings["slack"] = SlackSettings(channel="#nowhere")
    missing = deployment.run("slack_digest", signals=signals(2))
    assert missing["failed"] == 2
    assert set(deployment.outcomes("slack_digest")["error_code"]) == {"channel_not_found"}

    deployment.settings["slack"] = SlackSettings(channel="#plg-digest")
    other = signals(2, signal="enterprise_interest")
    # the next run retries the two that failed, with the two new ones, in the channel now set
    again = deployment.run("slack_digest", signals=other)
    assert (again["plan"]["create"], again["plan"]["retry"], again["created"]) == (2, 2, 4)
    assert {m["channel"] for m in wall_fake.posted} == {channel_id("plg-digest")}
    assert sorted(posted_keys(wall_fake)) == sorted([*signals(2)["signal_key"], *other["signal_key"]])


def test_webhook_connection_posts_every_signal(wall_fake, deployment):
    conn = {
        "conn_type": "slackwebhook",
        "host": f"{wall_fake.url}/services",
        "password": HOOK.removeprefix("/services"),
    }
    frame = signals(60, names=[EVIL, *[f"Org {i}" for i in range(1, 60)]])
    result = deployment.connect(json.dumps(conn)).run("slack_digest", signals=frame)
    outcomes = deployment.outcomes("slack_digest")

    assert result["created"] == 60
    assert outcomes["destination_id"].isna().all()  # webhooks return no ts
    assert {m["via"] for m in wall_fake.posted} == {"webhook"} and len(wall_fake.posted) >= 3
    assert wall_fake.broadcasts() == []
    names = "\n".join(json.dumps(m["blocks"]) for m in wall_fake.posted)
    assert all(f"Org {i}" in names for i in range(1, 60))  # every signal's organization is in a message


# -- at the channel's rate under a real round trip; look-ups that survive transient faults ----------


def test_posts_are_paced_by_start_so_the_round_trip_does_not_lower_the_rate(monkeypatch):
    """Slack allows one post per second per channel, counted on arrival: with a 150 ms round trip
    the starts are 1 s (+ the margin) apart, not 1 s after each answer (1.15 s)."""
    n = 6
    with FakeSlack(channels=["plg-alerts"]) as fake:
        fake.with_latency(0.15)
        conn = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": f"{fake.url}/api/"}}
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_PACE", json.dumps(conn))
        messages = [{"record_key": f"m{i}", "text": f"message {i}"} for i in range(n)]

        outcomes = post_digest(messages, conn_id="slack_pace", channel="#plg-alerts")

        arrivals = [r.received for r in posts(fake)]
        assert fake.spec_violations == []
    assert list(outcomes["status"]) == ["created"] * n
    assert len(arrivals) == n  # no 429: every post was accepted at its first try
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 1.0  # never two posts within the channel's second
    # 5 gaps of 1 s + margin; paced after each answer they would take 5 x 1.15 s = 5.75 s
    assert arrivals[-1] - arrivals[0] < (n - 1) * (1.0 + PACE_MARGIN + 0.05)


def test_a_lookup_history_read_answered_503_is_retried_and_the_row_confirmed(wall_fake, deployment):
    """The post landed but its answer was lost (502 from the proxy); the look-up's first history
    read gets a 503 and is retried: the signal is delivered with the message's ts, not held."""
    with LosingProxy(wall_fake.url) as proxy:
        proxy.lose(r"^/api/chat\.postMessage$", "502")
        wall_fake.inject(
            Fault(path=r"conversations\.history", response=Response(503, "busy", content_type="text/plain"))
        )
        conn = {"conn_type": "slack", "password": TOKEN, "extra": {"base_url": f"{proxy.url}/api/"}}
        frame = signals(3)

        result = deployment.connect(json.dumps(conn)).run("slack_digest", signals=frame)

        assert [h for _m, _p, h in proxy.lost] == ["502"]  # the fault struck
    history = wall_fake.calls(path=r"conversations\.history")
    assert len(history) >= 2 and wall_fake.faults == []  # the 503 was answered, then read again
    assert result["created"] == 3
    assert len(wall_fake.posted) == 1  # posted once, never again
    ts = wall_fake.posted[0]["ts"]
    rows = state.load(location(str(deployment.work)), "slack_digest").frame
    assert set(rows["status"]) == {"delivered"}
    assert set(rows["destination_id"]) == {ts}


def test_lookup_reads_wait_out_a_429_and_retry_a_reset_and_give_up_on_a_lasting_5xx(fake, clock, api_conn):
    outcomes = post([{"record_key": "k1", "text": "hello"}], clock)
    ts = outcomes["destination_id"].iloc[0]
    records = [{"record_key": "k1", "payload": {}, "sent_at": None}]
    limited = Response(429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": "3"})
    fake.inject(Fault(path=r"conversations\.list", response=limited))
    fake.inject(Fault(path=r"conversations\.history", reset=True))

    found = find_digest(records, channel="#plg-alerts", sleep=clock.sleep)

    assert found == {"k1": ts}
    assert clock.waits[0] == 3.0  # Retry-After, not a backoff guess
    assert len(fake.calls(path=r"conversations\.list")) == 2
    assert len(fake.calls(path=r"conversations\.history")) == 2

    down = Response(503, "down", content_type="text/plain")
    fake.inject(Fault(path=r"conversations\.history", response=down, times=100))
    before = len(fake.calls(path=r"conversations\.history"))
    with pytest.raises(SlackApiError):  # undecided: the journal holds the rows for on-call
        find_digest(records, channel="#plg-alerts", sleep=clock.sleep)
    assert len(fake.calls(path=r"conversations\.history")) - before == 6  # RetryPolicy's max_attempts

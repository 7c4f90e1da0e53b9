"""RestClient, RetryPolicy, Retry-After parsing and RateLimiter, with a fake clock: no real waiting."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from plg_bridge.delivery.transport import (
    FatalDestinationError,
    RateLimiter,
    RestClient,
    RetriesExhausted,
    RetryPolicy,
    parse_retry_after,
)


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def response(status: int, body: object = None, headers: dict[str, str] | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode() if body is not None else b""
    r.headers.update(headers or {})
    r.encoding = "utf-8"
    return r


class ScriptedSession(requests.Session):
    """Answers each request with the next scripted response, or raises the next exception."""

    def __init__(self, script: Iterable[requests.Response | Exception]) -> None:
        super().__init__()
        self.script = list(script)
        self.calls: list[tuple[str, str, float]] = []

    def request(self, method, url, **kwargs):  # type: ignore[override]
        self.calls.append((method, url, kwargs.get("timeout")))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


NO_JITTER = RetryPolicy(jitter="none", base_delay=1.0, max_delay=60.0)


def client(session: requests.Session, clock: FakeClock, **kwargs) -> RestClient:
    kwargs.setdefault("policy", NO_JITTER)
    return RestClient(session, "https://api.example.test/base/", sleep=clock.sleep, **kwargs)


# -- backoff and Retry-After ----------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_full_jitter_scales_it():
    policy = RetryPolicy(base_delay=1.0, max_delay=60.0)
    assert [policy.backoff(n, rand=lambda: 1.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.backoff(4, rand=lambda: 0.25) == 2.0  # full jitter: uniform in [0, ceiling)
    assert policy.backoff(4, rand=lambda: 0.0) == 0.0
    assert RetryPolicy(jitter="none").backoff(3, rand=lambda: 0.0) == 4.0


def test_policy_needs_at_least_one_attempt():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_retry_after_seconds_and_http_date():
    now = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None


# -- rate limiter ---------------------------------------------------------------------------------


def test_limiter_waits_for_the_oldest_call_to_leave_the_window():
    clock = FakeClock()
    limiter = RateLimiter(3, 10.0, clock=clock, sleep=clock.sleep, margin=0)
    for at in (0.0, 1.0, 2.0):
        clock.now = at
        assert limiter.acquire() == 0.0
    clock.now = 4.0
    assert limiter.acquire() == 6.0  # first call (t=0) leaves the window at t=10
    assert clock.sleeps == [6.0]
    clock.now = 25.0
    assert limiter.acquire() == 0.0  # window empty again
    assert clock.sleeps == [6.0]


def test_limiter_rejects_nonsense():
    with pytest.raises(ValueError):
        RateLimiter(0, 10)


# -- RestClient -----------------------------------------------------------------------------------


def test_5xx_is_retried_with_backoff_then_the_success_returned():
    clock = FakeClock()
    session = ScriptedSession([response(503), response(502), response(200, {"ok": True})])
    got = client(session, clock, timeout=12).request("POST", "/things", json={"a": 1})
    assert got.status_code == 200
    assert clock.sleeps == [1.0, 2.0]
    assert session.calls == [("POST", "https://api.example.test/base/things", 12)] * 3


def test_retry_after_header_is_honoured_and_capped():
    clock = FakeClock()
    session = ScriptedSession(
        [
            response(429, headers={"Retry-After": "7"}),
            response(503, headers={"Retry-After": "600"}),
            response(200),
        ]
    )
    client(session, clock).request("GET", "x")
    assert clock.sleeps == [7.0, 60.0]


def test_vendor_wait_hint_wins_over_retry_after_and_backoff():
    clock = FakeClock()
    session = ScriptedSession([response(429, headers={"Retry-After": "7"}), response(200)])
    client(session, clock, wait_hint=lambda r: 0.25).request("GET", "x")
    assert clock.sleeps == [0.25]


def test_hint_none_falls_back_to_backoff():
    clock = FakeClock()
    session = ScriptedSession([response(500), response(200)])
    client(session, clock, wait_hint=lambda r: None).request("GET", "x")
    assert clock.sleeps == [1.0]


def test_non_retryable_4xx_is_returned_to_the_caller_at_once():
    clock = FakeClock()
    session = ScriptedSession([response(400, {"message": "bad"})])
    got = client(session, clock).request("POST", "x")
    assert got.status_code == 400
    assert len(session.calls) == 1
    assert clock.sleeps == []


def test_fatal_response_raises_without_retrying():
    clock = FakeClock()
    session = ScriptedSession([response(429, {"policyName": "DAILY"}), response(200)])
    with pytest.raises(FatalDestinationError) as caught:
        client(session, clock, is_fatal=lambda r: r.json().get("policyName") == "DAILY").request("POST", "x")
    assert caught.value.status == 429
    assert "DAILY" in caught.value.body
    assert len(session.calls) == 1
    assert clock.sleeps == []


def test_exhausted_retries_carry_the_last_status_and_body():
    clock = FakeClock()
    session = ScriptedSession([response(502, {"n": n}) for n in range(4)])
    with pytest.raises(RetriesExhausted) as caught:
        client(session, clock, policy=RetryPolicy(max_attempts=4, jitter="none")).request("POST", "x")
    assert caught.value.status == 502
    assert caught.value.attempts == 4
    assert '"n": 3' in caught.value.body
    assert clock.sleeps == [1.0, 2.0, 4.0]  # no sleep after the last attempt


def test_connection_errors_and_timeouts_are_retried():
    clock = FakeClock()
    session = ScriptedSession(
        [requests.ConnectionError("reset"), requests.ReadTimeout("slow"), response(201)]
    )
    assert client(session, clock).request("POST", "x").status_code == 201
    assert clock.sleeps == [1.0, 2.0]


def test_exhausted_network_errors_have_no_status():
    clock = FakeClock()
    session = ScriptedSession([requests.ConnectionError("down")] * 2)
    with pytest.raises(RetriesExhausted) as caught:
        client(session, clock, policy=RetryPolicy(max_attempts=2, jitter="none")).request("GET", "x")
    assert caught.value.status is None
    assert "ConnectionError" in caught.value.body


def test_non_idempotent_call_is_not_replayed_after_it_may_have_been_sent():
    clock = FakeClock()
    session = ScriptedSession([requests.ReadTimeout("slow"), response(200)])
    with pytest.raises(RetriesExhausted):
        client(session, clock).request("POST", "x", idempotent=False)
    assert len(session.calls) == 1
    # ...but a connect timeout (never sent) and a 429 (refused) are safe to retry
    session = ScriptedSession([requests.ConnectTimeout("no route"), response(429), response(503)])
    got = client(session, clock).request("POST", "x", idempotent=False)
    assert got.status_code == 503  # a 5xx may have been applied: handed back, not replayed
    assert len(session.calls) == 3


def test_limiter_is_acquired_before_every_attempt():
    clock = FakeClock()
    limiter = RateLimiter(2, 10.0, clock=clock, sleep=clock.sleep, margin=0)
    session = ScriptedSession([response(503), response(503), response(200)])
    client(session, clock, limiter=limiter).request("GET", "x")
    # t=0 call, backoff 1 -> t=1 call, backoff 2 -> t=3: window full until t=10 -> limiter waits 7
    assert clock.sleeps == [1.0, 2.0, 7.0]


def test_url_joining():
    rest = RestClient(requests.Session(), "https://h.test/api/")
    assert rest.url("/v1/x") == "https://h.test/api/v1/x"
    assert rest.url("v1/x") == "https://h.test/api/v1/x"
    assert rest.url("https://other.test/y") == "https://other.test/y"


def test_retries_are_logged_with_status_and_wait_but_never_headers(caplog):
    clock = FakeClock()
    session = ScriptedSession([response(503), response(200)])
    session.headers["Authorization"] = "Bearer s3cr3t-token"
    with caplog.at_level(logging.WARNING, logger="plg_bridge.delivery.transport"):
        client(session, clock).request("POST", "/batch")
    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "HTTP 503" in text
    assert "1.00s" in text
    assert "s3cr3t" not in caplog.text


def test_limiter_keeps_a_margin_for_transit_jitter():
    """The vendor counts arrivals, we count grants: the default 50 ms margin keeps the 191st call
    of a 190 / 10 s budget from arriving inside the vendor's window."""
    clock = FakeClock()
    limiter = RateLimiter(2, 10.0, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire(), limiter.acquire()] == [0.0, 0.0]
    assert limiter.acquire() == pytest.approx(10.05)


def test_the_limiter_leaves_to_other_integrations_what_the_vendor_says_they_spent():
    clock = FakeClock()
    limiter = RateLimiter(10, 10.0, clock=clock, sleep=clock.sleep, margin=0.0)
    for _ in range(3):
        limiter.acquire()
    # the vendor counts 8 calls in its window: our 3 and 5 from another integration of the app
    limiter.learn(10, 2, 10.0)
    limiter.acquire()
    limiter.acquire()
    assert clock.now == 0.0  # 5 of ours + 5 of theirs: the budget is full now
    limiter.acquire()
    assert clock.now >= 10.0, "the sixth call waits for the window to pass"


def test_the_limiter_adopts_a_lower_limit_the_vendor_reports_and_ignores_its_own_calls():
    clock = FakeClock()
    limiter = RateLimiter(190, 10.0, clock=clock, sleep=clock.sleep, margin=0.0)
    for _ in range(50):
        limiter.acquire()
    limiter.learn(100, 50, 10.0)  # 50 used: all ours
    assert limiter.max_calls == 100
    for _ in range(50):
        limiter.acquire()
    assert clock.now == 0.0
    limiter.acquire()
    assert clock.now >= 10.0


def test_clients_of_one_credential_share_one_limiter_and_other_credentials_do_not():
    import requests

    from plg_bridge.delivery.transport import credential_key, shared_limiter

    a, b = requests.Session(), requests.Session()
    a.headers["Authorization"] = "Bearer token-a"
    b.headers["Authorization"] = "Bearer token-b"
    first = shared_limiter(("hubspot", "https://x", credential_key(a)), 100, 10.0)
    again = shared_limiter(("hubspot", "https://x", credential_key(a)), 100, 10.0)
    other = shared_limiter(("hubspot", "https://x", credential_key(b)), 100, 10.0)
    assert first is again and first is not other
    assert "token-a" not in credential_key(a)

"""The transport's OAuth 2.0 client-credentials auth object, RestClient's one refresh on a 401,
and the daily budget learned from `Sforce-Limit-Info`: over real HTTP against FakeSalesforce
(its token endpoint and INVALID_SESSION_ID answers) where a server is involved."""

from __future__ import annotations

import logging
import threading

import pytest
import requests

from plg_bridge.delivery.transport import (
    BudgetReserved,
    DailyBudget,
    FatalDestinationError,
    OAuth2ClientCredentials,
    RestClient,
    RetryPolicy,
    TokenRefused,
)
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.server import Fault, Response

CLIENT_ID, CLIENT_SECRET = "plg-client-id", "plg-client-secret"
TOKEN = "/services/oauth2/token"
LIMITS = "/services/data/v67.0/limits"


@pytest.fixture
def fake():
    with FakeSalesforce() as server:
        yield server


def client(fake: FakeSalesforce, secret: str = CLIENT_SECRET) -> tuple[RestClient, OAuth2ClientCredentials]:
    session = requests.Session()
    auth = OAuth2ClientCredentials(
        f"{fake.url}{TOKEN}",
        CLIENT_ID,
        secret,
        session=session,
        name="Salesforce connection 'sf_test'",
        policy=RetryPolicy(max_attempts=2, base_delay=0.01),
    )
    session.auth = auth
    return RestClient(session, fake.url, policy=RetryPolicy(max_attempts=2, base_delay=0.01)), auth


def bearer(request) -> str:
    return (request.header("authorization") or "").removeprefix("Bearer ")


# -- the token ---------------------------------------------------------------------------------


def test_the_token_is_fetched_once_and_every_call_carries_it(fake):
    rest, auth = client(fake)
    for _ in range(3):
        assert rest.request("GET", LIMITS).status_code == 200

    tokens = fake.calls("POST", TOKEN)
    assert len(tokens) == 1
    assert tokens[0].header("authorization") is None  # the credentials travel in the form only
    assert "client_secret=plg-client-secret" in tokens[0].body.decode()
    assert "grant_type=client_credentials" in tokens[0].body.decode()
    sent = {bearer(c) for c in fake.calls("GET", LIMITS)}
    assert len(sent) == 1 and sent <= fake.tokens
    assert auth.instance_url == fake.url  # the token answer's instance_url
    assert auth.fetches == 1


def test_threads_asking_at_once_share_one_fetch(fake):
    fake.with_latency(0.2)  # every thread arrives while the first fetch is still out
    _rest, auth = client(fake)
    start = threading.Barrier(8)
    got: list[str] = []

    def ask() -> None:
        start.wait()
        got.append(auth.token())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(fake.calls("POST", TOKEN)) == 1
    assert len(got) == 8 and len(set(got)) == 1


def test_a_401_fetches_one_new_token_and_sends_the_call_once_more(fake):
    rest, _auth = client(fake)
    rest.request("GET", LIMITS)
    fake.expire_tokens()

    response = rest.request("GET", LIMITS)

    assert response.status_code == 200
    assert len(fake.calls("POST", TOKEN)) == 2
    calls = fake.calls("GET", LIMITS)
    assert len(calls) == 3  # first call, the refused one, its resend
    assert bearer(calls[1]) == bearer(calls[0]) != bearer(calls[2])
    assert bearer(calls[2]) in fake.tokens


def test_a_second_401_after_the_refresh_is_an_error_not_a_loop(fake):
    rest, _auth = client(fake)
    rest.request("GET", LIMITS)
    invalid = Response(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    fake.inject(Fault(path="/limits", response=invalid, times=5))

    with pytest.raises(FatalDestinationError) as raised:
        rest.request("GET", LIMITS)

    assert raised.value.status == 401
    assert "INVALID_SESSION_ID" in raised.value.body
    assert len(fake.calls("POST", TOKEN)) == 2  # one refresh only
    assert len(fake.calls("GET", LIMITS)) == 3  # the first call, the 401, the one resend


def test_a_401_without_a_refreshable_auth_comes_back_as_it_is(fake):
    session = requests.Session()
    session.headers["Authorization"] = "Bearer not-a-token"
    response = RestClient(session, fake.url).request("GET", LIMITS)
    assert response.status_code == 401
    assert fake.calls("POST", TOKEN) == [] and len(fake.calls("GET", LIMITS)) == 1


def test_refused_credentials_raise_once_naming_the_connection_never_the_secret(fake, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "wrong-secret-4f1d"
    rest, auth = client(fake, secret=secret)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def call() -> None:
        start.wait()
        try:
            rest.request("GET", LIMITS)
        except TokenRefused as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(errors) == 4
    assert {e.code for e in errors} == {"OAUTH_INVALID_CLIENT"}
    assert "Salesforce connection 'sf_test'" in str(errors[0])
    assert len(fake.calls("POST", TOKEN)) == 1  # a refusal is not asked again by every thread
    assert fake.calls("GET", LIMITS) == []  # nothing was sent without a token
    for text in (str(errors[0]), repr(errors[0]), repr(auth), caplog.text, errors[0].body):
        assert secret not in text


def test_neither_the_secret_nor_the_token_shows_in_repr_or_logs(fake, caplog):
    caplog.set_level(logging.DEBUG)
    rest, auth = client(fake)
    rest.request("GET", LIMITS)
    fake.expire_tokens()
    rest.request("GET", LIMITS)  # a refresh logs too

    tokens = {bearer(c) for c in fake.calls("GET", LIMITS)}
    assert len(tokens) == 2
    for text in (repr(auth), str(vars(auth).get("answer")), caplog.text):
        assert CLIENT_SECRET not in text
        assert not any(token in text for token in tokens)


def test_the_fingerprint_is_per_credential_and_shared_gives_one_auth_per_app(fake):
    url = f"{fake.url}{TOKEN}"
    a = OAuth2ClientCredentials(url, CLIENT_ID, CLIENT_SECRET)
    assert a.fingerprint == OAuth2ClientCredentials(url, CLIENT_ID, CLIENT_SECRET).fingerprint
    assert a.fingerprint != OAuth2ClientCredentials(url, CLIENT_ID, "other-secret").fingerprint
    assert a.fingerprint != OAuth2ClientCredentials(url, "other-app", CLIENT_SECRET).fingerprint
    assert CLIENT_SECRET not in a.fingerprint

    one = OAuth2ClientCredentials.shared(url, CLIENT_ID, CLIENT_SECRET)
    assert OAuth2ClientCredentials.shared(url, CLIENT_ID, CLIENT_SECRET) is one
    assert OAuth2ClientCredentials.shared(url, CLIENT_ID, "other-secret") is not one
    one.token()
    OAuth2ClientCredentials.shared(url, CLIENT_ID, CLIENT_SECRET).token()
    assert len(fake.calls("POST", TOKEN)) == 1  # the second client of the app reuses the token


# -- the daily budget --------------------------------------------------------------------------


def test_the_budget_stops_once_fewer_calls_remain_than_the_reserve():
    """Limit 1,000 with a 5 % reserve: 50 calls are left to other integrations, so 950 used
    (50 remaining) still sends and 951 used (49 remaining) stops."""
    budget = DailyBudget(0.05, name="Salesforce connection 'x'")
    budget.check()  # nothing learned yet: nothing to stop for
    for used in (10, 600, 949, 950):
        budget.learn(used, 1000)
        budget.check()
    budget.learn(951, 1000)
    with pytest.raises(BudgetReserved) as raised:
        budget.check()
    assert raised.value.code == "DAILY_BUDGET_RESERVED"
    assert "951/1000" in str(raised.value) and "Salesforce connection 'x'" in str(raised.value)
    budget.learn(940, 1000)  # an answer that left earlier arrives late: the higher count stands
    assert budget.exhausted() and budget.remaining == 49


def test_no_reserve_never_stops_and_a_new_limit_is_taken_as_reported():
    unreserved = DailyBudget(0.0)
    unreserved.learn(1000, 1000)
    unreserved.check()

    budget = DailyBudget(0.05)
    budget.learn(990, 1000)
    assert budget.exhausted()
    budget.learn(990, 5000)  # the customer bought more calls: 4,010 remain, 250 reserved
    assert not budget.exhausted() and budget.reserved() == 250


def test_a_usage_learned_long_ago_no_longer_stops_the_next_call():
    now = [0.0]
    budget = DailyBudget(0.05, fresh_for=300, clock=lambda: now[0])
    budget.learn(999, 1000)
    assert budget.exhausted()
    now[0] = 301.0  # the vendor's count is rolling: the next call finds out again
    assert not budget.exhausted()


@pytest.mark.parametrize("reserve", [-0.1, 1.0])
def test_a_reserve_outside_zero_to_one_is_refused(reserve):
    with pytest.raises(ValueError, match="reserve"):
        DailyBudget(reserve)


def test_a_token_that_cannot_be_had_leaves_the_call_unsent_for_the_journal(fake):
    """`before_send` marks rows in flight (the exactly-once journal): a refused token must fail
    the call before that, so the rows are not sent rather than of unknown outcome."""
    rest, _auth = client(fake, secret="wrong")
    departed: list[str] = []
    with pytest.raises(TokenRefused):
        rest.request("GET", LIMITS, before_send=lambda: departed.append("left"))
    assert departed == []
    assert fake.calls("GET", LIMITS) == []

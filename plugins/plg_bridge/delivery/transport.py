"""The one retrying REST client every destination (HubSpot, Salesforce, Intercom, Slack) reuses.

Transport only: the client knows nothing of a vendor's payloads. A vendor plugs in two callbacks:
`wait_hint(response)` turns its rate-limit headers into a wait, and `is_fatal(response)` marks
errors that must not be retried in this run (HubSpot's DAILY limit, Salesforce's
REQUEST_LIMIT_EXCEEDED). Non-retryable 4xx come back to the caller, which maps them to row
outcomes. Session (auth), clock and sleep are injected so tests run against real HTTP without
spending real time on backoff.

Auth is an object on the session: `BearerAuth` (a static token) or `OAuth2ClientCredentials`
(fetched on first use, shared by threads and, via `shared`, by the clients of one credential);
after a 401 RestClient asks an auth that `can_refresh` for a new token and sends the call once
more. `DailyBudget` turns a vendor's daily usage header into a stop at a reserve left to the
customer's other integrations (Salesforce's `Sforce-Limit-Info`).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import requests
import requests.auth
from urllib3.exceptions import NewConnectionError

log = logging.getLogger(__name__)

DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_BODY_SNIPPET = 500


class DestinationError(RuntimeError):
    """A destination call failed for good; `status`/`body` describe the last answer (if any)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class FatalDestinationError(DestinationError):
    """The destination refused in a way retrying cannot fix in this run (e.g. a daily quota)."""


class RetriesExhausted(DestinationError):
    """Every attempt failed with a retryable status or a network error."""

    code = "RETRIES_EXHAUSTED"  # the rows' error code

    def __init__(self, message: str, *, status: int | None, body: str, attempts: int) -> None:
        super().__init__(message, status=status, body=body)
        self.attempts = attempts


class DestinationUnreachable(RetriesExhausted):
    """The destination stopped answering: an earlier call of this client got no answer on any
    attempt (connection refused, timeouts), so later calls fail at once, unsent, instead of each
    spending every retry; their rows wait as dead letters for the next run."""

    code = "DESTINATION_UNREACHABLE"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (AWS style): wait ~ U(0, min(max, base * 2**n))."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    jitter: Literal["full", "none"] = "full"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Wait before retry number `attempt` (1-based) when the server gave no hint."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling * rand() if self.jitter == "full" else ceiling


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RateLimiter:
    """Client-side sliding window: at most `max_calls` acquisitions in any `period` seconds.

    Keeps us under a vendor's rolling limit (HubSpot 190 / 10 s) instead of learning it from 429s,
    which count against the vendor's error budget. Share one instance between clients that draw
    on the same vendor quota. Thread-safe; callers queue behind the lock.
    """

    def __init__(
        self,
        max_calls: int,
        period: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = 0.05,
    ) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("max_calls must be >= 1 and period > 0")
        # The vendor stamps a call when it arrives, we when we grant it: a few ms of transit
        # jitter would otherwise land a call inside the window and cost a 429 plus a full wait.
        # The margin grows with the spread of the round trips observed (`note_round_trip`):
        # with many calls in flight on a busy worker, transit varies by more than a few ms.
        self.max_calls, self.window, self.margin = max_calls, period, margin
        self._rtt: float | None = None
        self._rtt_spread = 0.0
        self._clock, self._sleep = clock, sleep
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self._others, self._others_until = 0, -math.inf  # budget other integrations are using

    def acquire(self) -> float:
        """Block until a call is allowed; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                while self._calls and self._calls[0] <= now - 2 * self.period:  # kept for learn()
                    self._calls.popleft()
                window = [c for c in self._calls if c > now - self.period]
                if len(window) < self._allowed(now):
                    self._calls.append(now)
                    return waited
                wait = window[0] + self.period - now if window else self._others_until - now
                wait = max(wait, 0.001)
                self._sleep(wait)
                waited += wait

    @property
    def period(self) -> float:
        """The window the client keeps its calls in: the vendor's plus the transit margin."""
        return self.window + max(self.margin, self._rtt_spread)

    def note_round_trip(self, seconds: float) -> None:
        """One call's round trip: its spread (mean absolute deviation, smoothed) widens the margin."""
        with self._lock:
            if self._rtt is None:
                self._rtt = seconds
                return
            self._rtt_spread = 0.9 * self._rtt_spread + 0.1 * abs(seconds - self._rtt)
            self._rtt = 0.9 * self._rtt + 0.1 * seconds

    def spare(self) -> int:
        """Calls the window allows right now without waiting."""
        with self._lock:
            now = self._clock()
            return max(0, self._allowed(now) - sum(1 for c in self._calls if c > now - self.period))

    def _allowed(self, now: float) -> int:
        if now >= self._others_until:
            return self.max_calls
        return max(1, self.max_calls - self._others)

    def learn(self, limit: int | None, remaining: int | None, window: float | None) -> None:
        """What the vendor's headers say of the budget: calls other integrations of the same app
        spent in its window are left to them until that window has passed, and a lower limit
        than configured (another tier) is adopted.

        The vendor stamps a call when it arrives, we when we grant it, and answers come back
        while other calls of ours are in transit: so our share is counted over one and a half
        windows, which can only underestimate the others (never slow us down for our own calls).
        """
        if limit is None or remaining is None:
            return
        with self._lock:
            now = self._clock()
            if 0 < limit < self.max_calls:
                log.warning(
                    "vendor reports a limit of %d calls per window (configured %d): adopting it",
                    limit,
                    self.max_calls,
                )
                self.max_calls = limit
            span = window or self.period
            ours = sum(1 for c in self._calls if c > now - 1.5 * span)
            others = limit - remaining - ours
            if others > 0:
                self._others = min(others, self.max_calls - 1)
                self._others_until = now + span


_SHARED: dict[tuple, RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(key: tuple, max_calls: int, period: float, **kwargs: Any) -> RateLimiter:
    """The one limiter of a vendor credential in this process (`key`: vendor, host, credential).

    Every client built for the same app/token draws on it, so two targets running at once in
    one worker share one budget. Across workers the Airflow pool of the vendor (one slot:
    scripts/create_pools.py) runs its targets one after another, each with the whole budget;
    other integrations of the customer show in the vendor's headers (`RateLimiter.learn`).
    """
    with _SHARED_LOCK:
        limiter = _SHARED.get(key)
        if limiter is None or limiter.max_calls > max_calls or limiter.window < period:
            limiter = _SHARED[key] = RateLimiter(max_calls, period, **kwargs)
        return limiter


def credential_key(session: requests.Session) -> str:
    """A fingerprint of the session's credential (never the credential itself): the key of its
    shared rate budget."""
    fingerprint = getattr(session.auth, "fingerprint", None)
    if fingerprint:
        return str(fingerprint)
    secret = str(session.headers.get("Authorization") or "")
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class BearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer <token>` on every request (HubSpot, Intercom, Slack-style APIs).

    The one way a bearer token is attached: clients take it as their session's auth. Its repr
    never shows the token; `fingerprint` names the credential (its rate budget) without it.
    """

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("a bearer token is required")
        self._token = token
        self.fingerprint = hashlib.sha256(token.encode()).hexdigest()[:16]

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return f"BearerAuth(<{self.fingerprint}>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BearerAuth) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)


class TokenRefused(FatalDestinationError):
    """The token endpoint refused the credentials (invalid_client, invalid_grant, ...): nothing
    in this run can fix that. `code` is the OAuth error (OAUTH_INVALID_CLIENT)."""

    def __init__(self, message: str, *, code: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message, status=status, body=body)
        self.code = code


REFUSAL_HOLD = 60.0  # seconds a refused credential is not asked again


class OAuth2ClientCredentials(requests.auth.AuthBase):
    """OAuth 2.0 client credentials as a session's auth: `Authorization: Bearer <access token>`.

    The token is fetched on first use (one fetch however many threads ask at once) and kept;
    `refresh(request)` replaces it after a 401 (RestClient asks, once per call). The token
    answer's other fields stay readable (`answer`; Salesforce's `instance_url`). The secret and
    the token never appear in repr, logs or errors; `fingerprint` (token URL, client id, secret)
    keys the credential's rate budget and, through `shared`, its one token per process.

    The token call goes through a RestClient of its own (retries of 5xx/429/network errors);
    an answer of 400/401/403 (wrong secret, revoked app) raises `TokenRefused` naming `name`.
    """

    can_refresh = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session | None = None,
        extra: Mapping[str, str] | None = None,
        name: str = "",
        policy: RetryPolicy | None = None,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token_url or "://" not in token_url:
            raise ValueError(f"token URL {token_url!r} needs a scheme")
        if not client_id or not client_secret:
            raise ValueError("OAuth2 client credentials need a client id and a client secret")
        self.token_url = token_url
        self.name = name or token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            **dict(extra or {}),
        }
        self.fingerprint = hashlib.sha256(f"{token_url}\0{client_id}\0{client_secret}".encode()).hexdigest()[
            :16
        ]
        self._session, self._policy, self._timeout, self._sleep = session, policy, timeout, sleep
        self._token: str | None = None
        self.answer: dict[str, Any] = {}  # the token answer without the token
        self.fetches = 0  # token answers read
        self.fetches_tried = 0
        self._failure: DestinationError | None = None  # the last fetch's, for threads that waited on it
        self._failed_at = -math.inf
        self._lock = threading.Lock()
        self._rest: RestClient | None = None

    @classmethod
    def shared(
        cls, token_url: str, client_id: str, client_secret: str, **kwargs: Any
    ) -> OAuth2ClientCredentials:
        """The one auth object of this credential in the process: the targets of one app (and
        every run in a long-lived worker) share its token instead of fetching one each."""
        probe = cls(token_url, client_id, client_secret, **kwargs)
        with _SHARED_LOCK:
            return _SHARED_AUTH.setdefault(probe.fingerprint, probe)

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url!r}, <{self.fingerprint}>)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if _same_endpoint(request.url, self.token_url):
            return request  # the token call itself carries the credentials in its form
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        """The current access token, fetched on first use. Threads that waited while a fetch
        failed get that failure instead of asking again (one refused call, not one per thread)."""
        seen = self.fetches_tried
        with self._lock:
            if self._token is None:
                if self._failure is not None and (self.fetches_tried > seen or self._holding()):
                    raise self._failure
                self._fetch()
            return cast("str", self._token)

    def _holding(self) -> bool:
        """A refusal holds for `REFUSAL_HOLD` seconds: the targets and batches of a run do not
        each ask again, and a credential fixed at the vendor works on the next run."""
        return isinstance(self._failure, TokenRefused) and time.monotonic() < self._failed_at + REFUSAL_HOLD

    @property
    def instance_url(self) -> str | None:
        """The token answer's `instance_url` (Salesforce: where data calls go); fetches the token
        on first use."""
        self.token()
        url = self.answer.get("instance_url")
        return str(url).rstrip("/") if url else None

    def refresh(self, request: requests.PreparedRequest) -> bool:
        """After a 401 to `request`: a new token unless another thread already replaced the one
        it carried. False when the request did not carry one of ours (nothing to refresh)."""
        sent = str(request.headers.get("Authorization") or "")
        if not sent.startswith("Bearer "):
            return False
        seen = self.fetches_tried
        with self._lock:
            if (
                self._token is None
                and self._failure is not None
                and (self.fetches_tried > seen or self._holding())
            ):
                raise self._failure
            if self._token is None or sent == f"Bearer {self._token}":
                self._token = None
                self._fetch()
        return True

    def _fetch(self) -> None:
        self.fetches_tried += 1
        self._failure = None
        try:
            self._request_token()
        except DestinationError as exc:
            self._failure, self._failed_at = exc, time.monotonic()
            raise

    def _request_token(self) -> None:
        from plg_bridge.redact import mask

        if self._rest is None:  # the caller's session (its proxies, TLS settings), built once
            self._rest = RestClient(
                self._session or requests.Session(),
                self.token_url,
                policy=self._policy,
                timeout=self._timeout,
                sleep=self._sleep,
            )
        response = self._rest.request(
            "POST", self.token_url, data=self._form, headers={"Accept": "application/json"}
        )
        self.fetches += 1
        body = json_body(response)
        if response.status_code == 200 and isinstance(body, Mapping) and body.get("access_token"):
            token = str(body["access_token"])
            mask(token)  # a secret obtained at run time: Airflow does not know it
            self._token = token
            self.answer = {k: v for k, v in body.items() if k not in ("access_token", "refresh_token")}
            log.info("%s: access token obtained", self.name)
            return
        error = body.get("error") if isinstance(body, Mapping) else None
        what = (
            f"{error}: {body.get('error_description') or error}"
            if error and isinstance(body, Mapping)
            else f"HTTP {response.status_code}"
        )
        message = f"{self.name}: the token endpoint refused the client credentials ({what})"
        if response.status_code in (400, 401, 403):  # wrong credentials or app setup: not fixable in-run
            code = f"OAUTH_{str(error).upper()}" if error else f"HTTP_{response.status_code}"
            raise TokenRefused(message, code=code, status=response.status_code, body=body_snippet(response))
        raise DestinationError(message, status=response.status_code, body=body_snippet(response))


_SHARED_AUTH: dict[str, OAuth2ClientCredentials] = {}


def _same_endpoint(url: str | None, other: str) -> bool:
    return (url or "").split("?", 1)[0].rstrip("/") == other.split("?", 1)[0].rstrip("/")


class BudgetReserved(FatalDestinationError):
    """What is left of a daily budget is reserved for the customer's other integrations."""

    code = "DAILY_BUDGET_RESERVED"


class DailyBudget:
    """A daily request budget shared with the customer's other integrations, learned from the
    vendor's usage headers (Salesforce's `Sforce-Limit-Info: api-usage=USED/LIMIT`).

    The vendor counts every integration's calls; once fewer than `reserve` of the limit remain
    (a fraction, e.g. 0.05), `check()` raises `FatalDestinationError` so this run stops and
    leaves the rest to the others: the rows wait as dead letters for the next run. Thread-safe.
    """

    def __init__(
        self,
        reserve: float = 0.05,
        *,
        name: str = "destination",
        fresh_for: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= reserve < 1:
            raise ValueError("reserve must be a fraction in [0, 1)")
        self.reserve, self.name = reserve, name
        self.used: int | None = None
        self.limit: int | None = None
        # The vendor's count is rolling (Salesforce: the last 24 h): a usage learned longer ago
        # than `fresh_for` no longer stops anything, and the next call learns it again.
        self.fresh_for, self._clock = fresh_for, clock
        self._learned_at = -math.inf
        self._lock = threading.Lock()

    def learn(self, used: int, limit: int) -> None:
        """One answer's usage; the highest recent count wins (answers arrive out of order)."""
        with self._lock:
            now = self._clock()
            if self.limit != limit or now - self._learned_at > self.fresh_for:
                self.used, self.limit = used, limit
            else:
                self.used = max(self.used or 0, used)
            self._learned_at = now

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None or self.used is None else max(0, self.limit - self.used)

    def reserved(self) -> int:
        """Calls left to the customer's other integrations."""
        return math.ceil(self.reserve * (self.limit or 0))

    def exhausted(self) -> bool:
        """Fewer calls remain than the reserve (as last learned, if recently)."""
        remaining = self.remaining
        if remaining is None or self.reserve <= 0 or self._clock() - self._learned_at > self.fresh_for:
            return False
        return remaining < self.reserved()

    def check(self) -> None:
        """Raise `FatalDestinationError` once the remaining calls are below the reserve."""
        if self.exhausted():
            raise BudgetReserved(
                f"{self.name}: daily API budget at {self.used}/{self.limit} calls; the last "
                f"{self.reserved()} ({self.reserve:.0%}) are left to the customer's other integrations; "
                "the rest is retried next run"
            )


def bearer_session(session: requests.Session | None, token: str | None, what: str) -> requests.Session:
    """`session` (or a new one) authorized with `token`; a session that already carries a
    `BearerAuth` keeps it. Raises when there is neither."""
    session = session or requests.Session()
    if token:
        session.auth = BearerAuth(token)
    if not isinstance(session.auth, BearerAuth):
        raise ValueError(f"{what} needs a token (or a session with a BearerAuth)")
    return session


def paginate(
    first: str, fetch: Callable[[str], Mapping[str, Any]], next_of: Callable[[Mapping[str, Any]], str | None]
) -> Iterator[Mapping[str, Any]]:
    """The pages of a paged resource: `fetch(path)` reads one page (and raises on failure),
    `next_of(page)` names the next one (None: the last). Salesforce SOQL follows
    `nextRecordsUrl`; HubSpot's `paging.next.after` and Slack's `next_cursor` fit the same shape."""
    path: str | None = first
    while path:
        page = fetch(path)
        yield page
        path = next_of(page)


def json_body(response: requests.Response) -> Any:
    """The response's JSON, or None when it has none (vendors answer some errors in HTML)."""
    try:
        return response.json()
    except ValueError:
        return None


def header_number(response: requests.Response, name: str, kind: type = float) -> Any:
    """A vendor's numeric header (rate-limit hints), or None when absent or not a number."""
    try:
        return kind(response.headers[name])
    except (KeyError, ValueError):
        return None


def body_snippet(response: requests.Response) -> str:
    """The start of a response body, for error messages: connection secrets stripped first, since
    a vendor or proxy may echo the request's headers (plg_bridge.redact)."""
    from plg_bridge.redact import strip_secrets

    try:
        # Redact a little more than is kept, not the whole body: a 100-record answer is tens of
        # kilobytes, and this runs for every failed call. A secret cut at the slice's end lies
        # beyond what is kept (secrets are shorter than the margin).
        return strip_secrets(response.text[: _BODY_SNIPPET + 300])[:_BODY_SNIPPET]
    except Exception:  # undecodable body: the status still tells the story
        return ""


_CUTOFF: list[dict[str, str]] = []  # open cut-off scopes: base URL -> why it is cut off


@contextlib.contextmanager
def cutoff_scope() -> Iterator[None]:
    """Within it, a destination one client found unreachable is cut off for every client (the
    targets of one run, the journaled batches of one target); outside, per client. Nested scopes
    share the outermost one."""
    if _CUTOFF:
        yield
        return
    _CUTOFF.append({})
    try:
        yield
    finally:
        _CUTOFF.clear()


# The answer began and then broke off (body cut, bad chunking): the request reached the server.
_CUT_ANSWER = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (safe to replay anything)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class RestClient:
    """A `requests.Session` bound to a base URL, with retries, backoff and a rate limiter.

    `wait_hint(response) -> seconds | None` lets a vendor derive the wait from its own headers;
    otherwise `Retry-After` is honoured, otherwise exponential backoff. Hinted waits are capped
    at `policy.max_delay`. `is_fatal(response)` turns a response into `FatalDestinationError`.
    """

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        *,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        wait_hint: Callable[[requests.Response], float | None] | None = None,
        is_fatal: Callable[[requests.Response], bool] | None = None,
        rate_headers: Callable[[requests.Response], tuple[int | None, int | None, float | None]]
        | None = None,
        retry_if: Callable[[requests.Response], bool] | None = None,
    ) -> None:
        self.session, self.base_url = session, base_url
        # Several calls in flight (base.send_batches) need as many pooled connections, or each
        # extra call opens and drops one. Retries are this client's, not urllib3's: total=0.
        pooled = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
        session.mount("https://", pooled)
        session.mount("http://", pooled)
        self.rate_headers = rate_headers  # (limit, remaining, window s) from a vendor's headers
        self.retry_if = retry_if  # a vendor's transient answers beyond the retry statuses
        # calls sleeping out a retry backoff: not on the wire, so they hold no in-flight slot
        self.waiting = 0
        self._waiting_lock = threading.Lock()
        self.policy = policy or RetryPolicy()
        self.limiter, self.timeout, self.sleep = limiter, timeout, sleep
        self.wait_hint, self.is_fatal = wait_hint, is_fatal
        self.unreachable: str | None = None  # why later calls are not sent (DestinationUnreachable)

    def url(self, path: str) -> str:
        if "://" in path:
            return path
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        idempotent: bool = True,
        before_send: Callable[[], None] | None = None,
    ) -> requests.Response:
        """Send one logical call; returns the first non-retryable response.

        With `idempotent=False` (e.g. creating a message) a network error is retried only when
        the request never left (connect failures); 429 is always safe to retry. `before_send` runs
        right before each attempt leaves, after the rate limiter's wait (the exactly-once journal
        records the request as in flight there). An answer cut mid-body counts as no answer.

        Raises `FatalDestinationError` when `is_fatal` says so, `RetriesExhausted` when every
        attempt failed, `DestinationUnreachable` (without sending) once an earlier call of this
        client got no answer on any attempt.
        """
        url = self.url(path)
        if self.unreachable is None and _CUTOFF:  # another client of this run found it unreachable
            self.unreachable = _CUTOFF[-1].get(self.base_url)
        if self.unreachable is not None:
            raise DestinationUnreachable(
                f"{method} {path}: not sent: {self.unreachable}", status=None, body="", attempts=0
            )
        attempts = self.policy.max_attempts
        status: int | None = None
        body = ""
        refreshed = False  # one new token per call (an auth that can refresh, after a 401)
        attempt = 0
        while attempt < attempts:
            attempt += 1
            if self.limiter is not None:
                self.limiter.acquire()
            if before_send is not None:
                ready = getattr(self.session.auth, "token", None)
                if callable(ready):  # a token fetch that fails must not count the call as sent
                    ready()
                before_send()
            try:
                sent_at = time.monotonic()
                response = self.session.request(
                    method, url, json=json, data=data, headers=dict(headers or {}), timeout=self.timeout
                )
                if self.limiter is not None and hasattr(self.limiter, "note_round_trip"):
                    self.limiter.note_round_trip(time.monotonic() - sent_at)
            except (requests.Timeout, requests.ConnectionError, *_CUT_ANSWER) as exc:
                status, body = None, f"{type(exc).__name__}: {exc}"
                if not idempotent and not _never_sent(exc):
                    lost = RetriesExhausted(
                        f"{method} {path}: {type(exc).__name__} on a non-idempotent call; not replayed",
                        status=None,
                        body=body,
                        attempts=attempt,
                    )
                    lost.code = "DELIVERY_UNKNOWN"  # it may have reached the vendor
                    raise lost from exc
                reason = type(exc).__name__
                wait = self.policy.backoff(attempt)
            else:
                if self.rate_headers is not None and self.limiter is not None:
                    self.limiter.learn(*self.rate_headers(response))
                if response.status_code == 401 and getattr(self.session.auth, "can_refresh", False):
                    if refreshed:
                        raise FatalDestinationError(
                            f"{method} {path}: HTTP 401 with a freshly fetched token: the credentials "
                            "are not accepted",
                            status=401,
                            body=body_snippet(response),
                        )
                    if self.session.auth.refresh(response.request):  # type: ignore[union-attr]
                        log.info("%s %s: HTTP 401, new token, sending again", method, path)
                        refreshed = True
                        attempt -= 1  # a 401 applied nothing: the resend is not a retry
                        continue
                if self.is_fatal is not None and self.is_fatal(response):
                    raise FatalDestinationError(
                        f"{method} {path}: HTTP {response.status_code} is fatal for this run",
                        status=response.status_code,
                        body=body_snippet(response),
                    )
                retryable = response.status_code in self.policy.retry_statuses or (
                    self.retry_if is not None and self.retry_if(response)
                )
                if not retryable or (not idempotent and response.status_code != 429):
                    return response
                status, body = response.status_code, body_snippet(response)
                reason = f"HTTP {status}"
                wait = self._wait_for(response, attempt)
            if attempt == attempts:
                break
            log.warning("%s %s: %s, retry %d/%d in %.2fs", method, path, reason, attempt, attempts - 1, wait)
            with self._waiting_lock:
                self.waiting += 1
            try:
                self.sleep(wait)
            finally:
                with self._waiting_lock:
                    self.waiting -= 1
        if status is None:  # no answer on any attempt: cut the destination off for this client
            self.unreachable = (
                f"{self.base_url} stopped answering ({reason} on all {attempts} attempts of an earlier call); "
                "retried next run"
            )
            log.error("%s: later calls of this run fail at once, unsent", self.unreachable)
            if _CUTOFF:
                _CUTOFF[-1][self.base_url] = self.unreachable
        exhausted = RetriesExhausted(
            f"{method} {path}: gave up after {attempts} attempts (last: {reason}) {body[:200]}".rstrip(),
            status=status,
            body=body,
            attempts=attempts,
        )
        if not idempotent:  # every attempt was refused unsent (connect failure, 429): nothing was made
            exhausted.code = "NOT_SENT"
        raise exhausted

    def _wait_for(self, response: requests.Response, attempt: int) -> float:
        hint = self.wait_hint(response) if self.wait_hint is not None else None
        if hint is None:
            hint = parse_retry_after(response.headers.get("Retry-After"))
        if hint is None:
            return self.policy.backoff(attempt)
        return min(max(0.0, hint), self.policy.max_delay)

"""Intercom destination: PQL scores onto companies, tags for account signals, data events for
person-level signals (so Intercom series can fire on them).

Three layers, kept apart so each can be tested alone:

- pure mapping: `company_records`, `tag_records`, `event_records` (frames -> records
  `{record_key, org_id, payload}` whose payload is exactly the body of one Intercom call) and
  `error_detail` (an `error.list` answer -> code and message);
- transport: `IntercomClient`, a thin wrapper over `RestClient` that sends the bearer token and
  `Intercom-Version`, follows `X-RateLimit-*` (waits for the reset on 429 and pauses before the
  next call when the window is spent) and turns every call into one outcome per record;
- Airflow glue: `IntercomHook` (an `HttpHook`; the one place the connection is read),
  `IntercomClient.from_connection` and `deliver_companies` / `deliver_tags` / `deliver_events`.

Idempotency: `POST /companies` creates or updates on `company_id`; tagging a company twice
leaves one tag; Intercom ignores an event with the same user, name and `created_at` (the mapping
derives `created_at` from the signal, so a replay is a no-op). Every call can therefore be
retried on 429/5xx/timeouts. Tags and events are still create-once targets for the engine, which
guards them with their record keys (the signal's dedupe key).

Airflow and pandas are imported lazily: this module is imported at DAG parse time.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

import requests

from plg_bridge.delivery.http import (
    DestinationError,
    RateLimiter,
    RestClient,
    RetriesExhausted,
    RetryPolicy,
    bearer_auth,
    body_snippet,
    json_body,
)
from plg_bridge.delivery.outcomes import RowOutcome, outcomes_frame
from plg_bridge.delivery.payload import SCORE_COLUMNS
from plg_bridge.delivery.payload import missing as _missing

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "intercom_default"
DEFAULT_VERSION = "2.11"  # any of 2.11 ... 2.16 works for these endpoints; keep it configurable
DEFAULT_REGION = "us"
REGION_HOSTS = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}
DEFAULT_CALLS_PER_10S = 1666  # 10,000 calls / min per app, enforced in 10-second windows
MAX_TAG_COMPANIES = 100  # companies per tag call (not documented; one call per company on errors)
MAX_METADATA_KEYS = 10  # Intercom keeps the first ten metadata keys of an event
MAX_METADATA_TEXT = 255

SIGNAL_COLUMNS = ("signal_key", "signal", "org_id", "occurred_at")

# Tag per signal; "{provider}" is the signal's detail, normalised (lower case, no spaces).
DEFAULT_TAGS: Mapping[str, str] = {
    "integration_connected": "integration:{provider}",
    "enterprise_interest": "enterprise-interest",
}
# Data event per person-level signal.
DEFAULT_EVENTS: Mapping[str, str] = {"aha_reached": "aha-moment-reached"}
# Which identifier names the person on an event, in order of preference.
DEFAULT_IDENTIFY_BY = ("user_id", "email")


def _attribute(name: str, data_type: str, description: str) -> dict[str, str]:
    return {"name": name, "model": "company", "data_type": data_type, "description": description}


COMPANY_ATTRIBUTES: tuple[dict[str, str], ...] = (
    _attribute("plg_pql_score", "integer", "Product-qualified-lead score (plg-bridge)."),
    _attribute("plg_is_pql", "boolean", "Whether the score crossed the PQL threshold (plg-bridge)."),
    _attribute("plg_events_this_week", "integer", "Product events, last 7 days (plg-bridge)."),
    _attribute("plg_events_last_week", "integer", "Product events, prior 7 days (plg-bridge)."),
    _attribute("plg_active_creators", "integer", "Members who created content this week (plg-bridge)."),
    _attribute("plg_integrations_connected", "integer", "Connected integrations (plg-bridge)."),
    _attribute("plg_scored_at", "date", "Day the PQL score was computed (plg-bridge)."),
    _attribute("plg_last_signal", "string", "Latest PLG signal of the organization (plg-bridge)."),
    _attribute("plg_last_signal_at", "date", "When the latest PLG signal happened (plg-bridge)."),
)
ATTRIBUTE_TYPES = {a["name"]: a["data_type"] for a in COMPANY_ATTRIBUTES}


# -- pure mapping: values ---------------------------------------------------------------------


def _integer(value: Any) -> int | None:
    """A JSON integer (numpy ints and integral floats included); None when missing or not a number."""
    if _missing(value) or isinstance(value, str | bytes):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return math.floor(number + 0.5)


def _boolean(value: Any) -> bool | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "t", "yes", "y", "1"}:
            return True
        if lowered in {"false", "f", "no", "n", "0"}:
            return False
        return None
    return bool(value)


def _text(value: Any, limit: int | None = None) -> str | None:
    if _missing(value):
        return None
    text = " ".join(str(value).split())
    if limit is not None:
        text = text[:limit]
    return text or None


def unix_time(value: Any) -> int | None:
    """Seconds since the epoch for a timestamp / datetime / date / ISO text (naive = UTC)."""
    if _missing(value):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(UTC)
    return int(stamp.timestamp())


def _day(as_of: str | date | datetime | None) -> int | None:
    """Midnight UTC of `as_of`, as a unix time (Intercom date attributes take unix times)."""
    if as_of is None:
        return None
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    if not isinstance(as_of, date):
        as_of = date.fromisoformat(str(as_of)[:10])
    return int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp())


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks columns: {', '.join(missing)}")


def _rows(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return cast("list[dict[str, Any]]", frame.to_dict("records"))


# -- pure mapping: companies ------------------------------------------------------------------


def _latest_signals(signals: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """org_id -> its latest signal row (ties broken by signal_key, so the choice is stable)."""
    latest: dict[str, tuple[tuple[int, str], dict[str, Any]]] = {}
    for row in _rows(signals):
        if _missing(row.get("org_id")):
            continue
        org = str(row["org_id"])
        rank = (unix_time(row.get("occurred_at")) or 0, str(row.get("signal_key") or ""))
        if org not in latest or rank > latest[org][0]:
            latest[org] = (rank, row)
    return {org: row for org, (_rank, row) in latest.items()}


def _signal_attributes(row: Mapping[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {}
    return {
        "plg_last_signal": _text(row.get("signal"), 255),
        "plg_last_signal_at": unix_time(row.get("occurred_at")),
    }


def company_records(
    scores: pd.DataFrame,
    signals: pd.DataFrame | None = None,
    *,
    as_of: str | date | datetime | None = None,
) -> list[dict[str, Any]]:
    """One `POST /companies` body per organization, keyed by `org_id` (= Intercom `company_id`).

    Scores give the PQL attributes; signals add the organization's latest signal and bring in
    organizations that have signals but no score row (so their tags have a company to land on).
    Missing values are left out rather than sent as null, which would clear them in Intercom.
    `as_of` adds `plg_scored_at`: leave it None for diffed delivery, or every organization's
    payload changes every day.
    """
    _require(scores, SCORE_COLUMNS, "scores")
    if scores["org_id"].isna().any():
        raise ValueError(f"{int(scores['org_id'].isna().sum())} scores rows have no org_id")
    if signals is not None and not signals.empty:
        _require(signals, SIGNAL_COLUMNS, "signals")
    latest = _latest_signals(signals)
    names = {
        str(r["org_id"]): _text(r.get("org_name"), 255)
        for r in _rows(signals)
        if not _missing(r.get("org_id")) and "org_name" in r
    }
    scored_at = _day(as_of)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in _rows(scores[list(SCORE_COLUMNS)]):
        org = str(row["org_id"])
        seen.add(org)
        attributes = {
            "plg_pql_score": _integer(row["pql_score"]),
            "plg_is_pql": _boolean(row["is_pql"]),
            "plg_events_this_week": _integer(row["events_this_week"]),
            "plg_events_last_week": _integer(row["events_last_week"]),
            "plg_active_creators": _integer(row["active_creators"]),
            "plg_integrations_connected": _integer(row["integrations_connected"]),
            "plg_scored_at": scored_at,
            **_signal_attributes(latest.get(org)),
        }
        name = _text(row["org_name"], 255) or names.get(org)
        records.append(_company_record(org, name, attributes))
    for org in sorted(set(latest) - seen):  # organizations known only from their signals
        records.append(_company_record(org, names.get(org), _signal_attributes(latest[org])))
    return records


def _company_record(org: str, name: str | None, attributes: Mapping[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {"company_id": org}
    if name:
        payload["name"] = name
    payload["custom_attributes"] = {k: v for k, v in attributes.items() if v is not None}
    return {"record_key": org, "org_id": org, "payload": payload}


# -- pure mapping: tags and events ------------------------------------------------------------


def tag_slug(value: Any) -> str | None:
    """A provider / feature name as a tag part: lower case, runs of other characters -> '-'."""
    text = _text(value)
    if text is None:
        return None
    slug = re.sub(r"[^\w.]+", "-", text.lower()).strip("-_.")
    return slug[:60] or None


def tag_records(
    signals: pd.DataFrame | None, *, tags: Mapping[str, str] = DEFAULT_TAGS
) -> list[dict[str, Any]]:
    """One record per taggable signal: `{name, companies: [{company_id}]}`, keyed by `signal_key`.

    `tags` maps a signal to a tag name template (`{provider}` is the signal's detail as a slug).
    A signal whose template needs a detail it does not have is left out (logged), as is a signal
    without an organization: there is nothing meaningful to tag.
    """
    if signals is None or signals.empty:
        return []
    _require(signals, SIGNAL_COLUMNS, "signals")
    records, skipped = [], 0
    for row in _rows(signals):
        template = tags.get(str(row["signal"]))
        if template is None:
            continue
        provider = tag_slug(row.get("detail"))
        if _missing(row.get("org_id")) or ("{provider}" in template and provider is None):
            skipped += 1
            continue
        name = template.format(provider=provider, detail=provider, signal=row["signal"])
        org = str(row["org_id"])
        payload = {"name": name, "companies": [{"company_id": org}]}
        records.append({"record_key": str(row["signal_key"]), "org_id": org, "payload": payload})
    if skipped:
        log.warning("%d taggable signals left out: no organization or no detail for the tag name", skipped)
    return sorted(records, key=lambda r: r["record_key"])


def event_records(
    signals: pd.DataFrame | None,
    *,
    events: Mapping[str, str] = DEFAULT_EVENTS,
    identify_by: Sequence[str] = DEFAULT_IDENTIFY_BY,
) -> list[dict[str, Any]]:
    """One `POST /events` body per person-level signal, keyed by `signal_key`.

    The person is named by `user_id` (PostHog `distinct_id`, which the product must also use as
    Intercom user_id) or `email`, in `identify_by` order; `created_at` is the signal's time, so a
    replayed event is recognised by Intercom as the same event. Signals naming no person are left
    out (logged).
    """
    if signals is None or signals.empty:
        return []
    _require(signals, SIGNAL_COLUMNS, "signals")
    sources = {"user_id": "distinct_id", "email": "email"}
    unknown = [i for i in identify_by if i not in sources]
    if unknown or not identify_by:
        raise ValueError(f"identify_by takes 'user_id' and/or 'email', got {list(identify_by)}")
    records, skipped = [], 0
    for row in _rows(signals):
        event_name = events.get(str(row["signal"]))
        if event_name is None:
            continue
        who = next(
            (
                (field, _text(row.get(sources[field])))
                for field in identify_by
                if _text(row.get(sources[field]))
            ),
            None,
        )
        created_at = unix_time(row.get("occurred_at")) or _day(row.get("as_of"))
        if who is None or created_at is None:
            skipped += 1
            continue
        metadata = {
            "signal_key": _text(row["signal_key"], MAX_METADATA_TEXT),
            "milestone": _text(row.get("detail"), MAX_METADATA_TEXT),
            "org_id": _text(row.get("org_id"), MAX_METADATA_TEXT),
            "org_name": _text(row.get("org_name"), MAX_METADATA_TEXT),
            "pql_score": _integer(row.get("pql_score")),
            "is_pql": _boolean(row.get("is_pql")),
        }
        payload = {
            "event_name": event_name,
            "created_at": created_at,
            who[0]: who[1],
            "metadata": {k: v for k, v in metadata.items() if v is not None},
        }
        org = None if _missing(row.get("org_id")) else str(row["org_id"])
        records.append({"record_key": str(row["signal_key"]), "org_id": org, "payload": payload})
    if skipped:
        log.warning("%d event signals left out: no distinct_id / email or no time", skipped)
    return sorted(records, key=lambda r: r["record_key"])


# -- pure mapping: answers -> outcomes --------------------------------------------------------


def error_detail(status: int, body: Any, text: str = "") -> tuple[str, str]:
    """(code, message) of a refused call: the first `error.list` code, all messages with fields."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    errors = [e for e in errors or [] if isinstance(e, Mapping)]
    if not errors:
        return f"HTTP_{status}", f"HTTP {status}: {text[:300]}".rstrip(": ")
    code = str(errors[0].get("code") or f"HTTP_{status}")
    parts = []
    for error in errors:
        message = str(error.get("message") or error.get("code") or "")
        parts.append(f"{error['field']}: {message}" if error.get("field") else message)
    return code, f"HTTP {status}: " + "; ".join(parts)


STOP_STATUSES = (401, 403)  # bad / revoked token or missing scope: every further call fails the same
STOP_CODES = ("intercom_version_invalid", "unauthorized", "token_revoked", "token_unauthorized")


def _company_outcome(key: str, body: Any) -> RowOutcome:
    """Intercom does not say whether it created: a company whose created_at equals its
    updated_at was created by this call (an update always moves updated_at past created_at,
    except within the company's first second)."""
    if not isinstance(body, Mapping) or not body.get("id"):
        return RowOutcome(key, "failed", None, "NO_RESULT", "Intercom's answer carries no company id")
    created = body.get("created_at") is not None and body.get("created_at") == body.get("updated_at")
    return RowOutcome(key, "created" if created else "updated", str(body["id"]))


# -- Intercom's transport policy --------------------------------------------------------------


def _number_header(response: requests.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def intercom_wait_hint(response: requests.Response, clock: Callable[[], float] = time.time) -> float | None:
    """On 429 wait until `X-RateLimit-Reset` (unix time); None (-> backoff) when it is unusable."""
    if response.status_code != 429:
        return None
    reset = _number_header(response, "X-RateLimit-Reset")
    if reset is None:
        return None
    wait = reset - clock()
    return wait if wait > 0 else None


class IntercomRateLimiter(RateLimiter):
    """A sliding window under the app's limit, plus Intercom's own word: when a response says
    `X-RateLimit-Remaining: 0`, the next call waits for `X-RateLimit-Reset` (at most `max_pause`)
    instead of spending a call on a certain 429. Feed it responses with `observe`.
    """

    def __init__(
        self,
        max_calls: int | None = DEFAULT_CALLS_PER_10S,
        period: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_pause: float = 15.0,
    ) -> None:
        super().__init__(max_calls or 1, period, clock=clock, sleep=sleep)
        self.windowed = bool(max_calls)
        self.max_pause = max_pause
        self.paused_until = -math.inf

    def observe(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        remaining = _number_header(response, "X-RateLimit-Remaining")
        reset = _number_header(response, "X-RateLimit-Reset")
        if remaining is not None and reset is not None and remaining <= 0:
            self.paused_until = max(self.paused_until, reset)
        return response

    def acquire(self) -> float:
        waited = 0.0
        pause = min(self.paused_until - self._clock(), self.max_pause)
        if pause > 0:
            log.info("Intercom rate-limit window spent; waiting %.2fs for its reset", pause)
            self._sleep(pause)
            waited += pause
        if self.windowed:
            waited += super().acquire()
        return waited


class IntercomClient:
    """Intercom REST over `RestClient`: data attributes, companies, tags and data events.

    Pass `token` (sets the bearer header) or a `session` that already sends one. `base_url`
    defaults to the `region`'s host (us, eu, au). `clock` is wall time: Intercom's reset header
    is a unix time. Every per-record method returns one `RowOutcome` per record, in order.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        region: str = DEFAULT_REGION,
        version: str = DEFAULT_VERSION,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        calls_per_10s: int | None = DEFAULT_CALLS_PER_10S,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if base_url is None:
            base_url = region_url(region)
        session = session or requests.Session()
        session.auth = None  # bearer only: never send the token as basic auth
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        if "Authorization" not in session.headers:
            raise ValueError("IntercomClient needs a token (or a session that sends one)")
        session.headers["Intercom-Version"] = str(version)
        session.headers["Accept"] = "application/json"
        if limiter is None:
            limiter = IntercomRateLimiter(calls_per_10s, 10.0, clock=clock, sleep=sleep)
        observe = getattr(limiter, "observe", None)
        if observe is not None:
            session.hooks["response"].append(observe)
        self.version = str(version)
        self.rest = RestClient(
            session,
            base_url,
            policy=policy,
            limiter=limiter,
            timeout=timeout,
            sleep=sleep,
            wait_hint=functools.partial(intercom_wait_hint, clock=clock),
        )
        self._ensured: set[frozenset[str]] = set()

    def __repr__(self) -> str:
        return f"IntercomClient({self.rest.base_url!r}, version={self.version!r})"

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> IntercomClient:
        """Client for an Airflow HTTP connection: password = access token; extra `region`
        (us | eu | au) and `intercom_version`; a host overrides the region's host."""
        return _hook_class()(http_conn_id=conn_id).get_client(**kwargs)

    # -- calls ------------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None
    ) -> tuple[requests.Response | None, Any, tuple[str, str] | None]:
        """(response, decoded body, failure) of one call; failure is None on 2xx, else (code, message)."""
        try:
            response = self.rest.request(method, path, json=body)
        except RetriesExhausted as exc:
            return None, None, ("RETRIES_EXHAUSTED", str(exc))
        except DestinationError as exc:  # no fatal policy for Intercom, but never let it escape
            return None, None, (f"HTTP_{exc.status}", str(exc))
        decoded = json_body(response)
        if 200 <= response.status_code < 300:
            return response, decoded, None
        return response, decoded, error_detail(response.status_code, decoded, body_snippet(response))

    @staticmethod
    def _stops(response: requests.Response | None, failure: tuple[str, str] | None) -> bool:
        if response is None or failure is None:
            return False
        return response.status_code in STOP_STATUSES or failure[0] in STOP_CODES

    # -- data attributes --------------------------------------------------------------------

    def ensure_data_attributes(
        self, attributes: Iterable[Mapping[str, Any]] = COMPANY_ATTRIBUTES
    ) -> list[str]:
        """Create the company data attributes that do not exist yet; returns the names created.

        Without this a fresh workspace refuses every company with "Custom attribute ... does not
        exist". An attribute that exists with another type, or archived, is logged as an error
        (Intercom cannot change or unarchive it through the API): its rows then fail with
        Intercom's message naming it. Raises `DestinationError` when the API refuses.
        """
        attributes = list(attributes)
        cache_key = frozenset(a["name"] for a in attributes)
        if cache_key in self._ensured:
            return []
        response, body, failure = self.call("GET", "/data_attributes?model=company&include_archived=true")
        if failure is not None:
            raise DestinationError(
                f"listing Intercom company data attributes: {failure[0]} {failure[1]}",
                status=response.status_code if response is not None else None,
                body=failure[1],
            )
        existing = {
            a.get("name"): a
            for a in (body or {}).get("data", [])
            if isinstance(a, Mapping) and a.get("model", "company") == "company"
        }
        created = []
        for attribute in attributes:
            name = attribute["name"]
            found = existing.get(name)
            if found is not None:
                if found.get("archived"):
                    log.error(
                        "Intercom company data attribute %r is archived: unarchive it in Intercom", name
                    )
                elif found.get("data_type") != attribute["data_type"]:
                    log.error(
                        "Intercom company data attribute %r is %s, plg-bridge writes %s: rows will be refused",
                        name,
                        found.get("data_type"),
                        attribute["data_type"],
                    )
                continue
            body_out = {
                k: attribute[k] for k in ("name", "model", "data_type", "description") if k in attribute
            }
            response, _body, failure = self.call("POST", "/data_attributes", body_out)
            if failure is not None:
                if failure[1] and "already have" in failure[1]:  # created meanwhile by a concurrent run
                    continue
                raise DestinationError(
                    f"creating Intercom company data attribute {name}: {failure[0]} {failure[1]}",
                    status=response.status_code if response is not None else None,
                    body=failure[1],
                )
            created.append(name)
        if created:
            log.info("created Intercom company data attributes: %s", ", ".join(created))
        self._ensured.add(cache_key)
        return created

    # -- per-record delivery ----------------------------------------------------------------

    def upsert_companies(self, records: Sequence[Mapping[str, Any]]) -> list[RowOutcome]:
        """`POST /companies` per record (create or update on company_id)."""

        def send(key: str, payload: Mapping[str, Any]) -> tuple[RowOutcome, bool]:
            if not payload.get("company_id"):
                return RowOutcome(key, "failed", None, "INVALID_RECORD", "payload has no company_id"), False
            response, body, failure = self.call("POST", "/companies", dict(payload))
            if failure is not None:
                return RowOutcome(key, "failed", None, *failure), self._stops(response, failure)
            return _company_outcome(key, body), False

        return self._one_by_one("companies", records, send)

    def create_events(self, records: Sequence[Mapping[str, Any]]) -> list[RowOutcome]:
        """`POST /events` per record; 202 = accepted (Intercom returns no id)."""

        def send(key: str, payload: Mapping[str, Any]) -> tuple[RowOutcome, bool]:
            response, _body, failure = self.call("POST", "/events", dict(payload))
            if failure is not None:
                return RowOutcome(key, "failed", None, *failure), self._stops(response, failure)
            return RowOutcome(key, "created"), False

        return self._one_by_one("events", records, send)

    def apply_tags(
        self, records: Sequence[Mapping[str, Any]], chunk: int = MAX_TAG_COMPANIES
    ) -> list[RowOutcome]:
        """Tag companies: records sharing a tag name go in one `POST /tags` call (up to `chunk`
        companies). When such a call is refused (e.g. one company does not exist), each company
        is sent alone so the refusal lands on its own records only."""
        outcomes: list[RowOutcome | None] = [None] * len(records)
        groups: dict[str, list[tuple[int, str]]] = {}
        for n, key, payload in self._checked(records, outcomes):
            companies = payload.get("companies") or []
            company = (
                companies[0].get("company_id")
                if len(companies) == 1 and isinstance(companies[0], Mapping)
                else None
            )
            if not payload.get("name") or not company:
                outcomes[n] = RowOutcome(
                    key, "failed", None, "INVALID_RECORD", "payload needs a name and one company"
                )
                continue
            groups.setdefault(str(payload["name"]), []).append((n, str(company)))

        stop: tuple[str, str] | None = None
        for name in sorted(groups):
            members = groups[name]
            companies = sorted({c for _, c in members})
            for start in range(0, len(companies), chunk):
                part = companies[start : start + chunk]
                if stop is not None:
                    results = {c: ("failed", None, stop[0], f"not sent: {stop[1]}") for c in part}
                else:
                    results, stop = self._tag(name, part)
                for n, company in members:
                    if company in results:
                        status, tag_id, code, message = results[company]
                        outcomes[n] = RowOutcome(records[n]["record_key"], status, tag_id, code, message)
        return _complete(outcomes, records, "tags")

    def _tag(self, name: str, companies: list[str]) -> tuple[dict[str, tuple], tuple[str, str] | None]:
        body = {"name": name, "companies": [{"company_id": c} for c in companies]}
        response, answer, failure = self.call("POST", "/tags", body)
        if failure is None:
            tag_id = str(answer.get("id")) if isinstance(answer, Mapping) and answer.get("id") else None
            return {c: ("created", tag_id, None, None) for c in companies}, None
        if self._stops(response, failure):
            return {c: ("failed", None, *failure) for c in companies}, failure
        if len(companies) == 1 or response is None:  # alone already, or a transport failure
            return {c: ("failed", None, *failure) for c in companies}, None
        results: dict[str, tuple] = {}
        for company in companies:
            single, stop = self._tag(name, [company])
            results.update(single)
            if stop is not None:
                rest = [c for c in companies if c not in results]
                results.update({c: ("failed", None, stop[0], f"not sent: {stop[1]}") for c in rest})
                return results, stop
        return results, None

    # -- shared record loop -----------------------------------------------------------------

    @staticmethod
    def _checked(
        records: Sequence[Mapping[str, Any]], outcomes: list[RowOutcome | None]
    ) -> list[tuple[int, str, Mapping[str, Any]]]:
        """Records to send: a repeated record_key fails as DUPLICATE_KEY (its effect is the first's)."""
        seen: set[str] = set()
        out = []
        for n, record in enumerate(records):
            key = str(record["record_key"])
            if key in seen:
                outcomes[n] = RowOutcome(
                    key, "failed", None, "DUPLICATE_KEY", "record_key repeated in this delivery"
                )
                continue
            seen.add(key)
            payload = record.get("payload")
            if not isinstance(payload, Mapping):
                outcomes[n] = RowOutcome(
                    key, "failed", None, "INVALID_RECORD", "record has no payload object"
                )
                continue
            out.append((n, key, payload))
        return out

    def _one_by_one(
        self,
        what: str,
        records: Sequence[Mapping[str, Any]],
        send: Callable[[str, Mapping[str, Any]], tuple[RowOutcome, bool]],
    ) -> list[RowOutcome]:
        outcomes: list[RowOutcome | None] = [None] * len(records)
        stop: RowOutcome | None = None
        for n, key, payload in self._checked(records, outcomes):
            if stop is not None:
                outcomes[n] = RowOutcome(
                    key, "failed", None, stop.error_code, f"not sent: {stop.error_message}"
                )
                continue
            outcome, stops = send(key, payload)
            outcomes[n] = outcome
            if stops:
                log.error("Intercom refused %s with %s; not sending the rest", what, outcome.error_code)
                stop = outcome
        return _complete(outcomes, records, what)


def _complete(
    outcomes: list[RowOutcome | None], records: Sequence[Mapping[str, Any]], what: str
) -> list[RowOutcome]:
    """Every record has its outcome: a gap would be a silently dropped row, so it is a bug."""
    if any(o is None for o in outcomes):
        raise RuntimeError("internal error: an Intercom record has no outcome")
    done = cast("list[RowOutcome]", outcomes)
    counts = {s: sum(o.status == s for o in done) for s in ("created", "updated", "failed")}
    log.info("Intercom %s: %d records, %s", what, len(records), counts)
    return done


def region_url(region: str) -> str:
    try:
        return REGION_HOSTS[str(region).strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown Intercom region {region!r}: use one of {', '.join(REGION_HOSTS)}"
        ) from None


# -- delivery entry points (records -> outcomes frame) ----------------------------------------


def ensure_data_attributes(
    client: IntercomClient, attributes: Iterable[Mapping[str, Any]] = COMPANY_ATTRIBUTES
) -> list[str]:
    """Create missing company data attributes (first use); see `IntercomClient.ensure_data_attributes`."""
    return client.ensure_data_attributes(attributes)


def deliver_companies(
    client: IntercomClient, records: Sequence[Mapping[str, Any]], *, ensure_attributes: bool = True
) -> pd.DataFrame:
    """Create or update companies from `company_records`; one outcome row per record.

    Missing data attributes are created first; if that fails, the companies are still sent and
    report per row what it meant (Intercom's message names the attribute).
    """
    if records and ensure_attributes:
        try:
            client.ensure_data_attributes(COMPANY_ATTRIBUTES)
        except DestinationError as exc:
            log.warning("could not ensure Intercom company data attributes: %s", exc)
    return outcomes_frame(client.upsert_companies(records))


def deliver_tags(client: IntercomClient, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Tag companies from `tag_records` (deliver companies first); one outcome row per record."""
    return outcomes_frame(client.apply_tags(records))


def deliver_events(client: IntercomClient, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Post data events from `event_records`; one outcome row per record."""
    return outcomes_frame(client.create_events(records))


# -- Airflow glue (imported lazily) -----------------------------------------------------------

_EXTRA_KEYS = ("region", "intercom_version")


@functools.cache
def _hook_class() -> type:
    from airflow.providers.http.hooks.http import HttpHook

    class IntercomHook(HttpHook):
        """`HttpHook` for Intercom: password = access token; extra `region` (us | eu | au) and
        `intercom_version`; a connection host (with its schema, https when none) overrides the
        region's host. The one place an Intercom connection is read. Login is ignored: the token
        must never go out as basic auth.
        """

        hook_name = "Intercom"

        def __init__(self, http_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
            super().__init__(method="POST", http_conn_id=http_conn_id, **kwargs)
            self.extra: dict[str, Any] = {}

        def _set_base_url(self, connection: Any) -> None:
            self.extra = dict(connection.extra_dejson or {})
            if not connection.host:
                self.base_url = region_url(self.extra.get("region") or DEFAULT_REGION)
                self._base_url_initialized = True
                return
            host = str(connection.host).rstrip("/")
            if "://" not in host:  # a vendor API: https unless the connection says otherwise
                host = f"{connection.schema or 'https'}://{host}"
            self.base_url = f"{host}:{connection.port}" if connection.port else host
            self._base_url_initialized = True

        def _configure_session_from_auth(
            self, session: requests.Session, connection: Any
        ) -> requests.Session:
            return bearer_auth(session, connection.password, self.http_conn_id, "Intercom access token")

        def _configure_session_from_extra(
            self, session: requests.Session, connection: Any, extra_options: dict[str, Any]
        ) -> requests.Session:
            session = super()._configure_session_from_extra(session, connection, extra_options)
            for key in _EXTRA_KEYS:  # HttpHook turns unknown extras into headers: these are settings
                session.headers.pop(key, None)
            return session

        def get_client(self, **kwargs: Any) -> IntercomClient:
            session = self.get_conn()
            kwargs.setdefault("version", str(self.extra.get("intercom_version") or DEFAULT_VERSION))
            return IntercomClient(self.base_url, session=session, **kwargs)

    return IntercomHook


def __getattr__(name: str) -> Any:
    """`IntercomHook` is built on first access so importing this module never imports Airflow."""
    if name == "IntercomHook":
        return _hook_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Intercom over the shared transport: version header, X-RateLimit-* pacing, per-record outcomes."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import requests

from plg_bridge.delivery.base import (
    FieldSpec,
    InFlight,
    Stop,
    calls_per_second,
    complete,
    ensure_fields,
    forget_fields,
    send_batches,
)
from plg_bridge.delivery.intercom.mapping import (
    COMPANY_FIELDS,
    DEFAULT_CALLS_PER_10S,
    DEFAULT_CONN_ID,
    DEFAULT_REGION,
    DEFAULT_VERSION,
    MAX_TAG_COMPANIES,
    REGION_HOSTS,
    STOP_CODES,
    STOP_STATUSES,
    _company_outcome,
    attribute_definition,
    error_detail,
)
from plg_bridge.delivery.outcomes import RowOutcome
from plg_bridge.delivery.transport import (
    _SHARED,
    DestinationError,
    RateLimiter,
    RestClient,
    RetriesExhausted,
    RetryPolicy,
    bearer_session,
    body_snippet,
    credential_key,
    header_number,
    json_body,
)

log = logging.getLogger(__name__)

# -- Intercom's transport policy --------------------------------------------------------------


def intercom_wait_hint(response: requests.Response, clock: Callable[[], float] = time.time) -> float | None:
    """On 429 wait until `X-RateLimit-Reset` (unix time); None (-> backoff) when it is unusable."""
    if response.status_code != 429:
        return None
    reset = header_number(response, "X-RateLimit-Reset")
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
        remaining = header_number(response, "X-RateLimit-Remaining")
        reset = header_number(response, "X-RateLimit-Reset")
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
        max_in_flight: int | None = None,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if base_url is None:
            base_url = region_url(region)
        session = bearer_session(session, token, "IntercomClient")  # bearer only, never basic auth
        session.headers["Intercom-Version"] = str(version)
        session.headers["Accept"] = "application/json"
        if limiter is None:
            # one budget per app: every client of the same token and host shares this limiter
            key = ("intercom", base_url, credential_key(session), calls_per_10s)
            limiter = _SHARED.setdefault(
                key, IntercomRateLimiter(calls_per_10s, 10.0, clock=clock, sleep=sleep)
            )
        self.max_in_flight = max_in_flight
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

    def __repr__(self) -> str:
        return f"IntercomClient({self.rest.base_url!r}, version={self.version!r})"

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> IntercomClient:
        """Client for an Airflow HTTP connection: password = access token; extra `region`
        (us | eu | au) and `intercom_version`; a host overrides the region's host."""
        from plg_bridge.airflow.hooks import bearer_session as connection

        def regional(extra: dict[str, Any]) -> str:
            return region_url(str(extra.get("region") or DEFAULT_REGION))

        found = connection(conn_id, default_url=regional, what="Intercom access token")
        kwargs.setdefault("version", str(found.extra.get("intercom_version") or DEFAULT_VERSION))
        if found.timeout is not None:
            kwargs.setdefault("timeout", found.timeout)
        return cls(found.base_url, session=found.session, **kwargs)

    # -- calls ------------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None
    ) -> tuple[requests.Response | None, Any, tuple[str, str] | None]:
        """(response, decoded body, failure) of one call; failure is None on 2xx, else (code, message)."""
        try:
            response = self.rest.request(method, path, json=body)
        except RetriesExhausted as exc:
            return None, None, (exc.code, str(exc))
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

    # -- fields: the base's FieldSource (base.ensure_fields) ------------------------------------

    batch_create = False  # POST /data_attributes creates one attribute per call

    @property
    def fields_key(self) -> tuple:
        return ("Intercom", self.rest.base_url, credential_key(self.rest.session))

    def list_fields(self, object_: str) -> list[str]:
        """Names of the model's data attributes, archived ones included. One that exists with
        another type, or archived, is logged as an error (the API cannot change or unarchive it):
        its rows then fail with Intercom's message naming it."""
        response, body, failure = self.call("GET", f"/data_attributes?model={object_}&include_archived=true")
        if failure is not None:
            raise DestinationError(
                f"listing Intercom {object_} data attributes: {failure[0]} {failure[1]}",
                status=response.status_code if response is not None else None,
                body=failure[1],
            )
        found = [
            a
            for a in (body or {}).get("data", [])
            if isinstance(a, Mapping) and a.get("model", object_) == object_
        ]
        wanted = {f.name: f.type for f in COMPANY_FIELDS}
        for attribute in found:
            name = attribute.get("name")
            if name in wanted and attribute.get("archived"):
                log.error(
                    "Intercom %s data attribute %r is archived: unarchive it in Intercom", object_, name
                )
            elif name in wanted and attribute.get("data_type") != wanted[name]:
                log.error(
                    "Intercom %s data attribute %r is %s, plg-bridge writes %s: rows will be refused",
                    object_,
                    name,
                    attribute.get("data_type"),
                    wanted[name],
                )
        return [str(a.get("name")) for a in found]

    def create_fields(self, specs: Sequence[FieldSpec]) -> tuple[list[str], dict[str, str]]:
        """`POST /data_attributes` per spec -> (names created, {name: message} of those refused);
        one created meanwhile by a concurrent run ("already have") is neither."""
        created: list[str] = []
        refused: dict[str, str] = {}
        for spec in specs:
            _response, _body, failure = self.call("POST", "/data_attributes", attribute_definition(spec))
            if failure is None:
                created.append(spec.name)
            elif not (failure[1] and "already have" in failure[1]):
                refused[spec.name] = f"{failure[0]} {failure[1]}"
        return created, refused

    def ensure_data_attributes(self, fields: Iterable[FieldSpec] = COMPANY_FIELDS) -> list[str]:
        """Create the company data attributes that do not exist yet (base.ensure_fields); returns
        the names created. Without them a fresh workspace refuses every company with "Custom
        attribute ... does not exist"."""
        return ensure_fields(self, fields)

    # -- per-record delivery ----------------------------------------------------------------

    def upsert_companies(self, records: Sequence[Mapping[str, Any]]) -> list[RowOutcome]:
        """`POST /companies` per record (create or update on company_id)."""

        def send(key: str, payload: Mapping[str, Any]) -> tuple[RowOutcome, bool]:
            if not payload.get("company_id"):
                return RowOutcome(key, "failed", None, "INVALID_RECORD", "payload has no company_id"), False
            response, body, failure = self.call("POST", "/companies", dict(payload))
            if failure is not None and "Custom attribute" in failure[1] and "does not exist" in failure[1]:
                forget_fields(self.fields_key)  # deleted or archived meanwhile: the next ensure lists again
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
        companies), one call at a time (two first uses of a new tag name at once could race).
        When such a call is refused (e.g. one company does not exist), each company is sent
        alone so the refusal lands on its own records only. The stop rule is the base's."""
        outcomes: list[RowOutcome | None] = [None] * len(records)
        groups: dict[str, list[tuple[int, str, str]]] = {}
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
            groups.setdefault(str(payload["name"]), []).append((n, key, str(company)))

        batches: list[tuple[str, list[str], list[tuple[int, str, str]]]] = []
        for name in sorted(groups):
            members = groups[name]
            companies = sorted({c for _, _, c in members})
            for start in range(0, len(companies), chunk):
                part = companies[start : start + chunk]
                batches.append((name, part, [m for m in members if m[2] in set(part)]))

        def send(
            batch: tuple[str, list[str], list[tuple[int, str, str]]],
        ) -> tuple[list[RowOutcome], Stop | None]:
            name, part, members = batch
            results, stop = self._tag(name, part)
            return [RowOutcome(key, *results[company]) for _, key, company in members], stop

        results = send_batches(batches, send, lambda b: [key for _, key, _ in b[2]], what="Intercom tags")
        for (n, _, _), outcome in zip([m for b in batches for m in b[2]], results, strict=True):
            outcomes[n] = outcome
        return _complete(outcomes, records, "tags")

    def _tag(self, name: str, companies: list[str]) -> tuple[dict[str, tuple], Stop | None]:
        """One tag call -> ({company: (status, tag id, code, message)}, reason to stop)."""
        body = {"name": name, "companies": [{"company_id": c} for c in companies]}
        response, answer, failure = self.call("POST", "/tags", body)
        if failure is None:
            tag_id = str(answer.get("id")) if isinstance(answer, Mapping) and answer.get("id") else None
            return {c: ("created", tag_id, None, None) for c in companies}, None
        if self._stops(response, failure):
            return {c: ("failed", None, *failure) for c in companies}, failure
        if len(companies) == 1 or response is None:  # alone already, or a transport failure
            return {c: ("failed", None, *failure) for c in companies}, None
        stop: list[Stop] = []

        def alone(company: str) -> tuple[list[RowOutcome], Stop | None]:
            result, why = self._tag(name, [company])
            if why is not None:
                stop.append(why)
            return [RowOutcome(company, *result[company])], why

        singles = send_batches(companies, alone, lambda c: [c], what=f"Intercom tag {name!r} one by one")
        results = {o.record_key: (o.status, o.destination_id, o.error_code, o.error_message) for o in singles}
        return results, (stop[0] if stop else None)

    # -- shared record loop -----------------------------------------------------------------

    @staticmethod
    def _checked(
        records: Sequence[Mapping[str, Any]], outcomes: list[RowOutcome | None]
    ) -> list[tuple[int, str, Mapping[str, Any]]]:
        """Records to send (record keys are unique: plan.py refuses repeated ones)."""
        out = []
        for n, record in enumerate(records):
            key = str(record["record_key"])
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
        todo = self._checked(records, outcomes)

        def one(item: tuple[int, str, Mapping[str, Any]]) -> tuple[list[RowOutcome], Stop | None]:
            _, key, payload = item
            outcome, stops = send(key, payload)
            return [outcome], (str(outcome.error_code), str(outcome.error_message)) if stops else None

        results = send_batches(
            todo, one, lambda item: [item[1]], in_flight=self.in_flight(), what=f"Intercom {what}"
        )
        for (n, _, _), outcome in zip(todo, results, strict=True):
            outcomes[n] = outcome
        return _complete(outcomes, records, what)

    def in_flight(self) -> InFlight:
        """Calls kept in flight: the setting, else derived from the limiter's rate and latency."""
        return InFlight(
            calls_per_second(self.rest.limiter),
            fixed=self.max_in_flight,
            ceiling=32,
            spare=getattr(self.rest.limiter, "spare", None),
        )


def _complete(
    outcomes: list[RowOutcome | None], records: Sequence[Mapping[str, Any]], what: str
) -> list[RowOutcome]:
    done = complete(outcomes)
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


# -- Airflow glue (imported lazily) -----------------------------------------------------------

_EXTRA_KEYS = ("region", "intercom_version")

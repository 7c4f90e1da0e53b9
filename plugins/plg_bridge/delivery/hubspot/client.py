"""HubSpot CRM v3 over the shared transport: rate-limit hints, property setup, batch upsert/create."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import requests

from plg_bridge.delivery import journal
from plg_bridge.delivery.base import (
    FieldSpec,
    InFlight,
    Stop,
    calls_per_second,
    ensure_fields,
    forget_fields,
    send_batches,
)
from plg_bridge.delivery.hubspot import lookup
from plg_bridge.delivery.hubspot.mapping import (
    DEFAULT_BASE_URL,
    DEFAULT_CONN_ID,
    MAX_BATCH,
    batch_outcomes,
    property_definition,
)
from plg_bridge.delivery.outcomes import RowOutcome, failed
from plg_bridge.delivery.transport import (
    DestinationError,
    FatalDestinationError,
    RateLimiter,
    RestClient,
    RetriesExhausted,
    RetryPolicy,
    bearer_session,
    body_snippet,
    credential_key,
    header_number,
    json_body,
    shared_limiter,
)

log = logging.getLogger(__name__)

# -- HubSpot's transport policy -------------------------------------------------------------------


def hubspot_wait_hint(response: requests.Response) -> float | None:
    """Wait before retrying: a full rate-limit interval when the budget is spent, 2 s on 423."""
    if response.status_code == 423:  # "Locked" on fast company upserts: HubSpot asks for >= 2 s
        return 2.0
    if response.status_code != 429:
        return None
    interval = header_number(response, "X-HubSpot-RateLimit-Interval-Milliseconds", int)
    remaining = header_number(response, "X-HubSpot-RateLimit-Remaining", int)
    if interval is not None and (remaining is None or remaining <= 0):
        return interval / 1000
    return None


def hubspot_rate_headers(response: requests.Response) -> tuple[int | None, int | None, float | None]:
    """(limit, remaining, window seconds) of the app's rolling budget, from X-HubSpot-RateLimit-*."""
    interval = header_number(response, "X-HubSpot-RateLimit-Interval-Milliseconds", int)
    return (
        header_number(response, "X-HubSpot-RateLimit-Max", int),
        header_number(response, "X-HubSpot-RateLimit-Remaining", int),
        interval / 1000 if interval else None,
    )


def _failure_text(response: requests.Response) -> str:
    """The body's start for an error message; nothing to redact and copy for a success."""
    return "" if response.status_code in (200, 201, 207) else body_snippet(response)


def _policy_name(body: Any) -> str | None:
    return body.get("policyName") if isinstance(body, Mapping) else None


def hubspot_is_fatal(response: requests.Response) -> bool:
    """The daily quota resets at midnight: retrying within this run only burns error budget."""
    return response.status_code == 429 and _policy_name(json_body(response)) == "DAILY"


def _fatal_code(exc: FatalDestinationError) -> str:
    try:
        policy = _policy_name(json.loads(exc.body))
    except ValueError:
        policy = None
    return "DAILY_LIMIT" if policy == "DAILY" else f"FATAL_HTTP_{exc.status}"


def _as_spec(object_type: str, field: FieldSpec | Mapping[str, Any]) -> FieldSpec:
    if isinstance(field, FieldSpec):
        return field
    rest = {k: v for k, v in field.items() if k not in ("name", "type", "label", "description")}
    return FieldSpec(
        field["name"], field["type"], field["label"], object_type, field.get("description", ""), rest
    )


class HubSpotClient:
    """HubSpot CRM v3 over `RestClient`: property setup and batch upsert with per-row outcomes.

    Pass `token` (sets the bearer header) or a `session` that already authenticates. The client
    limiter defaults to 100 calls / 10 s, the lowest tier's limit (Professional apps may use
    190); pass `limiter` to share one across clients or `calls_per_10s=None` to disable it.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str | None = None,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        calls_per_10s: int | None = 100,
        max_in_flight: int | None = None,
        rate_window: float = 10.0,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        session = bearer_session(session, token, "HubSpotClient")  # bearer only, never basic auth
        policy = policy or RetryPolicy()
        policy = replace(policy, retry_statuses=policy.retry_statuses | {423})
        if limiter is None and calls_per_10s:
            # one budget per app: every client of the same token and host shares this limiter
            limiter = shared_limiter(
                ("hubspot", base_url, credential_key(session)),
                calls_per_10s,
                rate_window,
                clock=clock,
                sleep=sleep,
            )
        self.max_in_flight = max_in_flight
        self.rest = RestClient(
            session,
            base_url,
            policy=policy,
            limiter=limiter,
            timeout=timeout,
            sleep=sleep,
            wait_hint=hubspot_wait_hint,
            is_fatal=hubspot_is_fatal,
            rate_headers=hubspot_rate_headers,
        )

    def __repr__(self) -> str:
        return f"HubSpotClient({self.rest.base_url!r})"

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> HubSpotClient:
        """Client for an Airflow HTTP connection: host = base URL (none: HubSpot's API),
        password = token, extra `timeout` (seconds). Built by airflow/hooks.py."""
        from plg_bridge.airflow.hooks import bearer_session as connection

        found = connection(conn_id, default_url=DEFAULT_BASE_URL, what="HubSpot token")
        if found.timeout is not None:
            kwargs.setdefault("timeout", found.timeout)
        return cls(found.base_url, session=found.session, **kwargs)

    # -- fields: the base's FieldSource (base.ensure_fields) --------------------------------------

    batch_create = True  # properties/{objectType}/batch/create takes them all in one call

    @property
    def fields_key(self) -> tuple:
        return ("HubSpot", self.rest.base_url, credential_key(self.rest.session))

    def list_fields(self, object_: str) -> list[str]:
        """Names of the object's properties (one `GET /crm/v3/properties/{objectType}`)."""
        response = self.rest.request("GET", f"/crm/v3/properties/{object_}")
        if response.status_code != 200:
            raise DestinationError(
                f"listing HubSpot {object_} properties: HTTP {response.status_code} {body_snippet(response)}",
                status=response.status_code,
                body=body_snippet(response),
            )
        return [str(p.get("name")) for p in (json_body(response) or {}).get("results", [])]

    def create_fields(self, specs: Sequence[FieldSpec]) -> tuple[list[str], dict[str, str]]:
        """One `batch/create` for `specs` -> (names created, {name: HubSpot's message} of those
        refused); one that exists already (created meanwhile by a concurrent run) is neither."""
        object_ = specs[0].object
        inputs = [property_definition(s) for s in specs]
        response = self.rest.request(
            "POST", f"/crm/v3/properties/{object_}/batch/create", json={"inputs": inputs}
        )
        body = json_body(response)
        if response.status_code not in (200, 201, 207) or not isinstance(body, Mapping):
            raise DestinationError(
                f"creating HubSpot {object_} properties: HTTP {response.status_code} {body_snippet(response)}",
                status=response.status_code,
                body=body_snippet(response),
            )
        created = [str(r.get("name")) for r in body.get("results") or [] if isinstance(r, Mapping)]
        refused: dict[str, str] = {}
        for error in body.get("errors") or []:
            message = str(error.get("message")) if isinstance(error, Mapping) else str(error)
            if "already exists" in message:
                continue
            named = [s.name for s in specs if s.name in message] or [
                s.name for s in specs if s.name not in refused
            ]
            refused[named[0] if named else "?"] = message
        return created, refused

    def ensure_properties(
        self, object_type: str, fields: Iterable[FieldSpec | Mapping[str, Any]]
    ) -> list[str]:
        """Create the object's missing properties (base.ensure_fields); returns the names created.
        Takes the `FieldSpec`s or HubSpot's own definitions (`COMPANY_PROPERTIES`)."""
        return ensure_fields(self, [_as_spec(object_type, f) for f in fields])

    def create_tasks(
        self, records: Sequence[Mapping[str, Any]], company_ids: Mapping[str, str]
    ) -> list[RowOutcome]:
        """Create one task per record (`task_records`), associated to the company HubSpot knows for
        its organization. Tasks have no upsert: the caller's state keeps each record key from being
        sent twice, and a network error is never replayed here (it might have created the task)."""
        outcomes: list[RowOutcome] = []
        ready = []
        for record in records:
            company = company_ids.get(record["payload"]["org_id"])
            if company is None:
                outcomes.append(
                    RowOutcome(
                        record["record_key"],
                        "failed",
                        None,
                        "COMPANY_NOT_SYNCED",
                        "the organization's company is not in HubSpot yet",
                    )
                )
            else:
                key = str(record["record_key"])
                ready.append((key, lookup.keyed_task_input(key, record["payload"], company)))
        for start in range(0, len(ready), MAX_BATCH):
            batch = ready[start : start + MAX_BATCH]
            keys = [k for k, _ in batch]
            try:
                response = self.rest.request(
                    "POST",
                    "/crm/v3/objects/tasks/batch/create",
                    json={"inputs": [i for _, i in batch]},
                    idempotent=False,
                    # in flight from here on (after the rate limiter's wait): exactly-once journal
                    before_send=functools.partial(journal.departing, keys),
                )
            except DestinationError as exc:
                outcomes += failed(
                    keys,
                    getattr(exc, "code", "DELIVERY_UNKNOWN") if exc.status is None else f"HTTP_{exc.status}",
                    str(exc),
                )
                continue
            outcomes += lookup.task_outcomes(
                keys, response.status_code, json_body(response), body_snippet(response)
            )
        return outcomes

    def upsert(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]], batch_size: int = MAX_BATCH
    ) -> list[RowOutcome]:
        """Upsert `inputs` ({id, idProperty, properties}) in batches; one outcome per input, in order.

        After a fatal
        answer (daily quota) or an auth refusal (401/403) later batches are not sent and their
        rows fail with the same code.
        """
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        pending: list[tuple[int, dict[str, Any]]] = []
        for n, item in enumerate(inputs):  # ids are unique: plan.py refuses repeated record keys
            key = str(item["id"])
            trace = str(item.get("objectWriteTraceId") or key)  # makes HubSpot answer 207 per input
            pending.append((n, {**item, "id": key, "objectWriteTraceId": trace}))

        batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]

        def send(batch: list[tuple[int, dict[str, Any]]]) -> tuple[list[RowOutcome], Stop | None]:
            payload = [item for _, item in batch]
            return self._send(object_type, payload, [item["id"] for item in payload])

        results = send_batches(
            batches,
            send,
            lambda b: [item["id"] for _, item in b],
            in_flight=self.in_flight(),
            what=f"HubSpot {object_type}",
        )
        counts = {s: sum(o.status == s for o in results) for s in ("created", "updated", "failed")}
        log.info("HubSpot %s: %d batches, %s", object_type, len(batches), counts)
        return results

    def in_flight(self) -> InFlight:
        """Requests kept in flight: the setting, else derived from the limiter's rate and latency."""
        return InFlight(
            calls_per_second(self.rest.limiter),
            fixed=self.max_in_flight,
            spare=getattr(self.rest.limiter, "spare", None),
        )

    def _send(
        self, object_type: str, payload: list[dict[str, Any]], keys: list[str]
    ) -> tuple[list[RowOutcome], tuple[str, str] | None]:
        """One batch call -> (outcomes, reason to stop sending further batches or None)."""
        try:
            response = self.rest.request(
                "POST", f"/crm/v3/objects/{object_type}/batch/upsert", json={"inputs": payload}
            )
        except FatalDestinationError as exc:
            code = _fatal_code(exc)
            log.error("HubSpot %s upsert stopped: %s", object_type, code)
            return failed(keys, code, str(exc)), (code, str(exc))
        except RetriesExhausted as exc:
            return failed(keys, exc.code, str(exc)), None
        results = batch_outcomes(payload, response.status_code, json_body(response), _failure_text(response))
        if any(o.error_code == "PROPERTY_DOESNT_EXIST" for o in results):
            forget_fields(
                self.fields_key
            )  # the next ensure (this run's next target, the next run) lists again
        if response.status_code in (401, 403):
            log.error(
                "HubSpot refused the credentials (HTTP %d); not sending more batches", response.status_code
            )
            return results, (results[0].error_code or "", results[0].error_message or "")
        return results, None


# -- Airflow glue (imported lazily) ---------------------------------------------------------------

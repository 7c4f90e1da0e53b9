"""HubSpot CRM destination: PQL scores onto company records through batch upsert.

Three layers, kept apart so each can be tested alone:

- pure mapping: `company_inputs` (scores frame -> upsert inputs) and `batch_outcomes`
  (one batch's HTTP answer -> one `RowOutcome` per input);
- transport: `HubSpotClient`, a thin wrapper over `RestClient` that adds HubSpot's rate-limit
  hints (interval headers), treats the DAILY 429 as fatal, batches by 100 and sends an
  `objectWriteTraceId` per input so a 207 Multi-Status names exactly the rows that failed;
- Airflow glue: `HubSpotHook` (an `HttpHook` whose session sends `Authorization: Bearer
  <password>`), `HubSpotClient.from_connection` and `deliver_companies` for the DAG task.

Airflow and pandas are imported lazily: this module is imported at DAG parse time and outside
Airflow. A destination problem never raises out of `upsert`/`deliver_companies`: every input row
comes back as created, updated or failed with a code.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

import requests

from plg_bridge.delivery.http import (
    DestinationError,
    FatalDestinationError,
    RateLimiter,
    RestClient,
    RetriesExhausted,
    RetryPolicy,
    bearer_auth,
    body_snippet,
    json_body,
)
from plg_bridge.delivery.outcomes import OUTCOME_COLUMNS, RowOutcome, failed, outcomes_frame
from plg_bridge.delivery.payload import missing as _missing
from plg_bridge.delivery.payload import score_rows

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COMPANY_PROPERTIES",
    "OUTCOME_COLUMNS",
    "HubSpotClient",
    "RowOutcome",
    "batch_outcomes",
    "company_inputs",
    "deliver_companies",
    "hubspot_is_fatal",
    "hubspot_wait_hint",
    "outcomes_frame",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.hubapi.com"
DEFAULT_CONN_ID = "hubspot_default"
MAX_BATCH = 100  # HubSpot object batch endpoints take at most 100 inputs
COMPANY_ID_PROPERTY = "posthog_group_id"

_GROUP = "companyinformation"  # exists in every portal, so creating properties needs no group first


def _definition(name: str, label: str, type_: str, field_type: str, description: str, **extra: Any) -> dict:
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": _GROUP,
        "description": description,
        **extra,
    }


COMPANY_PROPERTIES: tuple[dict[str, Any], ...] = (
    _definition(
        COMPANY_ID_PROPERTY,
        "PostHog group ID",
        "string",
        "text",
        "PostHog organization (group) id; plg-bridge upserts companies by it.",
        hasUniqueValue=True,
    ),
    _definition(
        "plg_pql_score", "PQL score", "number", "number", "Product-qualified-lead score (plg-bridge)."
    ),
    _definition(
        "plg_is_pql",
        "Is PQL",
        "bool",
        "booleancheckbox",
        "Whether the score crossed the PQL threshold (plg-bridge).",
        options=[
            {"label": "Yes", "value": "true", "displayOrder": 0},
            {"label": "No", "value": "false", "displayOrder": 1},
        ],
    ),
    _definition(
        "plg_events_this_week", "Events this week", "number", "number", "Product events, last 7 days."
    ),
    _definition(
        "plg_events_last_week", "Events last week", "number", "number", "Product events, prior 7 days."
    ),
    _definition("plg_active_creators", "Active creators", "number", "number", "Members who created content."),
    _definition(
        "plg_integrations_connected", "Integrations connected", "number", "number", "Connected integrations."
    ),
    _definition("plg_scored_at", "PQL scored at", "date", "date", "Date the PQL score was computed."),
)


# -- pure mapping: scores -> inputs ---------------------------------------------------------------


def _number(value: Any) -> str | None:
    """HubSpot number text; integral floats (counts upcast by NA) lose their '.0'."""
    if _missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)  # not ours to fix here: HubSpot rejects that row with a clear message
    if not math.isfinite(number):
        return None
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _flag(value: Any) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "t", "yes", "y", "1"}:
            return "true"
        if lowered in {"false", "f", "no", "n", "0"}:
            return "false"
        return value
    return "true" if bool(value) else "false"


def _as_date(as_of: str | date | None) -> str | None:
    if as_of is None:
        return None
    if isinstance(as_of, datetime):
        return as_of.date().isoformat()
    if isinstance(as_of, date):
        return as_of.isoformat()
    return date.fromisoformat(str(as_of)[:10]).isoformat()


def company_inputs(
    scores: pd.DataFrame, id_property: str = COMPANY_ID_PROPERTY, as_of: str | date | None = None
) -> list[dict[str, Any]]:
    """Batch-upsert inputs, one per scores row, keyed by `org_id` on `id_property`.

    Missing values are left out rather than sent blank, so a gap in this week's data never wipes
    what a salesperson sees (and a null org name never blanks the company's name).
    """
    scored_at = _as_date(as_of)
    inputs = []
    for row in score_rows(scores):
        name = None if _missing(row["org_name"]) else str(row["org_name"]).strip()
        candidates = {
            "name": name or None,
            "plg_pql_score": _number(row["pql_score"]),
            "plg_is_pql": _flag(row["is_pql"]),
            "plg_events_this_week": _number(row["events_this_week"]),
            "plg_events_last_week": _number(row["events_last_week"]),
            "plg_active_creators": _number(row["active_creators"]),
            "plg_integrations_connected": _number(row["integrations_connected"]),
            "plg_scored_at": scored_at,
        }
        properties = {k: v for k, v in candidates.items() if v is not None}
        inputs.append({"id": str(row["org_id"]), "idProperty": id_property, "properties": properties})
    return inputs


CONTACT_PROPERTIES: tuple[dict[str, Any], ...] = tuple(
    {**_definition(name, label, type_, field, desc), "groupName": "contactinformation"}
    for name, label, type_, field, desc in (
        ("plg_first_touch_source", "First touch source", "string", "text", "utm_source of the first touch."),
        ("plg_first_touch_medium", "First touch medium", "string", "text", "utm_medium of the first touch."),
        (
            "plg_first_touch_campaign",
            "First touch campaign",
            "string",
            "text",
            "utm_campaign of the first touch.",
        ),
        ("plg_first_touch_channel", "First touch channel", "string", "text", "paid or organic (plg-bridge)."),
        ("plg_signup_at", "Signed up", "date", "date", "Signup day (plg-bridge)."),
        ("plg_aha_reached_at", "Aha moment reached", "date", "date", "Day of the first Aha event."),
        ("plg_hours_to_aha", "Hours to Aha", "number", "number", "Time to value: signup to Aha, hours."),
    )
)
TASK_TO_COMPANY = 192  # HubSpot-defined association type: task -> company


def _day(value: Any) -> str | None:
    return None if _missing(value) else str(value)[:10]


def contact_inputs(contacts: pd.DataFrame) -> list[dict[str, Any]]:
    """Contact upserts by email from models/contacts.py output (first touch, time to value, Aha)."""
    inputs = []
    for row in contacts.to_dict("records"):
        candidates = {
            "email": row["email"],
            "plg_first_touch_source": None
            if _missing(row["first_touch_source"])
            else row["first_touch_source"],
            "plg_first_touch_medium": None
            if _missing(row["first_touch_medium"])
            else row["first_touch_medium"],
            "plg_first_touch_campaign": None
            if _missing(row["first_touch_campaign"])
            else row["first_touch_campaign"],
            "plg_first_touch_channel": None
            if _missing(row["first_touch_channel"])
            else row["first_touch_channel"],
            "plg_signup_at": _day(row["signup_at"]),
            "plg_aha_reached_at": _day(row["aha_reached_at"]),
            "plg_hours_to_aha": None if _missing(row["hours_to_aha"]) else f"{row['hours_to_aha']:.1f}",
        }
        properties = {k: v for k, v in candidates.items() if v is not None}
        inputs.append({"id": row["email"], "idProperty": "email", "properties": properties})
    return inputs


def task_records(signals: pd.DataFrame) -> list[dict[str, Any]]:
    """AE tasks from signals: usage ceiling always, enterprise interest when the account is a PQL.

    The payload names the organization, not HubSpot's company id: that is looked up at send time
    from what the companies target delivered, so the diff depends on the signal only. `hs_task_body`
    is HTML: the event's detail (a property anyone can send) is escaped.
    """
    from plg_bridge.report.escape import html_text

    tasks = []
    for row in signals.to_dict("records"):
        name = row["org_name"] if not _missing(row["org_name"]) else row["org_id"]
        if row["signal"] == "usage_ceiling":
            subject = f"Expansion: {name} is near its plan limit"
            priority = "HIGH"
        elif row["signal"] == "enterprise_interest" and row["is_pql"] is True:
            subject = f"Enterprise interest from {name} ({row['detail'] or 'feature'})"
            priority = "MEDIUM"
        else:
            continue
        body = (
            f"plg-bridge signal {row['signal']} on {row['occurred_at']:%Y-%m-%d %H:%M} UTC. "
            f"PQL score {row['pql_score']}."
            + (f" Detail: {html_text(row['detail'])}." if not _missing(row["detail"]) else "")
        )
        payload = {
            "org_id": row["org_id"],
            "hs_timestamp": row["occurred_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "hs_task_subject": subject[:250],
            "hs_task_body": body,
            "hs_task_priority": priority,
        }
        tasks.append({"record_key": row["signal_key"], "org_id": row["org_id"], "payload": payload})
    return tasks


def task_input(payload: Mapping[str, Any], company_id: str) -> dict[str, Any]:
    """A tasks batch-create input for one task record, associated to its company."""
    properties = {k: v for k, v in payload.items() if k != "org_id"}
    properties.update(hs_task_status="NOT_STARTED", hs_task_type="TODO")
    types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_COMPANY}]
    return {"properties": properties, "associations": [{"to": {"id": company_id}, "types": types}]}


# -- pure mapping: HTTP answer -> row outcomes ----------------------------------------------------


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value]
    return [str(value)]


def _error_targets(
    error: Mapping[str, Any], by_trace: Mapping[str, int], by_key: Mapping[str, int]
) -> set[int]:
    """Positions of the inputs an error names: context trace ids / ids, else a quoted key."""
    context = error.get("context") if isinstance(error.get("context"), Mapping) else {}
    named = [*_as_list(context.get("objectWriteTraceId")), *_as_list(context.get("ids"))]
    named += _as_list(context.get("id"))
    hits = {by_trace[v] if v in by_trace else by_key[v] for v in named if v in by_trace or v in by_key}
    if hits:
        return hits
    message = str(error.get("message") or "")
    quoted = {n for key, n in by_key.items() if f'"{key}"' in message or f"'{key}'" in message}
    return quoted if len(quoted) == 1 else set()


def _error_detail(error: Mapping[str, Any]) -> tuple[str, str]:
    """(code, message) of one batch error: the specific code (INVALID_INTEGER...) when given."""
    details = [d for d in error.get("errors") or [] if isinstance(d, Mapping)]
    code = next((str(d["code"]) for d in details if d.get("code")), None)
    message = str(error.get("message") or "")
    if code is None and ": [" in message:  # "Property values were not valid: [{...,"error":"X"}]"
        try:
            embedded = json.loads(message[message.index(": [") + 2 :])
            code = next((str(e["error"]) for e in embedded if isinstance(e, dict) and e.get("error")), None)
        except (ValueError, TypeError):
            pass
    if details:
        parts = []
        for d in details:
            names = _as_list((d.get("context") or {}).get("propertyName"))
            parts.append(f"{names[0]}: {d.get('message')}" if names else str(d.get("message")))
        message = "; ".join(parts)
    return code or str(error.get("category") or "ERROR"), message


def _http_failure(status: int, body: Any, text: str) -> tuple[str, str]:
    if isinstance(body, Mapping) and body.get("message"):
        category = body.get("category") or body.get("errorType")
        return f"HTTP_{status}", f"{category}: {body['message']}" if category else str(body["message"])
    return f"HTTP_{status}", text[:300] or f"HTTP {status}"


def batch_outcomes(
    inputs: Sequence[Mapping[str, Any]], status: int, body: Any, text: str = ""
) -> list[RowOutcome]:
    """One outcome per input (same order) from a batch upsert answer.

    200/207: results are matched by `objectWriteTraceId` (else by the id property value), errors
    by the ids in their context. Inputs that nothing accounts for fail: with the message of an
    error HubSpot did not tie to an input, else NO_RESULT. Any other status fails every input
    with `HTTP_<status>`.
    """
    keys = [str(item["id"]) for item in inputs]
    if status not in (200, 201, 207) or not isinstance(body, Mapping):
        code, message = _http_failure(status, body, text)
        return failed(keys, code, message)
    by_key = {key: n for n, key in enumerate(keys)}
    by_trace = {str(item.get("objectWriteTraceId") or item["id"]): n for n, item in enumerate(inputs)}
    outcomes: list[RowOutcome | None] = [None] * len(inputs)

    unattributed: list[tuple[str, str]] = []
    for error in body.get("errors") or []:
        if not isinstance(error, Mapping):
            continue
        code, message = _error_detail(error)
        targets = _error_targets(error, by_trace, by_key)
        if not targets:
            unattributed.append((code, message))
        for n in targets:
            outcomes[n] = RowOutcome(keys[n], "failed", None, code, message)

    unmatched = []
    for result in body.get("results") or []:
        n = _result_target(result, inputs, by_trace, by_key)
        if n is None:
            unmatched.append(result)
        elif outcomes[n] is None:
            outcomes[n] = _applied(keys[n], result)
    open_rows = [n for n, o in enumerate(outcomes) if o is None]
    if len(open_rows) == 1 and len(unmatched) == 1 and not unattributed:  # unambiguous
        outcomes[open_rows[0]] = _applied(keys[open_rows[0]], unmatched[0])

    for n, outcome in enumerate(outcomes):
        if outcome is not None:
            continue
        if unattributed:
            code = unattributed[0][0]
            message = "HubSpot reported errors it did not tie to an input: " + " | ".join(
                m for _, m in unattributed[:3]
            )
        else:
            code, message = "NO_RESULT", "HubSpot's answer has no result or error for this input"
        outcomes[n] = RowOutcome(keys[n], "failed", None, code, message)
    return _complete(outcomes)


def _complete(outcomes: list[RowOutcome | None]) -> list[RowOutcome]:
    """Every input has its outcome: a gap would be a silently dropped row, so it is a bug."""
    if any(o is None for o in outcomes):
        raise RuntimeError("internal error: an input row has no outcome")
    return cast("list[RowOutcome]", outcomes)


def _applied(key: str, result: Mapping[str, Any]) -> RowOutcome:
    return RowOutcome(key, "created" if result.get("new") else "updated", str(result.get("id")))


def _result_target(
    result: Any, inputs: Sequence[Mapping[str, Any]], by_trace: Mapping[str, int], by_key: Mapping[str, int]
) -> int | None:
    if not isinstance(result, Mapping):
        return None
    trace = result.get("objectWriteTraceId")
    if trace is not None and str(trace) in by_trace:
        return by_trace[str(trace)]
    properties = result.get("properties") or {}
    for item in inputs[:1]:  # one batch shares its idProperty
        value = properties.get(item.get("idProperty"))
        if value is not None and str(value) in by_key:
            return by_key[str(value)]
    return None


# -- HubSpot's transport policy -------------------------------------------------------------------


def _int_header(response: requests.Response, name: str) -> int | None:
    try:
        return int(response.headers[name])
    except (KeyError, ValueError):
        return None


def hubspot_wait_hint(response: requests.Response) -> float | None:
    """Wait before retrying: a full rate-limit interval when the budget is spent, 2 s on 423."""
    if response.status_code == 423:  # "Locked" on fast company upserts: HubSpot asks for >= 2 s
        return 2.0
    if response.status_code != 429:
        return None
    interval = _int_header(response, "X-HubSpot-RateLimit-Interval-Milliseconds")
    remaining = _int_header(response, "X-HubSpot-RateLimit-Remaining")
    if interval is not None and (remaining is None or remaining <= 0):
        return interval / 1000
    return None


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
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        session = session or requests.Session()
        session.auth = None  # HubSpot wants the bearer header only, never basic auth
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        if "Authorization" not in session.headers:
            raise ValueError("HubSpotClient needs a token (or a session that sends one)")
        policy = policy or RetryPolicy()
        policy = replace(policy, retry_statuses=policy.retry_statuses | {423})
        if limiter is None and calls_per_10s:
            limiter = RateLimiter(calls_per_10s, 10.0, clock=clock, sleep=sleep)
        self.rest = RestClient(
            session,
            base_url,
            policy=policy,
            limiter=limiter,
            timeout=timeout,
            sleep=sleep,
            wait_hint=hubspot_wait_hint,
            is_fatal=hubspot_is_fatal,
        )
        self._ensured: set[tuple[str, frozenset[str]]] = set()

    def __repr__(self) -> str:
        return f"HubSpotClient({self.rest.base_url!r})"

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> HubSpotClient:
        """Client for an Airflow HTTP connection: host = base URL, password = token."""
        return _hook_class()(http_conn_id=conn_id).get_client(**kwargs)

    def ensure_properties(self, object_type: str, definitions: Iterable[Mapping[str, Any]]) -> list[str]:
        """Create the properties that do not exist yet (GET existing, POST missing); returns them.

        Without this a fresh portal fails every row with PROPERTY_DOESNT_EXIST. Raises
        `DestinationError` when the properties API refuses (e.g. missing schema scopes).
        """
        definitions = list(definitions)
        cache_key = (object_type, frozenset(d["name"] for d in definitions))
        if cache_key in self._ensured:
            return []
        path = f"/crm/v3/properties/{object_type}"
        response = self.rest.request("GET", path)
        if response.status_code != 200:
            raise DestinationError(
                f"listing HubSpot {object_type} properties: HTTP {response.status_code} {body_snippet(response)}",
                status=response.status_code,
                body=body_snippet(response),
            )
        existing = {p.get("name") for p in (json_body(response) or {}).get("results", [])}
        created = []
        for definition in definitions:
            if definition["name"] in existing:
                continue
            response = self.rest.request("POST", path, json=dict(definition))
            if response.status_code == 409:  # created meanwhile by a concurrent run
                continue
            if response.status_code not in (200, 201):
                raise DestinationError(
                    f"creating HubSpot {object_type} property {definition['name']}: "
                    f"HTTP {response.status_code} {body_snippet(response)}",
                    status=response.status_code,
                    body=body_snippet(response),
                )
            created.append(definition["name"])
        if created:
            log.info("created HubSpot %s properties: %s", object_type, ", ".join(created))
        self._ensured.add(cache_key)
        return created

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
                ready.append((record["record_key"], task_input(record["payload"], company)))
        for start in range(0, len(ready), MAX_BATCH):
            batch = ready[start : start + MAX_BATCH]
            keys = [k for k, _ in batch]
            try:
                response = self.rest.request(
                    "POST",
                    "/crm/v3/objects/tasks/batch/create",
                    json={"inputs": [i for _, i in batch]},
                    idempotent=False,
                )
            except DestinationError as exc:
                outcomes += failed(
                    keys, "DELIVERY_UNKNOWN" if exc.status is None else f"HTTP_{exc.status}", str(exc)
                )
                continue
            body = json_body(response)
            results = body.get("results") if isinstance(body, Mapping) else None
            if response.status_code in (200, 201) and isinstance(results, list) and len(results) == len(keys):
                outcomes += [
                    RowOutcome(k, "created", str(r.get("id"))) for k, r in zip(keys, results, strict=True)
                ]
            else:
                code, message = _http_failure(response.status_code, body, body_snippet(response))
                outcomes += failed(keys, code, message)
        return outcomes

    def upsert(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]], batch_size: int = MAX_BATCH
    ) -> list[RowOutcome]:
        """Upsert `inputs` ({id, idProperty, properties}) in batches; one outcome per input, in order.

        A repeated id fails as DUPLICATE_ID (HubSpot would reject its whole batch). After a fatal
        answer (daily quota) or an auth refusal (401/403) later batches are not sent and their
        rows fail with the same code.
        """
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
        outcomes: list[RowOutcome | None] = [None] * len(inputs)
        pending: list[tuple[int, dict[str, Any]]] = []
        seen: set[str] = set()
        for n, item in enumerate(inputs):
            key = str(item["id"])
            if key in seen:
                outcomes[n] = RowOutcome(key, "failed", None, "DUPLICATE_ID", "id repeated in this delivery")
                continue
            seen.add(key)
            trace = str(item.get("objectWriteTraceId") or key)  # makes HubSpot answer 207 per input
            pending.append((n, {**item, "id": key, "objectWriteTraceId": trace}))

        batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
        stop: tuple[str, str] | None = None
        for number, batch in enumerate(batches, 1):
            payload = [item for _, item in batch]
            keys = [item["id"] for item in payload]
            if stop is not None:
                results = failed(keys, stop[0], f"not sent: {stop[1]}")
            else:
                results, stop = self._send(object_type, payload, keys)
            for (n, _), outcome in zip(batch, results, strict=True):
                outcomes[n] = outcome
            counts = {s: sum(o.status == s for o in results) for s in ("created", "updated", "failed")}
            log.info(
                "HubSpot %s batch %d/%d: %d created, %d updated, %d failed",
                object_type,
                number,
                len(batches),
                counts["created"],
                counts["updated"],
                counts["failed"],
            )
        return _complete(outcomes)

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
            return failed(keys, "RETRIES_EXHAUSTED", str(exc)), None
        results = batch_outcomes(payload, response.status_code, json_body(response), body_snippet(response))
        if response.status_code in (401, 403):
            log.error(
                "HubSpot refused the credentials (HTTP %d); not sending more batches", response.status_code
            )
            return results, (results[0].error_code or "", results[0].error_message or "")
        return results, None


def deliver_companies(
    client: HubSpotClient,
    scores: pd.DataFrame,
    as_of: str | date | None,
    *,
    id_property: str = COMPANY_ID_PROPERTY,
    batch_size: int = MAX_BATCH,
    ensure_properties: bool = True,
) -> pd.DataFrame:
    """Push a scores frame to HubSpot companies; returns one outcome row per scores row.

    Columns: record_key, status (created|updated|failed), destination_id, error_code,
    error_message. Destination trouble shows up in the frame, not as an exception.
    """
    inputs = company_inputs(scores, id_property=id_property, as_of=as_of)
    if inputs and ensure_properties:
        try:
            client.ensure_properties("companies", COMPANY_PROPERTIES)
        except DestinationError as exc:  # the upsert below reports per row what this means
            log.warning("could not ensure HubSpot company properties: %s", exc)
    return outcomes_frame(client.upsert("companies", inputs, batch_size=batch_size))


# -- Airflow glue (imported lazily) ---------------------------------------------------------------


@functools.cache
def _hook_class() -> type:
    from airflow.providers.http.hooks.http import HttpHook

    class HubSpotHook(HttpHook):
        """`HttpHook` for HubSpot: connection host is the base URL, password the bearer token.

        The one place a HubSpot connection is looked up. Login is ignored: HubSpot takes no
        basic auth, and sending the token as basic auth would leak it into the wrong header.
        """

        hook_name = "HubSpot"
        default_host = DEFAULT_BASE_URL  # a connection without host talks to HubSpot itself

        def __init__(self, http_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
            super().__init__(method="POST", http_conn_id=http_conn_id, **kwargs)

        def _configure_session_from_auth(
            self, session: requests.Session, connection: Any
        ) -> requests.Session:
            return bearer_auth(session, connection.password, self.http_conn_id, "HubSpot token")

        def get_client(self, **kwargs: Any) -> HubSpotClient:
            session = self.get_conn()
            return HubSpotClient(self.base_url, session=session, **kwargs)

    return HubSpotHook


def __getattr__(name: str) -> Any:
    """`HubSpotHook` is built on first access so importing this module never imports Airflow."""
    if name == "HubSpotHook":
        return _hook_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

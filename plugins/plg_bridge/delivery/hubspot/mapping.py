"""HubSpot mapping: scores, contacts and signals -> batch inputs; HubSpot's answers -> row outcomes.

Pure functions (no network, no Airflow), unit-tested on small frames.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, cast

from plg_bridge.delivery.base import FieldSpec
from plg_bridge.delivery.convert import day, flag_text, number_text, score_fields, score_rows, text
from plg_bridge.delivery.convert import missing as _missing
from plg_bridge.delivery.outcomes import RowOutcome, failed

if TYPE_CHECKING:
    import pandas as pd


log = logging.getLogger(__name__)


DEFAULT_BASE_URL = "https://api.hubapi.com"
DEFAULT_CONN_ID = "hubspot_default"
MAX_BATCH = 100  # HubSpot object batch endpoints take at most 100 inputs
MAX_VALUE_CHARS = 65_536  # the longest value a property holds (HubSpot's properties guide)
MAX_DETAIL_CHARS = 2_000  # of a signal's detail in a task body: one huge detail would sink its batch
COMPANY_ID_PROPERTY = "posthog_group_id"

_GROUP = "companyinformation"  # exists in every portal, so creating properties needs no group first


def _field(
    name: str,
    label: str,
    type_: str,
    field_type: str,
    description: str,
    *,
    object_type: str = "companies",
    **extra: Any,
) -> FieldSpec:
    group = {"companies": _GROUP, "contacts": "contactinformation", "tasks": "task_information"}[object_type]
    return FieldSpec(
        name, type_, label, object_type, description, {"fieldType": field_type, "groupName": group, **extra}
    )


def property_definition(spec: FieldSpec) -> dict[str, Any]:
    """A field as HubSpot's properties API takes it (one `inputs` item of batch/create)."""
    return {
        "name": spec.name,
        "label": spec.label,
        "type": spec.type,
        "description": spec.description,
        **spec.extra,
    }


COMPANY_FIELDS: tuple[FieldSpec, ...] = (
    _field(
        COMPANY_ID_PROPERTY,
        "PostHog group ID",
        "string",
        "text",
        "PostHog organization (group) id; plg-bridge upserts companies by it.",
        hasUniqueValue=True,
    ),
    _field(
        "plg_pql_score",
        "PQL score",
        "number",
        "number",
        "Product-qualified-lead score (plg-bridge).",
    ),
    _field(
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
    _field(
        "plg_events_this_week",
        "Events this week",
        "number",
        "number",
        "Product events, last 7 days.",
    ),
    _field(
        "plg_events_last_week",
        "Events last week",
        "number",
        "number",
        "Product events, prior 7 days.",
    ),
    _field(
        "plg_active_creators",
        "Active creators",
        "number",
        "number",
        "Members who created content.",
    ),
    _field(
        "plg_integrations_connected",
        "Integrations connected",
        "number",
        "number",
        "Connected integrations.",
    ),
    _field("plg_scored_at", "PQL scored at", "date", "date", "Date the PQL score was computed."),
)
CONTACT_FIELDS: tuple[FieldSpec, ...] = tuple(
    _field(*spec, object_type="contacts")
    for spec in (
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
TASK_KEY_PROPERTY = "plg_signal_key"
TASK_FIELDS: tuple[FieldSpec, ...] = (
    _field(
        TASK_KEY_PROPERTY,
        "PLG signal key",
        "string",
        "text",
        "The plg-bridge signal this task was created for (finds it again after a lost answer).",
        object_type="tasks",
    ),
)
# HubSpot's wire form of the same fields (what its properties API lists and takes)
COMPANY_PROPERTIES = tuple(property_definition(f) for f in COMPANY_FIELDS)
CONTACT_PROPERTIES = tuple(property_definition(f) for f in CONTACT_FIELDS)
TASK_PROPERTIES = tuple(property_definition(f) for f in TASK_FIELDS)


# -- pure mapping: scores -> inputs ---------------------------------------------------------------


def company_inputs(
    scores: pd.DataFrame, id_property: str = COMPANY_ID_PROPERTY, as_of: str | date | None = None
) -> list[dict[str, Any]]:
    """Batch-upsert inputs, one per scores row, keyed by `org_id` on `id_property`.

    Missing values are left out rather than sent blank, so a gap in this week's data never wipes
    what a salesperson sees (and a null org name never blanks the company's name).
    """
    scored_at = day(as_of)
    inputs = []
    for row in score_rows(scores):
        candidates = {
            "name": text(row["org_name"], MAX_VALUE_CHARS),  # longer: HubSpot refuses the company
            **score_fields(row, number_text, flag_text),
            "plg_scored_at": scored_at,
        }
        properties = {k: v for k, v in candidates.items() if v is not None}
        inputs.append({"id": str(row["org_id"]), "idProperty": id_property, "properties": properties})
    return inputs


TASK_TO_COMPANY = 192  # HubSpot-defined association type: task -> company


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
            "plg_signup_at": day(row["signup_at"]),
            "plg_aha_reached_at": day(row["aha_reached_at"]),
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
            + (
                f" Detail: {html_text(text(row['detail'], MAX_DETAIL_CHARS, ellipsis=True))}."
                if not _missing(row["detail"])
                else ""
            )
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

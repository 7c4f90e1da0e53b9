"""Intercom mapping: frames -> company, tag and event records; error.list answers -> codes."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

from plg_bridge.delivery.base import FieldSpec
from plg_bridge.delivery.convert import (
    SCORE_COLUMNS,
    boolean,
    integer,
    score_fields,
    text,
    unix_day,
    unix_time,
)
from plg_bridge.delivery.convert import missing as _missing
from plg_bridge.delivery.outcomes import RowOutcome

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


def _attribute(name: str, data_type: str, description: str) -> FieldSpec:
    return FieldSpec(name, data_type, name, "company", description)


def attribute_definition(spec: FieldSpec) -> dict[str, str]:
    """A field as Intercom's `POST /data_attributes` takes it."""
    return {"name": spec.name, "model": spec.object, "data_type": spec.type, "description": spec.description}


COMPANY_FIELDS: tuple[FieldSpec, ...] = (
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
# Intercom's wire form of the same fields
COMPANY_ATTRIBUTES: tuple[dict[str, str], ...] = tuple(attribute_definition(f) for f in COMPANY_FIELDS)
ATTRIBUTE_TYPES = {a["name"]: a["data_type"] for a in COMPANY_ATTRIBUTES}


# -- pure mapping: values ---------------------------------------------------------------------


def _text(value: Any, limit: int | None = None) -> str | None:
    return text(value, limit, squash=True)


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
    scored_at = unix_day(as_of)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in _rows(scores[list(SCORE_COLUMNS)]):
        org = str(row["org_id"])
        seen.add(org)
        attributes = {
            **score_fields(row, integer, boolean),
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
        created_at = unix_time(row.get("occurred_at")) or unix_day(row.get("as_of"))
        if who is None or created_at is None:
            skipped += 1
            continue
        metadata = {
            "signal_key": _text(row["signal_key"], MAX_METADATA_TEXT),
            "milestone": _text(row.get("detail"), MAX_METADATA_TEXT),
            "org_id": _text(row.get("org_id"), MAX_METADATA_TEXT),
            "org_name": _text(row.get("org_name"), MAX_METADATA_TEXT),
            "pql_score": integer(row.get("pql_score")),
            "is_pql": boolean(row.get("is_pql")),
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

"""Salesforce mapping: frames -> Account records and Bulk CSV; Salesforce's answers -> row outcomes."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from plg_bridge.delivery.convert import day, flag, number, score_rows, text
from plg_bridge.delivery.convert import missing as _missing
from plg_bridge.delivery.outcomes import RowOutcome, failed

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


DEFAULT_CONN_ID = "salesforce_default"
DEFAULT_API_VERSION = "v67.0"
DEFAULT_EXTERNAL_ID_FIELD = "PostHog_Group_Id__c"
DEFAULT_LEAD_ORG_FIELD = "PostHog_Group_Id__c"
DEFAULT_PQL_STATUS = "PQL"
DEFAULT_BULK_THRESHOLD = 2000
COLLECTION_LIMIT = 200  # sObject Collections take at most 200 records per call
SOQL_IN_CHUNK = 200  # org ids per `IN (...)` list: keeps each SOQL statement far below its length limit
TEXT_LIMIT = 255  # default length of a Salesforce text field
RETRYABLE_ERROR_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "API_TEMPORARILY_UNAVAILABLE"})
BULK_FINAL_STATES = frozenset({"JobComplete", "Failed", "Aborted"})

SIGNAL_SOURCES = ("pql_crossed_at", "pql_reason", "signals")
# source -> Account field. Sources are the scores columns (bar org_id, which is the external id)
# and three values derived from the signals frame. Defaults are fields the PLG package of the org
# (and the fake) has; events and creator counts have no Account field there, so they are off by
# default: map them with e.g. {"events_this_week": "Events_7d__c"}.
DEFAULT_FIELD_MAP: dict[str, str | None] = {
    "org_name": "Name",
    "pql_score": "PLG_Score__c",
    "is_pql": "PQL__c",
    "events_this_week": None,
    "events_last_week": None,
    "active_creators": None,
    "integrations_connected": None,
    "pql_crossed_at": "PQL_Date__c",  # date of the latest pql_crossed signal
    "pql_reason": "PQL_Reason__c",  # its detail
    "signals": "PLG_Signals__c",  # ';'-joined signal types the org raised in this frame
}
_IDENTIFIER = re.compile(r"^[A-Za-z]\w*$")
_USAGE = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")  # not per-app-api-usage


# -- pure mapping: frames -> Account records ------------------------------------------------------


def _plain(value: Any) -> Any:
    return number(value)


def _flag(value: Any) -> bool | str | None:
    return flag(value)  # unrecognised text: Salesforce rejects that row with a clear message


def _text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    return text(value, limit, ellipsis=True)


def _day(value: Any) -> str | None:
    """ISO date (UTC) of a timestamp, datetime, date or ISO string."""
    return day(value)


def resolve_field_map(field_map: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """`DEFAULT_FIELD_MAP` with `field_map` laid over it (None switches a source off)."""
    merged = dict(DEFAULT_FIELD_MAP)
    for source, target in (field_map or {}).items():
        if source not in merged:
            known = ", ".join(sorted(merged))
            raise ValueError(f"unknown Salesforce field-map source {source!r} (known: {known})")
        if target is not None and not _IDENTIFIER.match(target):
            raise ValueError(f"field-map target {target!r} is not a Salesforce field API name")
        merged[source] = target
    targets = [t for t in merged.values() if t]
    if len(targets) != len({t.lower() for t in targets}):
        raise ValueError(f"field map sends two sources to one field: {targets}")
    return {source: target for source, target in merged.items() if target}


def _signal_values(signals: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """Per org: pql_crossed_at / pql_reason of its latest pql_crossed signal, and its signal types."""
    if signals is None or len(signals) == 0:
        return {}
    missing = [c for c in ("signal", "org_id") if c not in signals.columns]
    if missing:
        raise ValueError(f"signals frame lacks columns: {', '.join(missing)}")
    out: dict[str, dict[str, Any]] = {}
    signals = signals[signals["org_id"].notna()]
    for org_id, rows in signals.groupby(signals["org_id"].astype(str), sort=False):
        kinds = sorted({str(s) for s in rows["signal"] if not _missing(s)})
        values: dict[str, Any] = {"signals": _text(";".join(kinds))}
        crossings = rows[rows["signal"] == "pql_crossed"]
        if len(crossings):
            if "occurred_at" in crossings.columns and crossings["occurred_at"].notna().any():
                import pandas as pd

                when = pd.to_datetime(crossings["occurred_at"], utc=True, errors="coerce")
                crossings = crossings.assign(_when=when).sort_values("_when", na_position="first")
                values["pql_crossed_at"] = _day(crossings["_when"].iloc[-1])
            latest = crossings.iloc[-1]
            values["pql_reason"] = _text(latest["detail"]) if "detail" in crossings.columns else None
        out[str(org_id)] = values
    return out


def account_records(
    scores: pd.DataFrame,
    signals: pd.DataFrame | None = None,
    field_map: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Account records `{"record_key": org_id, "fields": {field: value}}`, one per scores row.

    The external id field is not among the fields: the client adds it from `record_key`. Missing
    values are left out rather than sent blank, so a gap in this week's data never wipes what a
    salesperson sees (a null org name keeps the Account's Name). Signal-derived fields
    (PQL date and reason of the latest `pql_crossed`, the ';'-joined signal types) are set only
    for organizations that have signals in `signals`; signals of organizations absent from
    `scores` are ignored (they have no record here).
    """
    mapping = resolve_field_map(field_map)
    by_org = _signal_values(signals)
    records = []
    for row in score_rows(scores):
        key = str(row["org_id"])
        values: dict[str, Any] = {
            "org_name": _text(row["org_name"]),
            "pql_score": _plain(row["pql_score"]),
            "is_pql": _flag(row["is_pql"]),
            "events_this_week": _plain(row["events_this_week"]),
            "events_last_week": _plain(row["events_last_week"]),
            "active_creators": _plain(row["active_creators"]),
            "integrations_connected": _plain(row["integrations_connected"]),
            **by_org.get(key, {}),
        }
        fields = {
            target: values[source] for source, target in mapping.items() if values.get(source) is not None
        }
        records.append({"record_key": key, "fields": fields})
    ignored = set(by_org) - {r["record_key"] for r in records}
    if ignored:
        log.info("Salesforce: signals of %d organizations without a scores row ignored", len(ignored))
    return records


def pql_crossed_org_ids(signals: pd.DataFrame | None) -> list[str]:
    """Organizations with a `pql_crossed` signal, first occurrence order, no repeats."""
    if signals is None or len(signals) == 0:
        return []
    rows = signals[(signals["signal"] == "pql_crossed") & signals["org_id"].notna()]
    return list(dict.fromkeys(str(o) for o in rows["org_id"]))


def _csv_value(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""  # Bulk API: empty = leave the field as it is (same as omitting it in JSON)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")  # the job declares lineEnding LF
    return str(value)


def bulk_csv(records: Sequence[Mapping[str, Any]], external_id_field: str) -> str:
    """Bulk 2.0 upload CSV: external id column first, then every field any record sets, LF lines."""
    columns: dict[str, None] = {}
    for record in records:
        for name in record["fields"]:
            if name.lower() != external_id_field.lower():
                columns.setdefault(name, None)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([external_id_field, *columns])
    for record in records:
        fields = record["fields"]
        writer.writerow([_csv_value(record["record_key"]), *(_csv_value(fields.get(c)) for c in columns)])
    return out.getvalue()


# -- pure mapping: Salesforce answers -> row outcomes ---------------------------------------------


def error_of(status: int, body: Any, text: str = "") -> tuple[str, str]:
    """(code, message) of a refused call: Salesforce's `[{message, errorCode, fields}]` body."""
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0]
        code = first.get("errorCode") or first.get("statusCode")
        if code:
            return str(code), str(first.get("message") or "")
    if isinstance(body, Mapping) and body.get("error"):  # OAuth endpoint
        return f"OAUTH_{str(body['error']).upper()}", str(body.get("error_description") or body["error"])
    return f"HTTP_{status}", text[:300] or f"HTTP {status}"


def _record_error(result: Mapping[str, Any]) -> tuple[str, str]:
    errors = [e for e in result.get("errors") or [] if isinstance(e, Mapping)]
    if not errors:
        return "UNKNOWN_ERROR", "Salesforce reported failure without an error"
    first = errors[0]
    message = str(first.get("message") or "")
    fields = first.get("fields") or []
    if fields:
        message = f"{message} (fields: {', '.join(map(str, fields))})"
    return str(first.get("statusCode") or "UNKNOWN_ERROR"), message


def collection_outcomes(
    keys: Sequence[str], status: int, body: Any, text: str = "", *, upsert: bool = True
) -> list[RowOutcome]:
    """One outcome per key from an sObject Collections answer (results are in input order).

    Upserts: created / updated by `created`; updates: updated. A missing result fails its row
    as NO_RESULT; a refused call (non-200) fails every row with Salesforce's errorCode.
    """
    if status != 200 or not isinstance(body, list):
        code, message = error_of(status, body, text)
        return failed(keys, code, message)
    outcomes = []
    for n, key in enumerate(keys):
        result = body[n] if n < len(body) and isinstance(body[n], Mapping) else None
        if result is None:
            outcomes.append(RowOutcome(key, "failed", None, "NO_RESULT", "Salesforce returned no result"))
        elif result.get("success"):
            created = upsert and bool(result.get("created"))
            record_id = result.get("id")
            outcomes.append(
                RowOutcome(key, "created" if created else "updated", record_id and str(record_id))
            )
        else:
            code, message = _record_error(result)
            outcomes.append(RowOutcome(key, "failed", None, code, message))
    return outcomes


def _csv_rows(text: str | None) -> list[dict[str, str]]:
    if not text:
        return []
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _key_column(row: Mapping[str, str], external_id_field: str) -> str | None:
    return next((c for c in row if c and c.lower() == external_id_field.lower()), None)


def bulk_outcomes(
    keys: Sequence[str],
    external_id_field: str,
    successful: str | None,
    failed_results: str | None,
    unprocessed: str | None,
    *,
    job_note: str = "",
) -> list[RowOutcome]:
    """One outcome per key from a Bulk 2.0 job's three result CSVs, matched on the external id.

    successfulResults -> created / updated (`sf__Created`); failedResults -> failed with the code
    before the first ':' of `sf__Error`; unprocessedrecords -> failed UNPROCESSED (the next run
    sends them again). A key no CSV mentions fails as NO_RESULT. `job_note` (job id, state,
    errorMessage) is added to the messages of unprocessed and unaccounted rows.
    """
    position = {key: n for n, key in enumerate(keys)}
    outcomes: list[RowOutcome | None] = [None] * len(keys)
    note = f" ({job_note})" if job_note else ""

    def place(rows: list[dict[str, str]], make: Callable[[str, dict[str, str]], RowOutcome]) -> None:
        column = _key_column(rows[0], external_id_field) if rows else None
        for row in rows:
            key = row.get(column) if column else None
            n = position.get(key) if key is not None else None
            if n is not None and outcomes[n] is None:
                outcomes[n] = make(key, row)

    def ok(key: str, row: dict[str, str]) -> RowOutcome:
        created = str(row.get("sf__Created", "")).lower() == "true"
        return RowOutcome(key, "created" if created else "updated", row.get("sf__Id") or None)

    def bad(key: str, row: dict[str, str]) -> RowOutcome:
        error = row.get("sf__Error") or "UNKNOWN_ERROR:no error text"
        code, _, message = error.partition(":")
        message = message.removesuffix(":--").removesuffix(" --")
        return RowOutcome(key, "failed", None, code.strip() or "UNKNOWN_ERROR", message or error)

    def skipped(key: str, row: dict[str, str]) -> RowOutcome:
        return RowOutcome(key, "failed", None, "UNPROCESSED", f"not processed by the Bulk job{note}")

    place(_csv_rows(successful), ok)
    place(_csv_rows(failed_results), bad)
    place(_csv_rows(unprocessed), skipped)
    for n, outcome in enumerate(outcomes):
        if outcome is None:
            outcomes[n] = RowOutcome(
                keys[n], "failed", None, "NO_RESULT", f"the Bulk job's results do not mention this row{note}"
            )
    return cast("list[RowOutcome]", outcomes)


def lead_status_outcomes(
    org_ids: Sequence[str],
    leads_by_org: Mapping[str, Sequence[str]],
    lead_results: Mapping[str, RowOutcome],
    org_errors: Mapping[str, tuple[str, str]] | None = None,
) -> list[RowOutcome]:
    """One outcome per organization from its leads' update results.

    - an org-level error (query failed, status missing) -> failed with it;
    - any lead failed -> failed with the first failed lead's code ("k of n leads failed ...");
    - otherwise updated, destination_id = the org's lead ids (updated or already at the status),
      comma-joined; an organization without leads is "updated" with destination_id None (nothing
      to change is success: the next run looks again only if the org's data changes).
    """
    org_errors = org_errors or {}
    outcomes = []
    for org in org_ids:
        if org in org_errors:
            code, message = org_errors[org]
            outcomes.append(RowOutcome(org, "failed", None, code, message))
            continue
        leads = list(leads_by_org.get(org, ()))
        results = [(lead, lead_results.get(lead)) for lead in leads]
        bad = [(lead, r) for lead, r in results if r is not None and r.status == "failed"]
        if bad:
            lead, first = bad[0]
            message = f"{len(bad)} of {len(leads)} leads failed; lead {lead}: {first.error_message}"
            outcomes.append(RowOutcome(org, "failed", None, first.error_code, message))
        else:
            outcomes.append(RowOutcome(org, "updated", ",".join(leads) or None))
    return outcomes

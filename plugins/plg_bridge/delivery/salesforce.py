"""Salesforce destination: PQL scores onto Accounts, the PQL lead status onto the org's Leads.

Three layers, kept apart so each can be tested alone (same shape as the HubSpot destination):

- pure mapping: `account_records` (scores + signals frames -> Account records), `bulk_csv`
  (records -> a Bulk API 2.0 CSV), `collection_outcomes` / `bulk_outcomes` (Salesforce's answers
  -> one `RowOutcome` per record) and `lead_status_outcomes` (lead results -> one outcome per
  organization);
- transport: `SalesforceClient`, a thin wrapper over `RestClient` that gets and caches an OAuth 2.0
  client-credentials token (refreshed once on 401 and the call replayed), treats 403
  REQUEST_LIMIT_EXCEEDED as fatal for the run (the client then refuses every further call),
  retries UNABLE_TO_LOCK_ROW / API_TEMPORARILY_UNAVAILABLE / 5xx, logs `Sforce-Limit-Info` and
  speaks sObject Collections, SOQL and Bulk API 2.0 ingest;
- Airflow glue: `SalesforceHook` (an `HttpHook`; host = My Domain URL, login = client id, password
  = client secret, extra `{"api_version": "v67.0"}`), `SalesforceClient.from_connection`,
  `deliver_accounts` and `deliver_lead_status` for the DAG tasks.

Airflow and pandas are imported lazily: this module is imported at DAG parse time and outside
Airflow. A destination problem never raises out of the `deliver_*` functions: every input row
comes back as created, updated or failed with a code.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

import requests

from plg_bridge.delivery.http import (
    DestinationError,
    FatalDestinationError,
    RateLimiter,
    RestClient,
    RetriesExhausted,
    RetryPolicy,
    body_snippet,
    json_body,
)
from plg_bridge.delivery.outcomes import RowOutcome, failed, outcomes_frame
from plg_bridge.delivery.payload import missing as _missing
from plg_bridge.delivery.payload import score_rows

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


# -- errors -----------------------------------------------------------------------------------------


class SalesforceError(DestinationError):
    """A call Salesforce refused; `code` is its errorCode (or HTTP_<status>)."""

    def __init__(self, message: str, *, code: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message, status=status, body=body)
        self.code = code


class SalesforceStop(FatalDestinationError):
    """Stop this destination for the run: daily API limit or credentials Salesforce refuses.

    Once raised, the client refuses every further call with the same error (no network).
    """

    def __init__(self, message: str, *, code: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message, status=status, body=body)
        self.code = code


# -- pure mapping: frames -> Account records ------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready scalar: numpy/pandas scalars to Python, integral floats to int, NaN to None."""
    if _missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return value


def _flag(value: Any) -> bool | str | None:
    if _missing(value):
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "t", "yes", "y", "1"}:
            return True
        if lowered in {"false", "f", "no", "n", "0"}:
            return False
        return value  # not ours to fix here: Salesforce rejects that row with a clear message
    return bool(value)


def _text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    if _missing(value):
        return None
    if isinstance(value, Mapping | list):
        value = json.dumps(value, sort_keys=True, default=str)
    text = str(value).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _day(value: Any) -> str | None:
    """ISO date (UTC) of a timestamp, datetime, date or ISO string."""
    if _missing(value):
        return None
    import pandas as pd

    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC")
    return stamp.date().isoformat()


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


# -- Salesforce's transport policy ----------------------------------------------------------------


def _error_codes(response: requests.Response) -> set[str]:
    body = json_body(response)
    if isinstance(body, list):
        return {str(e.get("errorCode")) for e in body if isinstance(e, Mapping) and e.get("errorCode")}
    return set()


def salesforce_is_fatal(response: requests.Response) -> bool:
    """The daily API request limit is spent: retrying in this run only burns what is left."""
    return response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in _error_codes(response)


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """(used, max) from `Sforce-Limit-Info: api-usage=N/M`."""
    match = _USAGE.search(value or "")
    return (int(match[1]), int(match[2])) if match else None


def normalize_version(version: str) -> str:
    """'v67.0', '67.0' and '67' all mean 'v67.0'."""
    text = str(version).strip().lower().removeprefix("v")
    if not re.fullmatch(r"\d+(\.\d+)?", text):
        raise ValueError(f"Salesforce API version {version!r} is not like 'v67.0'")
    return f"v{float(text):.1f}"


def _soql_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceClient:
    """Salesforce REST over `RestClient` with an OAuth 2.0 client-credentials token.

    `base_url` is the My Domain URL (https://<domain>.my.salesforce.com); the token's
    `instance_url` is used for data calls, as Salesforce asks. The token is fetched on first use,
    cached, and refreshed once when a call answers 401 (that call is then replayed: a 401 means
    nothing was applied). A 403 REQUEST_LIMIT_EXCEEDED, or credentials the token endpoint refuses,
    stop the client for the run (`stopped`): later calls raise the same `SalesforceStop` without
    touching the network. No limiter by default: Salesforce meters a daily request count, not a
    rate; pass `limiter` to cap concurrency-heavy runs.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        api_version: str = DEFAULT_API_VERSION,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        use_instance_url: bool = True,
    ) -> None:
        if not base_url or "://" not in base_url:
            raise ValueError(
                f"Salesforce base URL {base_url!r} needs a scheme (https://...my.salesforce.com)"
            )
        if not client_id or not client_secret:
            raise ValueError("SalesforceClient needs a client id and a client secret")
        session = session or requests.Session()
        session.auth = None  # the bearer header only; never basic auth with the client secret
        self.base_url = base_url.rstrip("/")
        self.api_version = normalize_version(api_version)
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.use_instance_url = use_instance_url
        self.rest = RestClient(
            session,
            self.base_url,
            policy=self.policy,
            limiter=limiter,
            timeout=timeout,
            sleep=sleep,
            is_fatal=salesforce_is_fatal,
        )
        self._client_id, self._client_secret = client_id, client_secret
        self._token: str | None = None
        self._instance_url = self.base_url
        self._token_lock = threading.Lock()
        self.token_fetches = 0
        self.stopped: SalesforceStop | None = None
        self.api_usage: tuple[int, int] | None = None
        self._usage_warned = False
        self._lead_statuses: dict[str, bool] | None = None

    def __repr__(self) -> str:
        return f"SalesforceClient({self.base_url!r}, api_version={self.api_version!r})"

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> SalesforceClient:
        """Client for an Airflow HTTP connection: host = My Domain URL, login/password = client
        id/secret, extra `{"api_version": "v67.0"}` (a keyword argument wins over the extra)."""
        return _hook_class()(http_conn_id=conn_id).get_client(**kwargs)

    # -- auth -----------------------------------------------------------------------------------

    def _stop(self, code: str, message: str, status: int | None = None, body: str = "") -> SalesforceStop:
        if self.stopped is None:
            self.stopped = SalesforceStop(message, code=code, status=status, body=body)
            log.error("Salesforce stopped for this run: %s %s", code, message)
        return self.stopped

    def token(self) -> str:
        """The cached access token, fetched on first use."""
        with self._token_lock:
            if self._token is None:
                self._fetch_token()
            return cast("str", self._token)

    def _refresh(self, stale: str) -> None:
        with self._token_lock:
            if self._token == stale:  # another thread may have refreshed it already
                self._token = None
                self._fetch_token()

    def _fetch_token(self) -> None:
        if self.stopped is not None:
            raise self.stopped
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        try:
            response = self.rest.request(
                "POST", "/services/oauth2/token", data=form, headers={"Accept": "application/json"}
            )
        except FatalDestinationError as exc:
            code, message = error_of(exc.status or 0, _loads(exc.body), exc.body)
            raise self._stop(code, f"token request refused: {message}", exc.status, exc.body) from exc
        self.token_fetches += 1
        body = json_body(response)
        if response.status_code == 200 and isinstance(body, Mapping) and body.get("access_token"):
            self._token = str(body["access_token"])
            if self.use_instance_url and body.get("instance_url"):
                self._instance_url = str(body["instance_url"]).rstrip("/")
            log.info("Salesforce token obtained for %s", self._instance_url)
            return
        code, message = error_of(response.status_code, body, body_snippet(response))
        message = f"token request refused: {message}"
        if response.status_code in (400, 401, 403):  # wrong credentials or app setup: not fixable in-run
            raise self._stop(code, message, response.status_code, body_snippet(response))
        raise SalesforceError(message, code=code, status=response.status_code, body=body_snippet(response))

    # -- calls ----------------------------------------------------------------------------------

    def data_url(self, path: str) -> str:
        """Absolute URL: as given, `/services/...` on the instance, else under /services/data/vXX.X/."""
        if "://" in path:
            return path
        if path.startswith("/services/"):
            return f"{self._instance_url}{path}"
        return f"{self._instance_url}/services/data/{self.api_version}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> requests.Response:
        """One authenticated call; returns the first answer that is not retried.

        Retries (through `RestClient`) 429/5xx/network errors; here, a 4xx whose errorCode is
        UNABLE_TO_LOCK_ROW or API_TEMPORARILY_UNAVAILABLE, and a 401 once after a new token.
        Raises `SalesforceStop` (daily limit, refused credentials) and `RetriesExhausted`.
        """
        if self.stopped is not None:
            raise self.stopped
        url = self.data_url(path)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = self.token()
            try:
                response = self.rest.request(
                    method,
                    url,
                    json=json,
                    data=data,
                    headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                    idempotent=idempotent,
                )
            except FatalDestinationError as exc:
                code, message = error_of(exc.status or 0, _loads(exc.body), exc.body)
                raise self._stop(code, message, exc.status, exc.body) from exc
            self._note_usage(response)
            if response.status_code == 401:
                if not refreshed:
                    log.info("Salesforce session expired (%s %s): new token, replaying", method, path)
                    refreshed = True
                    self._refresh(token)
                    continue
                code, message = error_of(401, json_body(response), body_snippet(response))
                raise self._stop(code, f"refused a fresh token: {message}", 401, body_snippet(response))
            if (
                400 <= response.status_code < 500
                and _error_codes(response) & RETRYABLE_ERROR_CODES
                and attempt < self.policy.max_attempts
            ):
                wait = self.policy.backoff(attempt)
                log.warning("%s %s: %s, retry in %.2fs", method, path, _error_codes(response), wait)
                self.sleep(wait)
                continue
            return response

    def _note_usage(self, response: requests.Response) -> None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is None:
            return
        self.api_usage = usage
        used, limit = usage
        log.debug("Salesforce API usage %d/%d", used, limit)
        if limit and used >= 0.9 * limit and not self._usage_warned:
            self._usage_warned = True
            log.warning("Salesforce API usage at %d/%d of the daily request limit", used, limit)

    def query(self, soql: str) -> list[dict[str, Any]]:
        """All records of a SOQL query, following `nextRecordsUrl`. Raises `SalesforceError`."""
        records: list[dict[str, Any]] = []
        path: str | None = f"query?{urlencode({'q': soql})}"
        while path:
            response = self.request("GET", path)
            body = json_body(response)
            if response.status_code != 200 or not isinstance(body, Mapping):
                code, message = error_of(response.status_code, body, body_snippet(response))
                raise SalesforceError(
                    f"query failed: {code} {message}", code=code, status=response.status_code
                )
            records.extend(body.get("records") or [])
            path = None if body.get("done", True) else body.get("nextRecordsUrl")
        return records

    def lead_statuses(self) -> dict[str, bool]:
        """Lead status ApiName -> IsConverted, from `LeadStatus` (cached for this client)."""
        if self._lead_statuses is None:
            rows = self.query("SELECT ApiName, IsConverted FROM LeadStatus")
            self._lead_statuses = {str(r["ApiName"]): bool(r.get("IsConverted")) for r in rows}
        return dict(self._lead_statuses)

    # -- sObject Collections --------------------------------------------------------------------

    def _collection(
        self, path: str, records: list[dict[str, Any]], keys: list[str], *, upsert: bool
    ) -> list[RowOutcome]:
        """One collections call (<= 200 records); records that failed with a transient error
        (UNABLE_TO_LOCK_ROW, API_TEMPORARILY_UNAVAILABLE) are sent again, with backoff (upserts by
        external id and updates by Id are safe to replay). Never raises: trouble is outcomes.
        """
        outcomes: list[RowOutcome | None] = [None] * len(records)
        todo = list(range(len(records)))
        for round_ in range(1, self.policy.max_attempts + 1):
            payload = {"allOrNone": False, "records": [records[n] for n in todo]}
            try:
                response = self.request("PATCH", path, json=payload)
            except (SalesforceStop, SalesforceError) as exc:
                results = failed([keys[n] for n in todo], exc.code, str(exc))
            except RetriesExhausted as exc:
                results = failed([keys[n] for n in todo], "RETRIES_EXHAUSTED", str(exc))
            else:
                results = collection_outcomes(
                    [keys[n] for n in todo],
                    response.status_code,
                    json_body(response),
                    body_snippet(response),
                    upsert=upsert,
                )
            for n, outcome in zip(todo, results, strict=True):
                outcomes[n] = outcome
            todo = [n for n, o in zip(todo, results, strict=True) if o.error_code in RETRYABLE_ERROR_CODES]
            if not todo or round_ == self.policy.max_attempts:
                break
            wait = self.policy.backoff(round_)
            log.warning("Salesforce: %d records locked/unavailable, resending in %.2fs", len(todo), wait)
            self.sleep(wait)
        return cast("list[RowOutcome]", outcomes)

    def _batches(
        self,
        path: str,
        records: list[dict[str, Any]],
        keys: list[str],
        *,
        upsert: bool,
        batch_size: int,
        label: str,
    ) -> list[RowOutcome]:
        if not 1 <= batch_size <= COLLECTION_LIMIT:
            raise ValueError(f"batch_size must be between 1 and {COLLECTION_LIMIT}")
        outcomes: list[RowOutcome] = []
        total = math.ceil(len(records) / batch_size)
        for number, start in enumerate(range(0, len(records), batch_size), 1):
            chunk, chunk_keys = records[start : start + batch_size], keys[start : start + batch_size]
            if self.stopped is not None:
                outcomes += failed(chunk_keys, self.stopped.code, f"not sent: {self.stopped}")
                continue
            results = self._collection(path, chunk, chunk_keys, upsert=upsert)
            outcomes += results
            log.info("Salesforce %s batch %d/%d: %s", label, number, total, _counts(results))
        return outcomes

    def upsert_collection(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        batch_size: int = COLLECTION_LIMIT,
    ) -> list[RowOutcome]:
        """Upsert `records` ({record_key, fields}) by `external_id_field`, <= 200 per call.

        One outcome per record, in order. After a stop (daily limit, credentials) the remaining
        batches are not sent and their rows fail with the stop's code.
        """
        _check_identifier(sobject, external_id_field)
        payload = [_sobject_record(sobject, external_id_field, r) for r in records]
        keys = [str(r["record_key"]) for r in records]
        path = f"composite/sobjects/{sobject}/{external_id_field}"
        return self._batches(
            path, payload, keys, upsert=True, batch_size=batch_size, label=f"{sobject} upsert"
        )

    def update_collection(
        self, sobject: str, records: Sequence[Mapping[str, Any]], batch_size: int = COLLECTION_LIMIT
    ) -> list[RowOutcome]:
        """Update records by `Id` (`{"Id": ..., field: value}`); outcomes keyed by record Id."""
        _check_identifier(sobject)
        payload = [{"attributes": {"type": sobject}, **r} for r in records]
        keys = [str(r["Id"]) for r in records]
        return self._batches(
            "composite/sobjects",
            payload,
            keys,
            upsert=False,
            batch_size=batch_size,
            label=f"{sobject} update",
        )

    # -- Bulk API 2.0 ---------------------------------------------------------------------------

    def bulk_upsert(
        self,
        sobject: str,
        external_id_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        poll_interval: float = 5.0,
        max_polls: int = 120,
    ) -> list[RowOutcome]:
        """Upsert through one Bulk API 2.0 ingest job; one outcome per record, in order.

        Lifecycle: create job -> PUT the CSV -> UploadComplete -> poll (at most `max_polls`
        GETs, `poll_interval` apart; a job still running then is aborted) -> read
        successfulResults, failedResults and unprocessedrecords and map them back by external id.
        """
        _check_identifier(sobject, external_id_field)
        keys = [str(r["record_key"]) for r in records]
        if not records:
            return []
        if self.stopped is not None:
            return failed(keys, self.stopped.code, f"not sent: {self.stopped}")
        job_id: str | None = None
        try:
            job_id = self._create_job(sobject, external_id_field)
            upload = self.request(
                "PUT",
                f"jobs/ingest/{job_id}/batches",
                data=bulk_csv(records, external_id_field).encode("utf-8"),
                headers={"Content-Type": "text/csv"},
                idempotent=False,  # a second upload to one job is refused: never replay it
            )
            if upload.status_code not in (200, 201):
                code, message = error_of(upload.status_code, json_body(upload), body_snippet(upload))
                self._abort(job_id)
                return failed(keys, code, f"Bulk job {job_id} upload refused: {message}")
            closed = self.request("PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"})
            if closed.status_code != 200 and "INVALIDJOBSTATE" not in _error_codes(closed):
                code, message = error_of(closed.status_code, json_body(closed), body_snippet(closed))
                self._abort(job_id)
                return failed(keys, code, f"Bulk job {job_id} could not be closed: {message}")
            info = self._wait_for_job(job_id, poll_interval, max_polls)
            note = f"job {job_id} {info.get('state')}"
            if info.get("errorMessage"):
                note += f": {info['errorMessage']}"
            log.info(
                "Salesforce Bulk %s: %s processed, %s failed",
                note,
                info.get("numberRecordsProcessed"),
                info.get("numberRecordsFailed"),
            )
            results = {kind: self._job_results(job_id, kind) for kind in _RESULT_KINDS}
        except SalesforceStop as stop:
            return failed(keys, stop.code, str(stop))
        except SalesforceError as exc:
            if job_id is not None:
                self._abort(job_id)
            return failed(keys, exc.code, str(exc))
        except RetriesExhausted as exc:
            if job_id is not None:
                self._abort(job_id)
            return failed(keys, "RETRIES_EXHAUSTED", str(exc))
        outcomes = bulk_outcomes(
            keys,
            external_id_field,
            results["successfulResults"],
            results["failedResults"],
            results["unprocessedrecords"],
            job_note=note,
        )
        log.info("Salesforce %s bulk upsert: %s", sobject, _counts(outcomes))
        return outcomes

    def _create_job(self, sobject: str, external_id_field: str) -> str:
        spec = {
            "object": sobject,
            "operation": "upsert",
            "externalIdFieldName": external_id_field,
            "contentType": "CSV",
            "lineEnding": "LF",
        }
        response = self.request("POST", "jobs/ingest", json=spec)
        body = json_body(response)
        if response.status_code not in (200, 201) or not isinstance(body, Mapping) or not body.get("id"):
            code, message = error_of(response.status_code, body, body_snippet(response))
            raise SalesforceError(f"Bulk job not created: {message}", code=code, status=response.status_code)
        return str(body["id"])

    def _wait_for_job(self, job_id: str, poll_interval: float, max_polls: int) -> dict[str, Any]:
        info: dict[str, Any] = {}
        for poll in range(1, max_polls + 1):
            response = self.request("GET", f"jobs/ingest/{job_id}")
            body = json_body(response)
            if response.status_code != 200 or not isinstance(body, Mapping):
                code, message = error_of(response.status_code, body, body_snippet(response))
                raise SalesforceError(f"Bulk job {job_id} status: {message}", code=code)
            info = dict(body)
            if info.get("state") in BULK_FINAL_STATES:
                return info
            if poll < max_polls:
                self.sleep(poll_interval)
        log.warning(
            "Salesforce Bulk job %s still %s after %d polls: aborting", job_id, info.get("state"), max_polls
        )
        aborted = self._abort(job_id)
        info = {**info, **(aborted or {})}
        info.setdefault("state", "Aborted")
        info["errorMessage"] = f"not finished after {max_polls} polls, aborted"
        return info

    def _abort(self, job_id: str) -> dict[str, Any] | None:
        """Best effort: abort a job we give up on (its unprocessed rows are retried next run)."""
        try:
            response = self.request("PATCH", f"jobs/ingest/{job_id}", json={"state": "Aborted"})
        except DestinationError as exc:
            log.warning("Salesforce Bulk job %s not aborted: %s", job_id, exc)
            return None
        body = json_body(response)
        return dict(body) if response.status_code == 200 and isinstance(body, Mapping) else None

    def _job_results(self, job_id: str, kind: str) -> str | None:
        response = self.request("GET", f"jobs/ingest/{job_id}/{kind}/", headers={"Accept": "text/csv"})
        if response.status_code != 200:
            log.warning(
                "Salesforce Bulk job %s %s: HTTP %d %s",
                job_id,
                kind,
                response.status_code,
                body_snippet(response),
            )
            return None
        return response.content.decode("utf-8-sig")


_RESULT_KINDS = ("successfulResults", "failedResults", "unprocessedrecords")


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _check_identifier(*names: str) -> None:
    for name in names:
        if not _IDENTIFIER.match(name or ""):
            raise ValueError(f"{name!r} is not a Salesforce API name")


def _sobject_record(sobject: str, external_id_field: str, record: Mapping[str, Any]) -> dict[str, Any]:
    fields = {k: _plain(v) for k, v in record["fields"].items() if k.lower() != external_id_field.lower()}
    return {"attributes": {"type": sobject}, external_id_field: str(record["record_key"]), **fields}


def _counts(outcomes: Iterable[RowOutcome]) -> str:
    counts = {"created": 0, "updated": 0, "failed": 0}
    for outcome in outcomes:
        counts[outcome.status] += 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _dedupe(keys: Sequence[str]) -> tuple[list[int], dict[int, RowOutcome]]:
    """Positions to send (first occurrence of each key) and DUPLICATE_ID outcomes for repeats."""
    seen: set[str] = set()
    send, repeats = [], {}
    for n, key in enumerate(keys):
        if key in seen:
            repeats[n] = RowOutcome(
                key, "failed", None, "DUPLICATE_ID", "record key repeated in this delivery"
            )
        else:
            seen.add(key)
            send.append(n)
    return send, repeats


# -- delivery entry points ------------------------------------------------------------------------


def deliver_accounts(
    client: SalesforceClient,
    records: Sequence[Mapping[str, Any]],
    bulk_threshold: int | None = DEFAULT_BULK_THRESHOLD,
    *,
    external_id_field: str = DEFAULT_EXTERNAL_ID_FIELD,
    sobject: str = "Account",
    batch_size: int = COLLECTION_LIMIT,
    bulk_poll_interval: float = 5.0,
    bulk_max_polls: int = 120,
) -> pd.DataFrame:
    """Upsert Account records (from `account_records`); one outcome row per record, in order.

    More than `bulk_threshold` records (None: never) go through one Bulk API 2.0 job, fewer
    through sObject Collections. A repeated record key fails as DUPLICATE_ID and is not sent.
    Columns: record_key, status (created|updated|failed), destination_id, error_code,
    error_message. Destination trouble shows up in the frame, not as an exception.
    """
    keys = [str(r["record_key"]) for r in records]
    send, repeats = _dedupe(keys)
    unique = [records[n] for n in send]
    if not unique:
        results: list[RowOutcome] = []
    elif bulk_threshold is not None and len(unique) > bulk_threshold:
        results = client.bulk_upsert(
            sobject, external_id_field, unique, poll_interval=bulk_poll_interval, max_polls=bulk_max_polls
        )
    else:
        results = client.upsert_collection(sobject, external_id_field, unique, batch_size=batch_size)
    outcomes: list[RowOutcome | None] = [None] * len(records)
    for n, outcome in zip(send, results, strict=True):
        outcomes[n] = outcome
    for n, outcome in repeats.items():
        outcomes[n] = outcome
    if any(o is None for o in outcomes):
        raise RuntimeError("internal error: a record has no outcome")
    final = cast("list[RowOutcome]", outcomes)
    log.info("Salesforce %s delivery: %s (API usage %s)", sobject, _counts(final), _usage(client))
    return outcomes_frame(final)


def _usage(client: SalesforceClient) -> str:
    return "unknown" if client.api_usage is None else "{}/{}".format(*client.api_usage)


def set_lead_status(
    client: SalesforceClient,
    org_ids: Iterable[str],
    status: str = DEFAULT_PQL_STATUS,
    org_field: str = DEFAULT_LEAD_ORG_FIELD,
    *,
    batch_size: int = COLLECTION_LIMIT,
) -> list[RowOutcome]:
    """Set the leads of each organization to `status`; one outcome per organization (record_key =
    org id), in first-occurrence order.

    1. `status` must be a `LeadStatus` ApiName (queried once per client): otherwise every row
       fails LEAD_STATUS_MISSING and nothing is queried or updated.
    2. Leads are read with `SELECT Id, Status, <org_field> FROM Lead WHERE <org_field> IN (...)`
       (200 org ids per query, pages followed). Leads already at `status` are skipped, and so are
       converted leads (status with IsConverted), which Salesforce does not let us edit.
    3. The rest are updated with sObject Collections (200 per call, allOrNone false).
    See `lead_status_outcomes` for how lead results make the organization's outcome.
    """
    _check_identifier(org_field)
    orgs = list(dict.fromkeys(str(o) for o in org_ids))
    if not orgs:
        return []
    if client.stopped is not None:
        return failed(orgs, client.stopped.code, f"not sent: {client.stopped}")
    try:
        statuses = client.lead_statuses()
    except (SalesforceStop, SalesforceError) as exc:
        return failed(orgs, exc.code, f"reading LeadStatus: {exc}")
    except RetriesExhausted as exc:
        return failed(orgs, "RETRIES_EXHAUSTED", f"reading LeadStatus: {exc}")
    if status not in statuses:
        available = ", ".join(repr(s) for s in statuses) or "none"
        message = (
            f"Lead status {status!r} does not exist in this org's LeadStatus values ({available}); "
            "add it to the Lead Status picklist or configure an existing value"
        )
        log.error("Salesforce: %s", message)
        return failed(orgs, "LEAD_STATUS_MISSING", message)
    converted = {name for name, is_converted in statuses.items() if is_converted}

    wanted = set(orgs)
    leads_by_org: dict[str, list[str]] = {}
    org_errors: dict[str, tuple[str, str]] = {}
    updates: list[dict[str, Any]] = []
    for start in range(0, len(orgs), SOQL_IN_CHUNK):
        chunk = orgs[start : start + SOQL_IN_CHUNK]
        soql = (
            f"SELECT Id, Status, {org_field} FROM Lead "
            f"WHERE {org_field} IN ({', '.join(_soql_quote(o) for o in chunk)})"
        )
        try:
            rows = client.query(soql)
        except (SalesforceStop, SalesforceError) as exc:
            org_errors.update(dict.fromkeys(chunk, (exc.code, f"querying leads: {exc}")))
            continue
        except RetriesExhausted as exc:
            org_errors.update(dict.fromkeys(chunk, ("RETRIES_EXHAUSTED", f"querying leads: {exc}")))
            continue
        for row in rows:
            org = row.get(org_field)
            if org is None or str(org) not in wanted:  # SOQL matches text case-insensitively
                continue
            leads_by_org.setdefault(str(org), []).append(str(row["Id"]))
            if row.get("Status") != status and row.get("Status") not in converted:
                updates.append({"Id": str(row["Id"]), "Status": status})
    results = client.update_collection("Lead", updates, batch_size=batch_size) if updates else []
    lead_results = {r.record_key: r for r in results}
    outcomes = lead_status_outcomes(orgs, leads_by_org, lead_results, org_errors)
    log.info(
        "Salesforce lead status %r: %d organizations, %d leads found, %d updated, %d failed",
        status,
        len(orgs),
        sum(len(v) for v in leads_by_org.values()),
        sum(r.status != "failed" for r in results),
        sum(r.status == "failed" for r in results),
    )
    return outcomes


def deliver_lead_status(
    client: SalesforceClient,
    org_ids: Iterable[str],
    status: str = DEFAULT_PQL_STATUS,
    org_field: str = DEFAULT_LEAD_ORG_FIELD,
    *,
    batch_size: int = COLLECTION_LIMIT,
) -> pd.DataFrame:
    """`set_lead_status` as an outcomes frame (one row per distinct organization)."""
    return outcomes_frame(set_lead_status(client, org_ids, status, org_field, batch_size=batch_size))


# -- Airflow glue (imported lazily) ---------------------------------------------------------------

_OWN_EXTRAS = ("api_version",)


@functools.cache
def _hook_class() -> type:
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk.log import mask_secret

    class SalesforceHook(HttpHook):
        """`HttpHook` for Salesforce: host = My Domain URL, login = client id, password = secret.

        The one place a Salesforce connection is looked up. The session sends no basic auth (the
        secret goes only to the token endpoint, in the form body); extra `api_version` selects the
        REST version and is kept out of the session's headers.
        """

        hook_name = "Salesforce (client credentials)"

        def __init__(self, http_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
            super().__init__(method="POST", http_conn_id=http_conn_id, **kwargs)
            self._credentials: tuple[str, str] | None = None
            self._api_version: str | None = None

        def _configure_session_from_auth(
            self, session: requests.Session, connection: Any
        ) -> requests.Session:
            if not connection.host:
                raise ValueError(
                    f"Airflow connection {self.http_conn_id!r} has no host: put the My Domain URL there"
                )
            if not connection.login or not connection.password:
                raise ValueError(
                    f"Airflow connection {self.http_conn_id!r} needs login (client id) and password "
                    "(client secret) of the External Client App"
                )
            mask_secret(connection.password)
            self._credentials = (connection.login, connection.password)
            self._api_version = connection.extra_dejson.get("api_version")
            session.auth = None
            return session

        def get_client(self, **kwargs: Any) -> SalesforceClient:
            session = self.get_conn()
            for name in _OWN_EXTRAS:
                session.headers.pop(name, None)
            if "timeout" not in kwargs and self.merged_extra.get("timeout") is not None:
                kwargs["timeout"] = float(self.merged_extra["timeout"])
            if self._api_version and "api_version" not in kwargs:
                kwargs["api_version"] = self._api_version
            client_id, client_secret = cast("tuple[str, str]", self._credentials)
            return SalesforceClient(self.base_url, client_id, client_secret, session=session, **kwargs)

    return SalesforceHook


def __getattr__(name: str) -> Any:
    """`SalesforceHook` is built on first access so importing this module never imports Airflow."""
    if name == "SalesforceHook":
        return _hook_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

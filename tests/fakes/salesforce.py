"""A fake Salesforce org over real HTTP: OAuth 2.0 client credentials, sObject Collections upsert and
update, Bulk API 2.0 ingest, a little SOQL, the daily API request limit and Salesforce's error bodies
(lists of {message, errorCode, fields}).

State tests assert on: `records[sObject][Id]` (dicts of field values, `Id` included), `accounts`
(Account records by external id), `leads`, `jobs` (Bulk 2.0 job info by id), `api_usage`, `tokens`.

Run alone: `python -m tests.fakes.salesforce --port 8701` (prints its URL, serves until killed).
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.server import FakeServer, Request, Response, route

API_VERSIONS = tuple(f"{v}.0" for v in range(31, 68))  # Summer '14 ... Summer '26 (v67.0)
DEFAULT_LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
PQL_STATUS = "PQL"
DEFAULT_OBJECTS: dict[str, tuple[str, ...]] = {
    "Account": (
        "Id",
        "Name",
        "Website",
        "Industry",
        "NumberOfEmployees",
        "PostHog_Group_Id__c",
        "PLG_Score__c",
        "PLG_Stage__c",
        "PQL__c",
        "PQL_Date__c",
        "PQL_Reason__c",
        "PLG_Signals__c",
        "Active_Users_7d__c",
        "Active_Users_30d__c",
        "Last_Active_At__c",
        "Plan__c",
        "Seats__c",
    ),
    "Lead": ("Id", "FirstName", "LastName", "Company", "Email", "Status", "PostHog_Group_Id__c", "OwnerId"),
}
DEFAULT_EXTERNAL_IDS = {"Account": ("PostHog_Group_Id__c",)}
# Fields a new record must carry (Salesforce's documented required fields of the standard objects)
REQUIRED_ON_CREATE = {"Account": ("Name",), "Lead": ("LastName", "Company")}
# Text lengths that differ from the 255 of a default text field (long text areas)
TEXT_LENGTH = {"PQL_Reason__c": 32768, "PLG_Signals__c": 32768}
COLLECTION_LIMIT = 200
_LEAD_STATUS_FIELDS = ("Id", "ApiName", "MasterLabel", "SortOrder", "IsDefault", "IsConverted")
_KEY_PREFIX = {
    "Account": "001",
    "Lead": "00Q",
    "LeadStatus": "01J",
    "Job": "750",
    "User": "005",
    "Org": "00D",
}
_ROLLED_BACK = (
    "Record rolled back because not all records were valid and the request was using AllOrNone header"
)
V = r"/services/data/v(?P<version>\d+\.\d)"


def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce id: key prefix, a fake pod, a base-62 serial and the case checksum."""
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    serial = ""
    while n or not serial:
        n, r = divmod(n, 62)
        serial = digits[r] + serial
    id15 = f"{prefix}Fk{serial:0>10}"
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, c in enumerate(chunk) if c.isupper())
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


def sf_error(status: int, code: str, message: str, fields: list[str] | None = None) -> Response:
    return Response(status, [{"message": message, "errorCode": code, "fields": fields or []}])


def _err(code: str, message: str, fields: list[str] | None = None) -> dict:
    return {"statusCode": code, "message": message, "fields": fields or []}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _locked(lock: threading.RLock, handler):
    @functools.wraps(handler)
    def run(request: Request) -> Response:
        with lock:
            return handler(request)

    return run


@dataclass
class _Job:
    info: dict[str, Any]
    data: str | None = None
    polls_left: int = 0
    columns: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)


class FakeSalesforce(FakeServer):
    def __init__(
        self,
        *,
        client_id: str = "plg-client-id",
        client_secret: str = "plg-client-secret",
        api_versions: Iterable[str] = API_VERSIONS,
        daily_limit: int = 100_000,
        sobjects: Mapping[str, Iterable[str]] | None = None,
        external_ids: Mapping[str, Iterable[str]] | None = None,
        lead_statuses: Iterable[str] = DEFAULT_LEAD_STATUSES,
        with_pql_status: bool = False,
        fail_records: Mapping[str, tuple] | None = None,
        bulk_polls: int = 1,
        query_page_size: int = 2000,
        api_usage: int = 0,
        token_lifetime: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        """
        sobjects: known fields per sObject (writing another -> INVALID_FIELD); `Id` is implied.
        external_ids: fields usable as upsert keys per sObject.
        fail_records: {external id value or record Id: (statusCode, message[, times])}: those
            records fail with that error in collections and bulk jobs (`times` uses, else always).
        bulk_polls: how many job-info GETs after UploadComplete still see InProgress.
        api_usage: daily API requests already used (by the customer's other integrations): the
            `Sforce-Limit-Info: api-usage=USED/LIMIT` header counts on from there.
        token_lifetime: data calls an access token serves; the next one answers 401
            INVALID_SESSION_ID and the token is gone (a session that expired mid-run).
        """
        super().__init__(host, port)
        self._routes = [(m, rx, _locked(self._lock, h)) for m, rx, h in self._routes]
        self.client_id, self.client_secret = client_id, client_secret
        self.api_versions = tuple(api_versions)
        self.daily_limit = daily_limit
        self.api_usage = api_usage
        self.token_lifetime = token_lifetime
        self._token_uses: dict[str, int] = {}
        self.bulk_polls = bulk_polls
        self.query_page_size = query_page_size
        objects = {k: tuple(v) for k, v in (sobjects or DEFAULT_OBJECTS).items()}
        objects.setdefault("LeadStatus", _LEAD_STATUS_FIELDS)
        self.fields = {name: {f.lower(): f for f in ("Id", *fs)} for name, fs in objects.items()}
        self.external_ids = {k: set(v) for k, v in (external_ids or DEFAULT_EXTERNAL_IDS).items()}
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in objects}
        self._indexes: dict[tuple[str, str], tuple[int, dict[str, str]]] = {}  # see _key_index
        self.jobs: dict[str, dict[str, Any]] = {}  # Bulk 2.0 job info by id
        self._jobs: dict[str, _Job] = {}
        self._cursors: dict[str, tuple[list[dict], int]] = {}
        self.tokens: set[str] = set()
        self.fail_records: dict[str, list] = {}
        for key, spec in (fail_records or {}).items():
            self.fail_record(key, *spec)
        self._serial = itertools.count(1)
        self.org_id = self._new_id("Org")
        self.user_id = self._new_id("User")
        for status in (*lead_statuses, *([PQL_STATUS] if with_pql_status else [])):
            self.add_lead_status(status)

    # Two transport tweaks the base could take over (then delete these): answer without Nagle's
    # delay (headers and body go out in two writes; with keep-alive each call otherwise waits ~40 ms
    # for a delayed ACK) and poll for shutdown every 50 ms instead of 500 ms so stop() is quick.
    def _handler_class(self):
        handler = super()._handler_class()
        handler.disable_nagle_algorithm = True
        return handler

    def start(self) -> FakeSalesforce:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    # -- test helpers ------------------------------------------------------------------------

    def _new_id(self, kind: str) -> str:
        return sf_id(_KEY_PREFIX.get(kind, "a0X"), next(self._serial))

    def expire_tokens(self) -> None:
        """Every issued access token now answers 401 INVALID_SESSION_ID."""
        with self._lock:
            self.tokens.clear()

    def issue_token(self) -> str:
        """A valid access token without going through /services/oauth2/token."""
        with self._lock:
            token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(32)}"
            self.tokens.add(token)
            return token

    def fail_record(self, key: str, code: str, message: str, times: int | None = None) -> None:
        with self._lock:
            self.fail_records[key] = [code, message, times]

    def add_lead_status(self, api_name: str, *, converted: bool = False) -> str:
        with self._lock:
            rows = self.records["LeadStatus"]
            status_id = self._new_id("LeadStatus")
            rows[status_id] = {
                "Id": status_id,
                "ApiName": api_name,
                "MasterLabel": api_name,
                "SortOrder": len(rows) + 1,
                "IsDefault": not rows,
                "IsConverted": converted or ("Converted" in api_name and "Not" not in api_name),
            }
            return status_id

    def add_record(self, sobject: str, **values: Any) -> str:
        with self._lock:
            record_id = self._new_id(sobject)
            self.records[sobject][record_id] = {"Id": record_id, **values}
            return record_id

    def add_lead(self, **values: Any) -> str:
        values.setdefault("Status", self.lead_statuses[0] if self.lead_statuses else None)
        return self.add_record("Lead", **values)

    @property
    def lead_statuses(self) -> list[str]:
        return [row["ApiName"] for row in self.records["LeadStatus"].values()]

    @property
    def leads(self) -> dict[str, dict[str, Any]]:
        return self.records.get("Lead", {})

    @property
    def accounts(self) -> dict[str, dict[str, Any]]:
        """Account records keyed by their (first) external id field's value."""
        key = sorted(self.external_ids.get("Account", {"Id"}))[0]
        return {rec[key]: rec for rec in self.records.get("Account", {}).values() if rec.get(key) is not None}

    # -- auth, versions, limits ----------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        match = re.match(V + r"(/|$)", request.path)
        if not match:
            return None  # token endpoint, version list, unknown paths
        token = (request.header("authorization") or "").removeprefix("Bearer ").strip()
        with self._lock:
            uses = self._token_uses[token] = self._token_uses.get(token, 0) + 1
            if self.token_lifetime is not None and uses > self.token_lifetime:
                self.tokens.discard(token)
            if token not in self.tokens:
                return Response(
                    401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
                )
            self.api_usage += 1
            if self.api_usage > self.daily_limit:
                return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        if match["version"] not in self.api_versions:
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        return None

    def dispatch(self, request: Request) -> Response | None:
        response = super().dispatch(request)
        if response is None or not request.path.startswith("/services/data/v"):
            return response
        usage = f"api-usage={self.api_usage}/{self.daily_limit}"
        return replace(response, headers={**response.headers, "Sforce-Limit-Info": usage})

    def not_found(self, request: Request) -> Response:
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist")

    def state(self) -> dict[str, Any]:
        """For `GET /_fake/state`: accounts by external id and leads by id."""
        with self._lock:
            return {"accounts": self.accounts, "leads": self.leads}

    @route("POST", r"/services/oauth2/token")
    def oauth_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in {**request.query, **parse_qs(request.body.decode())}.items()}
        if form.get("grant_type") != "client_credentials":
            return Response(
                400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
            )
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return Response(
                400, {"error": "invalid_client", "error_description": "invalid client credentials"}
            )
        token = self.issue_token()
        return Response(
            200,
            {
                "access_token": token,
                "signature": secrets.token_urlsafe(32),
                "scope": "api",
                "instance_url": self.url,
                "id": f"{self.url}/id/{self.org_id}/{self.user_id}",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
            },
        )

    @route("GET", r"/services/data/?")
    def versions(self, request: Request) -> Response:
        return Response(
            200, [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in self.api_versions]
        )

    @route("GET", V + r"/limits/?")
    def limits(self, request: Request) -> Response:
        remaining = max(self.daily_limit - self.api_usage, 0)
        return Response(200, {"DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining}})

    # -- field helpers -----------------------------------------------------------------------

    def _field(self, sobject: str, name: str) -> str | None:
        return self.fields.get(sobject, {}).get(name.lower())

    def _sobject(self, name: str) -> str | None:
        return next((s for s in self.fields if s.lower() == name.lower()), None)

    def _take_failure(self, *keys: Any) -> dict | None:
        for key in keys:
            spec = self.fail_records.get(key) if isinstance(key, str) else None
            if spec:
                code, message, times = spec
                if times is not None:
                    spec[2] -= 1
                    if spec[2] <= 0:
                        del self.fail_records[key]
                return _err(code, message)
        return None

    # -- saving records (collections and bulk share this) ------------------------------------

    def _key_index(self, sobject: str, key: str) -> dict[str, str]:
        """External id value -> record id, kept between calls (a scan of every record per call
        made a 50,000-record load quadratic and the fake, not the client, the bottleneck).
        Rebuilt whenever records were added or removed other than through `_save`."""
        rows = self.records[sobject]
        cached = self._indexes.get((sobject, key))
        if cached is None or cached[0] != len(rows):
            index = {str(r[key]): i for i, r in rows.items() if r.get(key) is not None}
            cached = self._indexes[(sobject, key)] = (len(rows), index)
        return cached[1]

    def _save(self, items: list[tuple[str, dict]], op: str, key: str | None, all_or_none: bool) -> list[dict]:
        """Validate then apply insert/update/upsert of (sObject, raw record) pairs, in order.

        Returns one result per item: {id, success, errors[, created]} as Salesforce does.
        """
        plans: list[tuple[str, str | None, dict, list[dict]]] = []  # (sobject, target id, values, errors)
        keys_seen: dict[str, int] = {}
        by_key: dict[str, dict[str, str]] = {}  # sobject -> external id value -> record id
        for sobject, raw in items:
            values: dict[str, Any] = {}
            errors: list[dict] = []
            for name, value in raw.items():
                if name == "attributes":
                    continue
                canonical = self._field(sobject, name)
                if canonical is None:
                    errors.append(
                        _err("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")
                    )
                else:
                    values[canonical] = value
            target = None
            if op == "upsert":
                key_value = values.get(key)
                if key_value in (None, ""):
                    errors.append(_err("MISSING_ARGUMENT", f"{key} not specified", [key]))
                else:
                    keys_seen[str(key_value)] = keys_seen.get(str(key_value), 0) + 1
                    if sobject not in by_key:
                        by_key[sobject] = self._key_index(sobject, key)
                    target = by_key[sobject].get(str(key_value))
            elif op == "update":
                target = values.pop("Id", None)
                if not target:
                    errors.append(_err("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"]))
                elif len(target) not in (15, 18):
                    errors.append(_err("MALFORMED_ID", f"Id: malformed id {target}", ["Id"]))
                else:
                    rows = self.records[sobject]
                    target = target if target in rows else next((i for i in rows if i[:15] == target), None)
                    if target is None:
                        errors.append(
                            _err("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])
                        )
            if target is None and op in ("upsert", "insert") and not errors:
                # a create needs the object's required fields (Salesforce: Name on Account,
                # LastName and Company on Lead); an update leaves them as they are
                absent = [f for f in REQUIRED_ON_CREATE.get(sobject, ()) if values.get(f) in (None, "")]
                if absent:
                    errors.append(
                        _err(
                            "REQUIRED_FIELD_MISSING",
                            f"Required fields are missing: [{', '.join(absent)}]",
                            absent,
                        )
                    )
            for name, value in values.items():
                if isinstance(value, str) and len(value) > TEXT_LENGTH.get(name, 255) and name != "Id":
                    errors.append(
                        _err("STRING_TOO_LONG", f"{name}: data value too large: {value[:20]}...", [name])
                    )
            status = values.get("Status")
            if sobject == "Lead" and "Status" in values and status not in self.lead_statuses:
                errors.append(
                    _err(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"Status: bad value for restricted picklist field: {status}",
                        ["Status"],
                    )
                )
            plans.append((sobject, target, values, errors))
        for _sobject, target, values, errors in plans:
            key_value = values.get(key) if key else None
            if key and keys_seen.get(str(key_value), 0) > 1:
                errors.append(_err("DUPLICATE_VALUE", f"Duplicate external id specified: {key_value}", [key]))
            if not errors:
                failure = self._take_failure(key_value, target)
                if failure:
                    errors.append(failure)
        failed = any(errors for *_, errors in plans)
        results = []
        for sobject, target, values, errors in plans:
            result: dict[str, Any] = {"id": None, "success": False, "errors": errors}
            if op == "upsert":
                result["created"] = False
            if not errors and all_or_none and failed:
                result["errors"] = [_err("ALL_OR_NONE_OPERATION_ROLLED_BACK", _ROLLED_BACK)]
            elif not errors:
                created = target is None
                record_id = target or self._new_id(sobject)
                record = self.records[sobject].setdefault(record_id, {"Id": record_id})
                record.update(values)
                for (indexed, field_name), (count, index) in list(self._indexes.items()):
                    if indexed == sobject and record.get(field_name) is not None:
                        index[str(record[field_name])] = record_id
                        self._indexes[(indexed, field_name)] = (count + created, index)
                result.update(id=record_id, success=True)
                if op == "upsert":
                    result["created"] = created
            results.append(result)
        return results

    def _json(self, request: Request) -> tuple[Any, Response | None]:
        try:
            return json.loads(request.body or b"null"), None
        except ValueError as exc:
            return None, sf_error(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}")

    def _collection(self, request: Request) -> tuple[list | None, bool, Response | None]:
        body, error = self._json(request)
        if error:
            return None, False, error
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return None, False, sf_error(400, "JSON_PARSER_ERROR", "records: expected a list of sObjects")
        if len(records) > COLLECTION_LIMIT:
            message = (
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call"
            )
            return None, False, sf_error(400, "EXCEEDED_ID_LIMIT", message)
        return records, bool(body.get("allOrNone", False)), None

    # -- sObject Collections ---------------------------------------------------------------

    @route("PATCH", V + r"/composite/sobjects/(?P<sobject>\w+)/(?P<field>\w+)/?")
    def upsert_collection(self, request: Request) -> Response:
        sobject = self._sobject(request.params["sobject"])
        if sobject is None:
            return self.not_found(request)
        key = self._field(sobject, request.params["field"])
        if key is None or key not in self.external_ids.get(sobject, ()):
            message = (
                f"Provided external ID field does not exist or is not accessible: {request.params['field']}"
            )
            return sf_error(404, "NOT_FOUND", message)
        records, all_or_none, error = self._collection(request)
        if error:
            return error
        for record in records:
            rtype = (record.get("attributes") or {}).get("type")
            if not rtype:
                return sf_error(400, "INVALID_TYPE", "Must send a concrete entity type.")
            if self._sobject(rtype) != sobject:
                return sf_error(400, "INVALID_TYPE", f"Records must all be of type {sobject}, not {rtype}")
        return Response(200, self._save([(sobject, r) for r in records], "upsert", key, all_or_none))

    @route("PATCH", V + r"/composite/sobjects/?")
    def update_collection(self, request: Request) -> Response:
        records, all_or_none, error = self._collection(request)
        if error:
            return error
        items = []
        for record in records:
            sobject = self._sobject((record.get("attributes") or {}).get("type") or "")
            if sobject is None:
                return sf_error(400, "INVALID_TYPE", "Must send a concrete entity type.")
            items.append((sobject, record))
        results = self._save(items, "update", None, all_or_none)
        return Response(200, results)

    # -- SOQL --------------------------------------------------------------------------------

    @route("GET", V + r"/query/?")
    def query(self, request: Request) -> Response:
        soql = (request.query.get("q") or [""])[0]
        try:
            sobject, fields, rows = self._run_soql(soql)
        except _SoqlError as exc:
            return sf_error(400, exc.code, exc.message)
        version = request.params["version"]
        records = [
            {
                "attributes": {
                    "type": sobject,
                    "url": f"/services/data/v{version}/sobjects/{sobject}/{row['Id']}",
                },
                **{f: row.get(f) for f in fields},
            }
            for row in rows
        ]
        return Response(200, self._page(records, 0, version))

    @route("GET", V + r"/query/(?P<locator>[\w-]+)")
    def query_more(self, request: Request) -> Response:
        cursor = self._cursors.get(request.params["locator"])
        if cursor is None:
            return sf_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        records, offset = cursor
        return Response(200, self._page(records, offset, request.params["version"]))

    def _page(self, records: list[dict], offset: int, version: str) -> dict:
        page = records[offset : offset + self.query_page_size]
        body: dict[str, Any] = {"totalSize": len(records), "done": offset + len(page) >= len(records)}
        if not body["done"]:
            locator = f"01g{secrets.token_hex(6)}-{offset + len(page)}"
            self._cursors[locator] = (records, offset + len(page))
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}"
        body["records"] = page
        return body

    def _run_soql(self, soql: str) -> tuple[str, list[str], list[dict]]:
        match = _SOQL.match(soql)
        if not match:
            raise _SoqlError("MALFORMED_QUERY", f"unexpected token in query: {soql!r}")
        sobject = self._sobject(match["object"])
        if sobject is None:
            raise _SoqlError("INVALID_TYPE", f"sObject type '{match['object']}' is not supported.")
        fields = [self._column(sobject, f.strip()) for f in match["fields"].split(",")]
        rows = list(self.records[sobject].values())
        for name, op, values in _parse_where(match["where"] or ""):
            column = self._column(sobject, name)
            wanted = {None if v is None else str(v) for v in values}
            rows = [r for r in rows if (_str(r.get(column)) in wanted) != (op == "!=")]
        if match["order"]:
            column = self._column(sobject, match["order"])
            rows.sort(key=lambda r: (r.get(column) is None, str(r.get(column))), reverse=bool(match["desc"]))
        if match["limit"]:
            rows = rows[: int(match["limit"])]
        return sobject, fields, rows

    def _column(self, sobject: str, name: str) -> str:
        canonical = self._field(sobject, name)
        if canonical is None:
            raise _SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'.")
        return canonical

    # -- Bulk API 2.0 ingest -----------------------------------------------------------------

    def _job(self, request: Request) -> _Job | None:
        return self._jobs.get(request.params["job"])

    @route("POST", V + r"/jobs/ingest/?")
    def create_job(self, request: Request) -> Response:
        body, error = self._json(request)
        if error:
            return error
        body = body if isinstance(body, dict) else {}
        sobject = self._sobject(str(body.get("object", "")))
        operation = body.get("operation")
        if sobject is None:
            return sf_error(
                400, "INVALIDENTITY", f"Entity '{body.get('object')}' is not supported by the Bulk API."
            )
        if operation not in ("insert", "update", "upsert"):
            return sf_error(400, "INVALIDJOB", f"Operation {operation!r} is not supported by the fake")
        key = None
        if operation == "upsert":
            key = self._field(sobject, str(body.get("externalIdFieldName") or ""))
            if key is None or key not in self.external_ids.get(sobject, ()):
                field_name = body.get("externalIdFieldName")
                message = f"External ID field {field_name!r} is not an External ID of {sobject}"
                return sf_error(400, "INVALIDJOB", message)
        if body.get("contentType", "CSV") != "CSV" or body.get("columnDelimiter", "COMMA") != "COMMA":
            return sf_error(400, "INVALIDJOB", "only contentType CSV with columnDelimiter COMMA is supported")
        if body.get("lineEnding", "LF") not in ("LF", "CRLF"):
            return sf_error(400, "INVALIDJOB", f"invalid lineEnding {body.get('lineEnding')!r}")
        job_id = self._new_id("Job")
        version = request.params["version"]
        now = _now_iso()
        info = {
            "id": job_id,
            "operation": operation,
            "object": sobject,
            "createdById": self.user_id,
            "createdDate": now,
            "systemModstamp": now,
            "state": "Open",
            "externalIdFieldName": key,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "jobType": "V2Ingest",
            "contentUrl": f"services/data/v{version}/jobs/ingest/{job_id}/batches",
            "lineEnding": body.get("lineEnding", "LF"),
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        }
        self._jobs[job_id] = _Job(info)
        self.jobs[job_id] = info
        return Response(200, info)

    @route("PUT", V + r"/jobs/ingest/(?P<job>\w+)/batches/?")
    def upload_job_data(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return self.not_found(request)
        if job.info["state"] != "Open":
            return sf_error(409, "INVALIDJOBSTATE", f"Job {job.info['id']} is {job.info['state']}, not Open")
        if job.data is not None:
            message = (
                f"Found multiple contents for job: <{job.info['id']}>, please 'Close' / 'Abort' / 'Delete' "
                "the current Job then create a new Job and make sure you only do 'PUT' once on a given Job."
            )
            return sf_error(400, "BULK_API_ERROR", message)
        job.data = request.body.decode("utf-8")
        return Response(201, None)

    @route("PATCH", V + r"/jobs/ingest/(?P<job>\w+)/?")
    def change_job_state(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return self.not_found(request)
        body, error = self._json(request)
        if error:
            return error
        state, current = (body or {}).get("state"), job.info["state"]
        if state == "UploadComplete" and current == "Open":
            job.info["state"] = "UploadComplete"
            job.polls_left = self.bulk_polls
        elif state == "Aborted" and current in ("Open", "UploadComplete", "InProgress"):
            job.info["state"] = "Aborted"
            job.columns, rows = _split_csv(job.data or "")
            job.unprocessed = rows
        else:
            return sf_error(400, "INVALIDJOBSTATE", f"Cannot change job state from {current} to {state}")
        job.info["systemModstamp"] = _now_iso()
        return Response(200, job.info)

    @route("DELETE", V + r"/jobs/ingest/(?P<job>\w+)/?")
    def delete_job(self, request: Request) -> Response:
        job = self._jobs.pop(request.params["job"], None)
        if job is None:
            return self.not_found(request)
        self.jobs.pop(job.info["id"], None)
        return Response(204, None)

    @route("GET", V + r"/jobs/ingest/(?P<job>\w+)/?")
    def job_info(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return self.not_found(request)
        if job.info["state"] in ("UploadComplete", "InProgress"):
            if job.polls_left > 0:
                job.polls_left -= 1
                job.info["state"] = "InProgress"
            else:
                self._process(job)
        return Response(200, job.info)

    def _process(self, job: _Job) -> None:
        info = job.info
        data = job.data or ""
        crlf = "\r\n" in data
        bare_lf = "\n" in data.replace("\r\n", "")
        problem = None
        if not data.strip():
            problem = "InvalidBatch : Empty batch"
        elif (info["lineEnding"] == "LF" and crlf) or (info["lineEnding"] == "CRLF" and bare_lf):
            problem = (
                "ClientInputError : LineEnding is invalid on user data. "
                f"Current LineEnding setting is {info['lineEnding']}"
            )
        columns, rows = _split_csv(data)
        job.columns = columns
        sobject, key = info["object"], info["externalIdFieldName"]
        unknown = [c for c in columns if self._field(sobject, c) is None]
        if not problem and unknown:
            problem = f"InvalidBatch : Field name not found : {unknown[0]}"
        if not problem and key and key.lower() not in (c.lower() for c in columns):
            problem = f"InvalidBatch : External ID field {key} is missing from the header"
        if problem:
            info.update(state="Failed", errorMessage=problem)
            job.unprocessed = rows
            return
        items = []
        for row in rows:
            values = {c: (None if v == "#N/A" else v) for c, v in zip(columns, row, strict=False) if v != ""}
            items.append((sobject, values))
        results = self._save(items, info["operation"], key, all_or_none=False)
        for row, result in zip(rows, results, strict=True):
            if result["success"]:
                created = "true" if result.get("created", info["operation"] == "insert") else "false"
                job.successful.append([result["id"], created, *row])
            else:
                error = result["errors"][0]
                message = f"{error['statusCode']}:{error['message']}:{','.join(error['fields']) or '--'}"
                job.failed.append(["", message, *row])
        info.update(
            state="JobComplete", numberRecordsProcessed=len(rows), numberRecordsFailed=len(job.failed)
        )

    @route(
        "GET", V + r"/jobs/ingest/(?P<job>\w+)/(?P<kind>successfulResults|failedResults|unprocessedrecords)/?"
    )
    def job_results(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return self.not_found(request)
        if job.info["state"] not in ("JobComplete", "Failed", "Aborted"):
            return sf_error(
                400, "INVALIDJOBSTATE", f"Job {job.info['id']} is {job.info['state']}, not finished"
            )
        kind = request.params["kind"]
        header, rows = {
            "successfulResults": (["sf__Id", "sf__Created"], job.successful),
            "failedResults": (["sf__Id", "sf__Error"], job.failed),
            "unprocessedrecords": ([], job.unprocessed),
        }[kind]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        if job.columns or header:
            writer.writerow([*header, *job.columns])
        writer.writerows(rows)
        return Response(200, out.getvalue(), content_type="text/csv")


# -- a little SOQL -----------------------------------------------------------------------------

_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>[\w\s,.]+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?:ASC|(?P<desc>DESC)))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_TOKEN = re.compile(r"\s*('(?:[^'\\]|\\.)*'|\(|\)|,|!=|=|[A-Za-z_][\w.]*|-?\d+(?:\.\d+)?)")


class _SoqlError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _str(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def _literal(token: str) -> Any:
    if token.startswith("'"):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token.lower() == "null":
        return None
    if token.lower() in ("true", "false"):
        return token.lower()
    if re.fullmatch(r"-?\d+(?:\.\d+)?", token):
        return token
    raise _SoqlError("MALFORMED_QUERY", f"unexpected token: {token}")


def _parse_where(where: str) -> list[tuple[str, str, list[Any]]]:
    """`field = lit`, `field != lit`, `field IN (lit, ...)`, joined by AND."""
    tokens, pos = [], 0
    while pos < len(where.rstrip()):
        match = _TOKEN.match(where, pos)
        if not match:
            raise _SoqlError("MALFORMED_QUERY", f"unexpected character in WHERE at {where[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    conditions, i = [], 0
    while i < len(tokens):
        name, op = tokens[i], (tokens[i + 1] if i + 1 < len(tokens) else "").upper()
        if op in ("=", "!=") and i + 2 < len(tokens):
            conditions.append((name, op, [_literal(tokens[i + 2])]))
            i += 3
        elif op == "IN" and i + 2 < len(tokens) and tokens[i + 2] == "(":
            end = tokens.index(")", i + 3) if ")" in tokens[i + 3 :] else -1
            if end < 0:
                raise _SoqlError("MALFORMED_QUERY", "unterminated IN list")
            values = [_literal(t) for t in tokens[i + 3 : end] if t != ","]
            conditions.append((name, "IN", values))
            i = end + 1
        else:
            raise _SoqlError(
                "MALFORMED_QUERY", f"unexpected token in WHERE near {' '.join(tokens[i : i + 3])!r}"
            )
        if i < len(tokens):
            if tokens[i].upper() != "AND":
                raise _SoqlError("MALFORMED_QUERY", f"only AND is supported, got {tokens[i]!r}")
            i += 1
    return conditions


def _split_csv(data: str) -> tuple[list[str], list[list[str]]]:
    rows = [r for r in csv.reader(io.StringIO(data, newline="")) if r]
    return (rows[0], rows[1:]) if rows else ([], [])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Salesforce org until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-id", default="plg-client-id")
    parser.add_argument("--client-secret", default="plg-client-secret")
    parser.add_argument("--daily-limit", type=int, default=100_000)
    parser.add_argument("--with-pql-status", action="store_true")
    args = parser.parse_args(argv)
    server = FakeSalesforce(
        client_id=args.client_id,
        client_secret=args.client_secret,
        daily_limit=args.daily_limit,
        with_pql_status=args.with_pql_status,
        host=args.host,
        port=args.port,
    )
    server.serve_until_stopped("Salesforce")


if __name__ == "__main__":
    main()

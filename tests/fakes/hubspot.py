"""A fake HubSpot CRM v3 API on loopback: batch upsert, properties, bearer auth and rate limits.

Behaves like the parts of HubSpot plg-bridge relies on (see shared/reference/destination-apis.md
and HubSpot's error-handling docs):

- `POST /crm/v3/objects/{companies|contacts}/batch/upsert`: at most 100 inputs; `idProperty` must
  be a unique property. When every input carries an `objectWriteTraceId`, partial failures answer
  207 Multi-Status (`results`, `numErrors`, `errors[].context.objectWriteTraceId`), also when all
  inputs fail; without trace ids any invalid input rejects the whole batch with 400.
- `GET/POST /crm/v3/properties/{objectType}`: list / create property definitions (409 if taken).
- `POST /crm/v3/objects/tasks/batch/create`: no upsert, every input is a new task; a `plg_*`
  property must exist on tasks first (400 PROPERTY_DOESNT_EXIST, as for any unknown property);
  `hs_timestamp` is required (reference: "hs_timestamp (required)") and every value is checked
  against the task property's type and options (hs_task_status / _priority / _type enumerations).
- Values are validated as HubSpot documents them: number properties take numbers only, bool
  properties "true"/"false", date properties midnight-UTC epoch milliseconds or a YYYY-MM-DD date,
  enumerations their options, and no value may be longer than 65,536 characters (the limit
  HubSpot's properties documentation gives for a property value, paraphrased from memory; it is
  not in shared/reference, hence MAX_VALUE_CHARS: unverified, change it there). A contact upserted by email needs a valid address
  (INVALID_EMAIL), as HubSpot refuses to key a contact on anything else.
- `POST /crm/v3/objects/{objectType}/search`: filterGroups of EQ / IN / HAS_PROPERTY filters,
  `properties`, `limit` (<= 200), `after`; eventually consistent like HubSpot's: an object shows
  up only `search_lag` seconds after it was written.
- Bearer token auth (401 INVALID_AUTHENTICATION), a rolling ten-second budget (429
  TEN_SECONDLY_ROLLING) and a daily budget (429 DAILY), with the X-HubSpot-RateLimit-* headers.

Run standalone for demos: `python -m tests.fakes.hubspot --port 8701` (prints its URL first).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from tests.fakes.server import FakeServer, Request, Response, SlidingWindow, route

PORTAL_ID = 24681357
MAX_BATCH = 100

OBJECT_TYPES = {
    "companies": "companies",
    "0-2": "companies",
    "contacts": "contacts",
    "0-1": "contacts",
    "tasks": "tasks",
    "0-27": "tasks",
}
MAX_SEARCH_LIMIT = 200
MAX_VALUE_CHARS = 65_536  # HubSpot properties guide: the longest value a property holds
# An address HubSpot would accept: something@domain.tld, no spaces (HubSpot's check is stricter
# still, e.g. on the TLD; this is the part a mapping can get wrong).
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
PROPERTY_TYPES = {"string", "number", "bool", "date", "datetime", "enumeration"}


def prop(
    name: str,
    label: str,
    type_: str = "string",
    field_type: str = "text",
    *,
    unique: bool = False,
    group: str = "companyinformation",
    options: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A property definition as the properties API returns it."""
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": group,
        "hasUniqueValue": unique,
        "options": options or [],
    }


DEFAULT_COMPANY_PROPERTIES = (
    prop("name", "Company name"),
    prop("domain", "Company domain name"),
    prop("numberofemployees", "Number of employees", "number", "number"),
    prop("description", "Description", "string", "textarea"),
    prop("posthog_group_id", "PostHog group ID", unique=True),
)


def _options(*values: str) -> list[dict[str, Any]]:
    return [{"label": v.title(), "value": v} for v in values]


# Task properties from the reference's Tasks entry (hs_timestamp required; status, priority and
# type are enumerations). hubspot_owner_id is an owner enumeration at HubSpot; any id here.
DEFAULT_TASK_PROPERTIES = (
    prop("hs_timestamp", "Due date", "datetime", "date", group="task"),
    prop("hs_task_subject", "Task title", group="task"),
    prop("hs_task_body", "Notes", "string", "html", group="task"),
    prop(
        "hs_task_status",
        "Task status",
        "enumeration",
        "select",
        group="task",
        options=_options("NOT_STARTED", "COMPLETED"),
    ),
    prop(
        "hs_task_priority",
        "Priority",
        "enumeration",
        "select",
        group="task",
        options=_options("LOW", "MEDIUM", "HIGH"),
    ),
    prop(
        "hs_task_type",
        "Task type",
        "enumeration",
        "select",
        group="task",
        options=_options("EMAIL", "CALL", "TODO"),
    ),
    prop("hubspot_owner_id", "Task owner", group="task"),
)
DEFAULT_CONTACT_PROPERTIES = (
    prop("email", "Email", unique=True, group="contactinformation"),
    prop("firstname", "First name", group="contactinformation"),
    prop("lastname", "Last name", group="contactinformation"),
    prop("company", "Company name", group="contactinformation"),
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, category: str, message: str, **extra: Any) -> Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    body.update(extra)
    return Response(status, body)


class FakeHubSpot(FakeServer):
    """In-memory HubSpot. Inspect `objects(...)`, `find(...)`, `properties` and `requests`."""

    def __init__(
        self,
        token: str = "test-token",
        limit_per_10s: int = 190,
        daily_limit: int = 250_000,
        *,
        company_properties: Iterable[str | Mapping[str, Any]] | None = None,
        contact_properties: Iterable[str | Mapping[str, Any]] | None = None,
        window_seconds: float = 10.0,
        other_tokens: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.token = token
        # Each token (private app) has its own budget: its own rolling window, and the arrival
        # time of every call it made, refused or not (`peak_calls`).
        self.tokens = (token, *other_tokens)
        self.windows = {t: SlidingWindow(limit_per_10s, window_seconds) for t in self.tokens}
        self.arrivals: dict[str, list[float]] = {t: [] for t in self.tokens}
        self.limit_per_10s, self.daily_limit, self.window_seconds = limit_per_10s, daily_limit, window_seconds
        self.window = self.windows[token]
        self.daily_used = 0
        self._state = threading.RLock()
        self.properties: dict[str, dict[str, dict[str, Any]]] = {"companies": {}, "contacts": {}, "tasks": {}}
        self.search_lag = 0.0  # seconds before a written object shows in search results
        for object_type, given, default in (
            ("companies", company_properties, DEFAULT_COMPANY_PROPERTIES),
            ("contacts", contact_properties, DEFAULT_CONTACT_PROPERTIES),
            ("tasks", None, DEFAULT_TASK_PROPERTIES),
        ):
            for definition in default if given is None else given:
                self.add_property(object_type, definition)
        self._objects: dict[str, dict[str, dict[str, Any]]] = {"companies": {}, "contacts": {}}
        self.tasks: list[dict[str, Any]] = []  # created tasks, in order (duplicates would show here)
        self._ids = itertools.count(30_000_000_001)
        self._rate_headers: dict[int, dict[str, str]] = {}

    def start(self) -> FakeHubSpot:
        # As the base, but polling for shutdown every 50 ms (serve_forever's default is 0.5 s,
        # which every test would pay on teardown).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    # -- test helpers ------------------------------------------------------------------------

    def add_property(self, object_type: str, definition: str | Mapping[str, Any]) -> None:
        if isinstance(definition, str):
            definition = prop(definition, definition)
        full = prop(definition["name"], definition.get("label", definition["name"]))
        full.update(definition)
        self.properties[object_type][full["name"]] = full

    def objects(self, object_type: str = "companies") -> list[dict[str, Any]]:
        """Stored records: {id, properties, createdAt, updatedAt}."""
        with self._state:
            return [dict(o, properties=dict(o["properties"])) for o in self._objects[object_type].values()]

    def find(self, object_type: str, prop_name: str, value: str) -> dict[str, Any] | None:
        with self._state:
            for obj in self._objects[object_type].values():
                if obj["properties"].get(prop_name) == value:
                    return obj
        return None

    def state(self) -> dict[str, Any]:
        """For `GET /_fake/state`: records by hs id per object type, property names, quota used."""
        with self._state:
            return {
                "companies": {hs_id: dict(o) for hs_id, o in self._objects["companies"].items()},
                "contacts": {hs_id: dict(o) for hs_id, o in self._objects["contacts"].items()},
                "tasks": [dict(t) for t in self.tasks],
                "properties": {t: sorted(defs) for t, defs in self.properties.items()},
                "daily_used": self.daily_used,
            }

    # -- auth and rate limits ------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        auth = request.header("authorization") or ""
        if not auth.startswith("Bearer "):
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
                "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )
        token = auth[len("Bearer ") :]
        if token not in self.windows:
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "The access token provided is invalid or has been revoked. Check your app credentials.",
            )
        with self._state:
            if self.daily_used >= self.daily_limit:
                headers = self._headers(remaining=0)
                return Response(429, self._rate_body("daily", "DAILY"), headers)
            self.arrivals[token].append(request.received)
            allowed, remaining = self.windows[token].hit()
            headers = self._headers(remaining=remaining)
            if not allowed:
                return Response(429, self._rate_body("ten_secondly_rolling", "TEN_SECONDLY_ROLLING"), headers)
            self.daily_used += 1
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(self.daily_limit - self.daily_used)
            self._rate_headers[id(request)] = headers
        return None

    def peak_calls(self, token: str | None = None) -> int:
        """The most calls (admitted or refused) one token made within any window: above
        `limit_per_10s` means its clients together overran the app's budget."""
        times = sorted(self.arrivals[token or self.token])
        peak, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= self.window_seconds:
                start += 1
            peak = max(peak, end - start + 1)
        return peak

    def _headers(self, remaining: int) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(self.limit_per_10s),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_seconds * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily_limit - self.daily_used)),
        }

    @staticmethod
    def _rate_body(limit_name: str, policy: str) -> dict[str, Any]:
        return {
            "status": "error",
            "message": f"You have reached your {limit_name} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
        }

    def dispatch(self, request: Request) -> Response | None:
        response = super().dispatch(request)
        headers = self._rate_headers.pop(id(request), None)
        if response is not None and headers:
            for name, value in headers.items():
                response.headers.setdefault(name, value)
        return response

    def not_found(self, request: Request) -> Response:
        return _error(404, "OBJECT_NOT_FOUND", f"No route for {request.method} {request.path}")

    # -- properties API ------------------------------------------------------------------------

    def _object_type(self, raw: str) -> str | None:
        return OBJECT_TYPES.get(raw)

    @route("GET", r"/crm/v3/properties/(?P<object_type>[^/]+)")
    def list_properties(self, request: Request) -> Response:
        object_type = self._object_type(request.params["object_type"])
        if object_type is None:
            return _error(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {request.params['object_type']}"
            )
        with self._state:
            return Response(200, {"results": list(self.properties[object_type].values())})

    @route("POST", r"/crm/v3/properties/(?P<object_type>[^/]+)")
    def create_property(self, request: Request) -> Response:
        object_type = self._object_type(request.params["object_type"])
        if object_type is None:
            return _error(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {request.params['object_type']}"
            )
        body = request.json or {}
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            return _error(400, "VALIDATION_ERROR", f"Missing required fields: {', '.join(missing)}")
        if body["type"] not in PROPERTY_TYPES:
            return _error(400, "VALIDATION_ERROR", f"Invalid property type: {body['type']}")
        with self._state:
            if body["name"] in self.properties[object_type]:
                return _error(
                    409, "OBJECT_ALREADY_EXISTS", f"Property named '{body['name']}' already exists."
                )
            definition = prop(body["name"], body["label"])
            definition.update(body)
            definition.update(createdAt=_now(), updatedAt=_now())
            self.properties[object_type][definition["name"]] = definition
        return Response(201, definition)

    @route("POST", r"/crm/v3/properties/(?P<object_type>[^/]+)/batch/create")
    def create_properties(self, request: Request) -> Response:
        """Properties batch create: 201 when every input was created, else 207 with an error per
        refused input (an existing name, a missing field, an unknown type)."""
        inputs = (request.json or {}).get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "VALIDATION_ERROR", "inputs must be a non-empty list")
        results, errors = [], []
        for item in inputs:
            single = Request("POST", request.path, {}, request.headers, json.dumps(item).encode())
            single.params = request.params
            answer = self.create_property(single)
            if answer.status == 201:
                results.append(answer.body)
            else:
                errors.append(
                    {"status": "error", **answer.body, "context": {"name": [str((item or {}).get("name"))]}}
                )
        body = {"status": "COMPLETE", "results": results}
        if errors:
            body.update(numErrors=len(errors), errors=errors)
        return Response(207 if errors else 201, body)

    # -- tasks (no upsert: every create is a new task) ----------------------------------------

    @route("POST", r"/crm/v3/objects/tasks/batch/create")
    def create_tasks(self, request: Request) -> Response:
        """Tasks batch create: hs_timestamp required, associations to existing companies (type 192)."""
        inputs = (request.json or {}).get("inputs")
        if not isinstance(inputs, list) or not inputs or len(inputs) > MAX_BATCH:
            return _error(400, "VALIDATION_ERROR", f"inputs must hold 1..{MAX_BATCH} items")
        with self._state:
            for item in inputs:
                props = item.get("properties") or {}
                # a batch create is all or nothing: the first invalid input refuses the batch
                problems = self._validate("tasks", item)
                if props.get("hs_timestamp") in (None, ""):
                    problems.append(_problem("hs_timestamp", "hs_timestamp is required", "REQUIRED_FIELD"))
                if problems:
                    return _error(
                        400, "VALIDATION_ERROR", _problem_message(problems), errors=_problem_errors(problems)
                    )
                for assoc in item.get("associations") or []:
                    target = str((assoc.get("to") or {}).get("id"))
                    types = assoc.get("types") or [{}]
                    known = any(o["id"] == target for o in self._objects["companies"].values())
                    if types[0].get("associationTypeId") != 192 or not known:
                        return _error(400, "VALIDATION_ERROR", f"association to company {target} is invalid")
            results = []
            for item in inputs:
                task_id = str(next(self._ids))
                task = {
                    "id": task_id,
                    "properties": {**item["properties"], "hs_object_id": task_id},
                    "associations": [a["to"]["id"] for a in item.get("associations") or []],
                    "createdAt": _now(),
                    "written": time.monotonic(),
                }
                self.tasks.append(task)
                results.append(
                    {"id": task_id, "properties": task["properties"], "createdAt": task["createdAt"]}
                )
        return Response(201, {"status": "COMPLETE", "results": results})

    # -- search (eventually consistent) --------------------------------------------------------

    @route("POST", r"/crm/v3/objects/(?P<object_type>[^/]+)/search")
    def search(self, request: Request) -> Response:
        """CRM search: OR of filter groups, AND of filters in a group; results sorted by id."""
        object_type = self._object_type(request.params["object_type"])
        if object_type is None:
            return _error(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {request.params['object_type']}"
            )
        body = request.json or {}
        groups = body.get("filterGroups") or []
        limit = int(body.get("limit") or 10)
        if (
            limit > MAX_SEARCH_LIMIT
            or len(groups) > 5
            or any(len(g.get("filters") or []) > 6 for g in groups)
        ):
            return _error(400, "VALIDATION_ERROR", "limit must be <= 200, at most 5 groups of 6 filters")
        now = time.monotonic()
        with self._state:
            pool = self.tasks if object_type == "tasks" else list(self._objects[object_type].values())
            visible = [o for o in pool if now - o.get("written", 0.0) >= self.search_lag]
            hits = [
                o for o in visible if not groups or any(_matches(o, g.get("filters") or []) for g in groups)
            ]
        hits.sort(key=lambda o: int(o["id"]))
        start = int(body.get("after") or 0)
        page = hits[start : start + limit]
        wanted = body.get("properties") or []
        results = [
            {
                "id": o["id"],
                "properties": {k: o["properties"].get(k) for k in ["hs_object_id", *wanted]},
                "createdAt": o.get("createdAt"),
                "updatedAt": o.get("updatedAt", o.get("createdAt")),
                "archived": False,
            }
            for o in page
        ]
        answer: dict[str, Any] = {"total": len(hits), "results": results}
        if start + limit < len(hits):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return Response(200, answer)

    # -- batch upsert --------------------------------------------------------------------------

    @route("POST", r"/crm/v3/objects/(?P<object_type>[^/]+)/batch/upsert")
    def batch_upsert(self, request: Request) -> Response:
        started = _now()
        object_type = self._object_type(request.params["object_type"])
        if object_type is None:
            return _error(
                400, "VALIDATION_ERROR", f"Unable to infer object type from: {request.params['object_type']}"
            )
        try:
            inputs = (request.json or {}).get("inputs")
        except (ValueError, AttributeError):
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "VALIDATION_ERROR", "inputs must be a non-empty list")
        if len(inputs) > MAX_BATCH:
            return _error(
                400,
                "VALIDATION_ERROR",
                f"Too many inputs: {len(inputs)} provided, the batch limit is {MAX_BATCH}",
                context={"inputs": [str(len(inputs))]},
            )
        with self._state:
            refused = self._check_batch(object_type, inputs)
            if refused:
                return refused
            problems = [self._validate(object_type, item) for item in inputs]
            multi_status = all(item.get("objectWriteTraceId") for item in inputs)
            if not multi_status and any(problems):
                first = next(p for p in problems if p)
                return _error(400, "VALIDATION_ERROR", _problem_message(first), errors=_problem_errors(first))
            results, errors = [], []
            for item, problem in zip(inputs, problems, strict=True):
                if problem:
                    errors.append(
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "message": _problem_message(problem),
                            "context": {"objectWriteTraceId": [str(item["objectWriteTraceId"])]},
                            "errors": _problem_errors(problem),
                        }
                    )
                else:
                    results.append(self._apply(object_type, item))
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body.update(numErrors=len(errors), errors=errors)
        body.update(startedAt=started, completedAt=_now())
        return Response(207 if errors else 200, body)

    def _check_batch(self, object_type: str, inputs: list[Any]) -> Response | None:
        """Request-level checks: HubSpot rejects the whole batch for these."""
        known = self.properties[object_type]
        for item in inputs:
            if not isinstance(item, dict) or "id" not in item:
                return _error(400, "VALIDATION_ERROR", "Each input needs an id and an idProperty")
            id_property = item.get("idProperty")
            if not id_property:
                return _error(400, "VALIDATION_ERROR", "idProperty is required for upsert")
            if id_property not in known:
                return _error(
                    400,
                    "VALIDATION_ERROR",
                    f'Property "{id_property}" does not exist',
                    errors=[
                        {
                            "message": f'Property "{id_property}" does not exist',
                            "code": "PROPERTY_DOESNT_EXIST",
                        }
                    ],
                )
            if not known[id_property].get("hasUniqueValue"):
                return _error(
                    400,
                    "VALIDATION_ERROR",
                    f"Unable to perform update/upsert by non-unique {id_property} property",
                )
        ids = [str(item["id"]) for item in inputs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            return _error(
                400,
                "VALIDATION_ERROR",
                f"Duplicate IDs found in batch input: {dupes}",
                context={"ids": dupes},
            )
        return None

    def _validate(self, object_type: str, item: dict[str, Any]) -> list[dict[str, Any]]:
        """Per-input property problems, shaped like HubSpot's embedded validation results."""
        properties = item.get("properties") or {}
        if not isinstance(properties, dict):
            return [_problem("properties", "properties must be an object", "INVALID_PROPERTIES")]
        problems = []
        if object_type == "contacts" and item.get("idProperty") == "email":
            email = str(item.get("id") or "")
            if not _EMAIL.match(email):
                problems.append(_problem("email", f"Email address {email} is invalid", "INVALID_EMAIL"))
        for name, value in properties.items():
            definition = self.properties[object_type].get(name)
            if definition is None:
                problems.append(_problem(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST"))
                continue
            if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
                message = f"Property {name} value is {len(value)} characters; the limit is {MAX_VALUE_CHARS}"
                problems.append(_problem(name, message, "INVALID_LENGTH"))
                continue
            ok, _ = _coerce(definition, value)
            if not ok:
                problems.append(_problem(name, *_invalid(definition, value)))
            elif name == "email" and object_type == "contacts" and value and not _EMAIL.match(str(value)):
                problems.append(_problem(name, f"Email address {value} is invalid", "INVALID_EMAIL"))
        return problems

    def _apply(self, object_type: str, item: dict[str, Any]) -> dict[str, Any]:
        id_property, key = item["idProperty"], str(item["id"])
        now = _now()
        values = {
            name: _coerce(self.properties[object_type][name], value)[1]
            for name, value in (item.get("properties") or {}).items()
        }
        existing = self.find(object_type, id_property, key)
        if existing is None:
            hs_id = str(next(self._ids))
            existing = {
                "id": hs_id,
                "properties": {"hs_object_id": hs_id, "createdate": now, id_property: key},
                "createdAt": now,
            }
            self._objects[object_type][hs_id] = existing
            new = True
        else:
            new = False
        existing["properties"].update(values)
        existing["properties"]["hs_lastmodifieddate"] = now
        existing["updatedAt"] = now
        result = {
            "id": existing["id"],
            "properties": dict(existing["properties"]),
            "createdAt": existing["createdAt"],
            "updatedAt": now,
            "archived": False,
            "new": new,
        }
        if item.get("objectWriteTraceId"):
            result["objectWriteTraceId"] = str(item["objectWriteTraceId"])
        return result


# -- value validation -------------------------------------------------------------------------


def _matches(obj: Mapping[str, Any], filters: list[Mapping[str, Any]]) -> bool:
    props = obj.get("properties") or {}
    for f in filters:
        value, operator = props.get(f.get("propertyName")), f.get("operator")
        if operator == "EQ" and str(value) != str(f.get("value")):
            return False
        if operator == "IN" and str(value) not in [str(v) for v in f.get("values") or []]:
            return False
        if operator == "HAS_PROPERTY" and value in (None, ""):
            return False
    return True


def _problem(name: str, message: str, code: str) -> dict[str, Any]:
    return {
        "isValid": False,
        "message": message,
        "error": code,
        "name": name,
        "localizedErrorMessage": message,
        "portalId": PORTAL_ID,
    }


def _problem_message(problems: list[dict[str, Any]]) -> str:
    return "Property values were not valid: " + json.dumps(problems, separators=(",", ":"))


def _problem_errors(problems: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}}
        for p in problems
    ]


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _coerce(definition: Mapping[str, Any], value: Any) -> tuple[bool, str]:
    """(valid, stored string) for a value written to a property of this definition."""
    if value is None or value == "":
        return True, ""  # HubSpot clears the property
    kind = definition["type"]
    if isinstance(value, (dict, list)):
        return False, ""
    if kind == "string":
        return True, ("true" if value else "false") if isinstance(value, bool) else str(value)
    if kind == "number":
        if isinstance(value, bool):
            return False, ""
        text = str(value)
        try:
            number = float(text)
        except ValueError:
            return False, ""
        return (text == text.strip() and math.isfinite(number)), text
    if kind == "bool":
        if isinstance(value, bool):
            return True, "true" if value else "false"
        return (str(value).lower() in {"true", "false"}), str(value).lower()
    if kind == "date":
        if isinstance(value, int) and not isinstance(value, bool):
            if value % 86_400_000:
                return False, ""
            return True, datetime.fromtimestamp(value / 1000, UTC).date().isoformat()
        text = str(value)
        if not _DATE.match(text):
            return False, ""
        try:
            date.fromisoformat(text)
        except ValueError:
            return False, ""
        return True, text
    if kind == "datetime":
        text = str(value)
        if text.isdigit():
            return True, text
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return False, ""
        return True, text
    if kind == "enumeration":
        allowed = {o["value"] for o in definition.get("options", [])}
        return (str(value) in allowed), str(value)
    return True, str(value)


def _invalid(definition: Mapping[str, Any], value: Any) -> tuple[str, str]:
    kind = definition["type"]
    if kind == "number":
        return f"{value} was not a valid number.", "INVALID_INTEGER"
    if kind == "bool":
        return f"{value} was not a valid boolean.", "INVALID_BOOLEAN"
    if kind in {"date", "datetime"}:
        return f"{value} was not a valid {kind}.", "INVALID_DATE"
    if kind == "enumeration":
        allowed = ", ".join(o["value"] for o in definition.get("options", []))
        return f"{value} was not one of the allowed options: [{allowed}]", "INVALID_OPTION"
    return f"{value!r} is not a valid value.", "INVALID_VALUE"


# -- standalone server --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake HubSpot API until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--limit-per-10s", type=int, default=190)
    parser.add_argument("--daily-limit", type=int, default=250_000)
    args = parser.parse_args(argv)
    server = FakeHubSpot(
        token=args.token,
        limit_per_10s=args.limit_per_10s,
        daily_limit=args.daily_limit,
        host=args.host,
        port=args.port,
    )
    server.serve_until_stopped("HubSpot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

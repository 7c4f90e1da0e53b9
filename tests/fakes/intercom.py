"""A fake Intercom workspace over real HTTP: companies, company data attributes, tags and data
events, checked against Intercom's published 2.16 OpenAPI description on every call.

Order of checks per request: 10-second rate-limit window (429) -> Bearer token (401) ->
`Intercom-Version` header (400) -> the request against the description (400 `parameter_invalid`) ->
the handler. Every JSON response is validated against the description as well; a mismatch is a bug
in the fake: it answers 500 and is recorded in `spec_violations`.

Beyond the description (which types the fields but bounds no lengths), the fake refuses what
Intercom's documentation refuses: a company without `company_id` (400 parameter_not_found), a
company `name` or string custom attribute longer than MAX_TEXT (255 characters, the text limit
Intercom's help center gives for data attributes, paraphrased and unverified; the 2.16 description
bounds no length, hence a constant; intercom/mapping.py cuts names to 255 as well), and an event without `event_name`, `created_at` (unix seconds) and
one of `user_id` / `email` / `id` (the description's anyOf), each as an `error.list` body.

State tests assert on: `companies` (by company_id), `data_attributes` (custom ones, by (model, name)),
`tags` (by name), `events` (accepted events, in order), `spec_violations`.

Run alone: `python -m tests.fakes.intercom --port 8702` (prints its URL, serves until killed).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from tests.fakes.server import FakeServer, Request, Response, route
from tests.fakes.specs import intercom_spec

VERSIONS = ("2.11", "2.12", "2.13", "2.14", "2.15", "2.16")
APP_ID = "plgfakeapp"
_STANDARD_ATTRIBUTES = {
    "company": [
        ("name", "name", "string", True),
        ("company_id", "company_id", "string", False),
        ("last_request_at", "last_request_at", "date", False),
        ("remote_created_at", "remote_created_at", "date", True),
        ("user_count", "user_count", "integer", False),
        ("session_count", "session_count", "integer", False),
        ("name", "plan.name", "string", False),
        ("monthly_spend", "monthly_spend", "float", True),
        ("size", "size", "integer", True),
        ("industry", "industry", "string", True),
        ("website", "website", "string", True),
    ],
    "contact": [
        ("name", "name", "string", True),
        ("email", "email", "string", True),
        ("user_id", "user_id", "string", True),
        ("phone", "phone", "string", True),
    ],
}
_ATTRIBUTE_NAME = re.compile(r"^[\w \-$€£¥]+$")
_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "datetime": lambda v: isinstance(v, int) and not isinstance(v, bool),
}
EVENT_METADATA_KEYS = 10  # Intercom keeps the first ten metadata keys of an event
MAX_TEXT = 255  # Intercom help center: the longest text a company name / text attribute holds


class FixedWindow:
    """At most `limit` hits per `seconds`-long window aligned on the clock: Intercom spreads its
    per-minute limits over fixed 10-second periods. Same interface as the base's SlidingWindow."""

    def __init__(self, limit: int, seconds: float, clock: Callable[[], float] = time.time):
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self._start, self._count = -math.inf, 0
        self._lock = threading.Lock()

    def _roll(self) -> None:
        start = self.clock() // self.seconds * self.seconds
        if start != self._start:
            self._start, self._count = start, 0

    def hit(self) -> tuple[bool, int]:
        with self._lock:
            self._roll()
            if self._count >= self.limit:
                return False, 0
            self._count += 1
            return True, self.limit - self._count

    def reset_at(self) -> float:
        with self._lock:
            self._roll()
            return self._start + self.seconds


def error_list(status: int, code: str, message: str, field: str | None = None) -> Response:
    error = {"code": code, "message": message, **({"field": field} if field else {})}
    return Response(status, {"type": "error.list", "request_id": str(uuid.uuid4()), "errors": [error]})


def _locked(lock: threading.RLock, handler):
    @functools.wraps(handler)
    def run(request: Request) -> Response:
        with lock:
            return handler(request)

    return run


class FakeIntercom(FakeServer):
    def __init__(
        self,
        *,
        token: str = "intercom-test-token",
        versions: Iterable[str] = VERSIONS,
        require_version: bool = True,
        limit_per_10s: int = 1666,
        window_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
        company_attributes: Mapping[str, str] | None = None,
        known_users: Iterable[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        """
        company_attributes: custom company data attributes that already exist, name -> data_type.
        known_users: user_id/email/id values events may name (others -> 404); None accepts any.
        limit_per_10s: calls allowed per 10-second window (Intercom: 10,000/min per app -> 1666).
        """
        self.spec = intercom_spec()  # ~0.5 s on first use in the process, cached after
        super().__init__(host, port)
        self._routes = [(m, rx, _locked(self._lock, h)) for m, rx, h in self._routes]
        self.token = token
        self.versions = tuple(versions)
        self.require_version = require_version
        self.window = FixedWindow(limit_per_10s, window_seconds, clock)
        self.clock = clock
        self.known_users = set(known_users) if known_users is not None else None
        self.companies: dict[str, dict[str, Any]] = {}
        self.data_attributes: dict[tuple[str, str], dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}
        self.tagged_users: dict[str, list[str]] = {}  # tag name -> user ids
        self.events: list[dict[str, Any]] = []
        self.spec_violations: list[str] = []
        self._serial = itertools.count(1)
        for name, data_type in (company_attributes or {}).items():
            self.add_data_attribute(name, data_type)

    # Transport tweaks the base could take over (then delete these): no Nagle delay on keep-alive
    # answers (~40 ms per call otherwise) and a 50 ms shutdown poll so stop() is quick.
    def _handler_class(self):
        handler = super()._handler_class()
        handler.disable_nagle_algorithm = True
        return handler

    def start(self) -> FakeIntercom:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    # -- test helpers ------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.clock())

    def add_data_attribute(self, name: str, data_type: str, model: str = "company", **extra: Any) -> dict:
        with self._lock:
            now = self._now()
            attribute = {
                "type": "data_attribute",
                "id": next(self._serial),
                "name": name,
                "full_name": f"custom_attributes.{name}",
                "label": name,
                "data_type": data_type,
                "api_writable": True,
                "ui_writable": False,
                "messenger_writable": False,
                "custom": True,
                "archived": False,
                "admin_id": "991267001",
                "created_at": now,
                "updated_at": now,
                "model": model,
                **extra,
            }
            self.data_attributes[(model, name)] = attribute
            return attribute

    def company_tags(self, company_id: str) -> list[str]:
        return [t["name"] for t in self.companies[company_id]["tags"]["tags"]]

    # -- the request pipeline ------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response | None:
        allowed, remaining = self.window.hit()
        if allowed:
            response = super().dispatch(request)
        else:
            with self._lock:
                self.requests.append(request)
            message = f"Exceeded rate limit of {self.window.limit} in {self.window.seconds:g}_seconds"
            response = error_list(429, "rate_limit_exceeded", message)
        if response is None:
            return None
        headers = {
            "X-RateLimit-Limit": str(self.window.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(self.window.reset_at())),
        }
        return replace(response, headers={**response.headers, **headers})

    def authorize(self, request: Request) -> Response | None:
        if (request.header("authorization") or "") != f"Bearer {self.token}":
            return error_list(401, "unauthorized", "Access Token Invalid")
        version = request.header("intercom-version")
        if version is None and self.require_version:
            return error_list(400, "intercom_version_invalid", "The Intercom-Version header is required")
        if version is not None and version not in self.versions:
            message = f"Intercom-Version {version!r} is not supported (accepted: {', '.join(self.versions)})"
            return error_list(400, "intercom_version_invalid", message)
        errors = self.spec.request_errors(
            request.method, request.path, request.headers, request.query, request.body
        )
        if errors:
            body = {
                "type": "error.list",
                "request_id": str(uuid.uuid4()),
                "errors": [
                    {
                        "code": "parameter_invalid",
                        "message": e.message,
                        **({"field": e.field} if e.field else {}),
                    }
                    for e in errors
                ],
            }
            return Response(400, body)
        return None

    def not_found(self, request: Request) -> Response:
        return error_list(404, "not_found", f"{request.method} {request.path} is not implemented by the fake")

    def _reply(self, request: Request, status: int, body: Any = None) -> Response:
        """Answer, after checking the answer against the description (a mismatch is a fake bug)."""
        response = Response(status, body)
        problems = self.spec.response_errors(
            request.method, request.path, status, response.encode(), response.content_type
        )
        if problems:
            self.spec_violations.extend(f"{request.method} {request.path} {status}: {p}" for p in problems)
            return error_list(500, "server_error", "fake response violates the spec: " + "; ".join(problems))
        return response

    # -- companies ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """For `GET /_fake/state`: companies (with their tags) and data events."""
        with self._lock:
            return {"companies": dict(self.companies), "events": list(self.events)}

    @route("POST", r"/companies")
    def create_or_update_company(self, request: Request) -> Response:
        body = request.json
        if not isinstance(body, dict):
            return error_list(400, "parameter_invalid", "a company object is required")
        allowed = self.spec.doc["components"]["schemas"]["create_or_update_company_request"]["properties"]
        unknown = [k for k in body if k not in allowed]
        if unknown:
            return error_list(400, "bad_request", f"bad '{unknown[0]}' parameter")
        company_id = body.get("company_id")
        if not company_id:
            return error_list(400, "parameter_not_found", "company_id not specified", "company_id")
        name = body.get("name")
        if isinstance(name, str) and len(name) > MAX_TEXT:
            message = f"name is {len(name)} characters; the limit is {MAX_TEXT}"
            return error_list(400, "parameter_invalid", message, "name")
        custom = body.get("custom_attributes") or {}
        for name, value in custom.items():
            attribute = self.data_attributes.get(("company", name))
            if attribute is None or attribute["archived"]:
                message = (
                    f"Custom attribute '{name}' does not exist: create it as a company data attribute first"
                )
                return error_list(400, "parameter_invalid", message, f"custom_attributes.{name}")
            if value is not None and not self._value_fits(attribute, value):
                message = f"Custom attribute '{name}' must be of type {attribute['data_type']}, got {value!r}"
                return error_list(400, "parameter_invalid", message, f"custom_attributes.{name}")
            if isinstance(value, str) and len(value) > MAX_TEXT:
                message = f"Custom attribute '{name}' is {len(value)} characters; the limit is {MAX_TEXT}"
                return error_list(400, "parameter_invalid", message, f"custom_attributes.{name}")
        now = self._now()
        company = self.companies.get(company_id)
        if company is None:
            company = self.companies[company_id] = {
                "type": "company",
                "company_id": company_id,
                "id": f"{0x6762F0761BB69F9F2193B000 + next(self._serial):024x}",
                "app_id": APP_ID,
                "created_at": now,
                "updated_at": now,
                "monthly_spend": 0,
                "session_count": 0,
                "user_count": 0,
                "tags": {"type": "tag.list", "tags": []},
                "segments": {"type": "segment.list", "segments": []},
                "plan": {},
                "custom_attributes": {},
            }
        for key in ("name", "size", "website", "industry", "remote_created_at"):
            if key in body:
                company[key] = body[key]
        if "monthly_spend" in body:
            company["monthly_spend"] = int(body["monthly_spend"])  # Intercom truncates floats
        if "plan" in body:
            plan_id = str(zlib.crc32(body["plan"].encode()) % 10**6)
            company["plan"] = {"type": "plan", "id": plan_id, "name": body["plan"]}
        company["custom_attributes"].update(custom)
        company["updated_at"] = now
        return self._reply(request, 200, company)

    @staticmethod
    def _value_fits(attribute: dict, value: Any) -> bool:
        if attribute.get("options"):
            return value in attribute["options"]
        return _TYPE_CHECKS.get(attribute["data_type"], lambda _v: True)(value)

    # -- data attributes -----------------------------------------------------------------------

    @route("GET", r"/data_attributes")
    def list_data_attributes(self, request: Request) -> Response:
        models = request.query.get("model") or ["contact", "company"]
        archived = (request.query.get("include_archived") or ["false"])[0] == "true"
        data = []
        for model in models:
            for name, full_name, data_type, writable in _STANDARD_ATTRIBUTES[model]:
                data.append(
                    {
                        "type": "data_attribute",
                        "name": name,
                        "full_name": full_name,
                        "label": full_name,
                        "data_type": data_type,
                        "api_writable": writable,
                        "ui_writable": False,
                        "messenger_writable": True,
                        "custom": False,
                        "archived": False,
                        "model": model,
                    }
                )
            data += [
                a
                for (m, _n), a in self.data_attributes.items()
                if m == model and (archived or not a["archived"])
            ]
        return self._reply(request, 200, {"type": "list", "data": data})

    @route("POST", r"/data_attributes")
    def create_data_attribute(self, request: Request) -> Response:
        body = request.json
        name, model, data_type = body["name"], body["model"], body["data_type"]
        if not _ATTRIBUTE_NAME.match(name):
            message = (
                "Your name for this attribute must only contain alphanumeric characters, currency symbols, "
                "and hyphens"
            )
            return error_list(400, "parameter_invalid", message, "name")
        standard = {n for n, *_ in _STANDARD_ATTRIBUTES[model]}
        if (model, name) in self.data_attributes or name in standard:
            message = (
                f"You already have '{name}' in your {model} data. "
                f"To save this as new {model} data, use a different name."
            )
            return error_list(400, "parameter_invalid", message, "name")
        extra: dict[str, Any] = {}
        if data_type == "options":
            options = [o.get("value") for o in body.get("options", [])]
            if len(options) < 2:
                return error_list(400, "parameter_invalid", "At least two options are required", "options")
            data_type, extra["options"] = "string", options
        if "description" in body:
            extra["description"] = body["description"]
        if "messenger_writable" in body:
            extra["messenger_writable"] = body["messenger_writable"]
        attribute = self.add_data_attribute(name, data_type, model, **extra)
        return self._reply(request, 200, attribute)

    # -- tags --------------------------------------------------------------------------------

    def _tag(self, name: str) -> dict[str, Any]:
        existing = next((t for t in self.tags.values() if t["name"].lower() == name.lower()), None)
        if existing:
            return existing
        tag = self.tags[name] = {"type": "tag", "id": str(100 + next(self._serial)), "name": name}
        return tag

    @route("POST", r"/tags")
    def create_tag(self, request: Request) -> Response:
        body = request.json
        if "companies" in body:
            targets = []
            for ref in body["companies"]:  # the description: "The id or company_id of the company"
                company = self.companies.get(ref.get("company_id")) or next(
                    (c for c in self.companies.values() if ref.get("id") and c["id"] == ref.get("id")), None
                )
                if company is None:
                    return error_list(404, "company_not_found", f"Company Not Found: {ref}")
                targets.append((company, not ref.get("untag", False)))
            tag = self._tag(body["name"])
            for company, tagged in targets:
                current = company["tags"]["tags"]
                current[:] = [t for t in current if t["id"] != tag["id"]]
                if tagged:
                    current.append(dict(tag))
            results = [{"id": c["id"], "tagged": tagged} for c, tagged in targets]
            return self._reply(request, 200, {**tag, "companies": results, "users": []})
        if "users" in body:
            tag = self._tag(body["name"])
            ids = [u.get("id") for u in body["users"]]
            self.tagged_users.setdefault(tag["name"], []).extend(ids)
            users = [{"id": i, "tagged": True} for i in ids]
            return self._reply(request, 200, {**tag, "users": users, "companies": []})
        if body.get("id"):
            tag = next((t for t in self.tags.values() if t["id"] == body["id"]), None)
            if tag is None:
                return error_list(404, "not_found", "Resource Not Found")
            self.tags[body["name"]] = self.tags.pop(tag["name"])
            tag["name"] = body["name"]
            return self._reply(request, 200, tag)
        return self._reply(request, 200, self._tag(body["name"]))

    # -- data events -------------------------------------------------------------------------

    @route("POST", r"/events")
    def create_event(self, request: Request) -> Response:
        body = request.json
        missing = [k for k in ("event_name", "created_at") if body.get(k) in (None, "")]
        if missing or not _who(body):
            field = missing[0] if missing else "user_id"
            return error_list(400, "parameter_not_found", f"{field} not specified", field)
        if body["created_at"] > 10**11:  # Intercom takes unix seconds; milliseconds are far future
            message = "created_at must be a UTC unix timestamp in seconds"
            return error_list(400, "parameter_invalid", message, "created_at")
        if self.known_users is not None and _who(body) not in self.known_users:
            return error_list(404, "not_found", "User Not Found")
        metadata = dict(list((body.get("metadata") or {}).items())[:EVENT_METADATA_KEYS])
        key = (_who(body), body["event_name"], body["created_at"])
        # Intercom ignores an event with the same contact, name and created_at (still 202)
        duplicate = any((_who(e), e["event_name"], e["created_at"]) == key for e in self.events)
        self.events.append({**body, "metadata": metadata, "duplicate": duplicate})
        return self._reply(request, 202, None)


def _who(event: Mapping[str, Any]) -> str | None:
    return event.get("user_id") or event.get("email") or event.get("id")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Intercom workspace until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="intercom-test-token")
    parser.add_argument("--limit-per-10s", type=int, default=1666)
    args = parser.parse_args(argv)
    server = FakeIntercom(token=args.token, limit_per_10s=args.limit_per_10s, host=args.host, port=args.port)
    server.serve_until_stopped("Intercom")


if __name__ == "__main__":
    main()

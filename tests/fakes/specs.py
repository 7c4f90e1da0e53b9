"""The vendors' published API descriptions, loaded once per process, and the checks the fakes run
against them so that a fake cannot drift from the real wire format.

- Intercom: OpenAPI 3.0.1 (`intercom-api-2.16.yaml`), checked with openapi-core. Requests and
  responses of every documented operation are validated; a few places where the description
  contradicts its own examples or prose are patched first (see `INTERCOM_PATCHES`).
- Slack: Swagger 2.0 (`slack-web-api-v2.json`). openapi-core does not read Swagger 2.0, so the
  `formData` parameters of a method are checked by hand and its response schemas with jsonschema
  (draft 4, `$ref`s resolved inside the document).

Where the files live: `$PLG_BRIDGE_SPECS_DIR`, else `tests/fakes/vendor_specs/`, else
`/work/shared/specs/`. Cost, paid once per process on first use and cached: ~0.5 s to parse the
1.3 MB Intercom YAML (libyaml loader) + ~0.2 s to import/build openapi-core (the description itself
is not re-validated), ~15 ms for the Slack JSON; then ~1 ms to validate one request.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from werkzeug.datastructures import Headers, ImmutableMultiDict

try:  # libyaml makes the 1.3 MB Intercom description load in ~0.5 s instead of ~10 s
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

INTERCOM_FILE = "intercom-api-2.16.yaml"
SLACK_FILE = "slack-web-api-v2.json"


def specs_dir() -> Path:
    candidates = [
        os.environ.get("PLG_BRIDGE_SPECS_DIR"),
        Path(__file__).parent / "vendor_specs",
        "/work/shared/specs",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / INTERCOM_FILE).exists():
            return Path(candidate)
    raise FileNotFoundError(
        f"vendor API descriptions not found; set PLG_BRIDGE_SPECS_DIR (tried {candidates})"
    )


def _messages(errors: Iterable[ValidationError]) -> list[tuple[str, str]]:
    """(field path, message) for jsonschema errors, descending into anyOf/oneOf to the best cause."""
    out = []
    for error in errors:
        cause = best_match(error.context) if error.context else error
        field = ".".join(str(p) for p in cause.absolute_path)
        message = cause.message
        titles = (
            [s.get("title") for s in error.validator_value] if error.validator in ("anyOf", "oneOf") else []
        )
        if titles and all(titles):
            message = f"must match one of: {', '.join(titles)} ({cause.message})"
        out.append((field, f"{field or 'body'}: {message}"))
    return out


# -- Intercom (OpenAPI 3.0.1, openapi-core) -----------------------------------------------------

_SCALAR = [{"type": t, "nullable": True} for t in ("string", "integer", "number", "boolean")]

# Each patch: (JSON pointer into the description, replacement, why). Kept few and explained.
INTERCOM_PATCHES: list[tuple[str, Any, str]] = [
    (
        "/paths/~1tags/post/requestBody/content/application~1json/schema/oneOf",
        None,  # oneOf -> anyOf, see _patch_intercom
        "the four tag payloads are not mutually exclusive ({name, companies} matches three of them), "
        "so strict oneOf rejects every documented 'tag companies' request",
    ),
    (
        "/components/schemas/create_or_update_company_request/properties/custom_attributes"
        "/additionalProperties",
        {"anyOf": _SCALAR},
        "the schema says string-only but its own example and the API take integers, floats and booleans "
        "(typed per data attribute); the fake checks the type against the data attribute instead",
    ),
    (
        "/components/schemas/company/properties/custom_attributes/additionalProperties",
        {"anyOf": _SCALAR},
        "same as above, for the company object returned",
    ),
    (
        "/components/schemas/create_or_update_company_request/properties/monthly_spend",
        {"type": "number", "description": "floats are accepted and truncated (per the description)"},
        "the description says floats are truncated, so they are accepted",
    ),
    (
        "/components/schemas/create_data_event_request/properties/metadata/additionalProperties",
        {
            "anyOf": [
                *_SCALAR,
                {
                    "type": "object",
                    "required": ["url"],
                    "additionalProperties": False,
                    "properties": {"url": {"type": "string"}, "value": {"type": "string"}},
                },
                {
                    "type": "object",
                    "required": ["amount", "currency"],
                    "additionalProperties": False,
                    "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}},
                },
            ]
        },
        "the operation's prose documents number, date, link, rich link and monetary amount values "
        "but no nested structures",
    ),
    (
        "/components/schemas/data_attribute/properties/data_type/enum",
        ["string", "integer", "float", "boolean", "date", "datetime"],
        "the create request accepts 'datetime', so the created attribute can carry it",
    ),
]


def _pointer(doc: Any, pointer: str) -> tuple[Any, str]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
    for part in parts[:-1]:
        doc = doc[part]
    return doc, parts[-1]


def _patch_intercom(doc: dict) -> dict:
    for pointer, value, _why in INTERCOM_PATCHES:
        parent, key = _pointer(doc, pointer)
        if key not in parent:
            raise KeyError(f"Intercom description changed: {pointer} is gone; revisit INTERCOM_PATCHES")
        if key == "oneOf" and value is None:
            parent["anyOf"] = parent.pop("oneOf")
        else:
            parent[key] = value
    return doc


class _OpenAPIRequest:
    """openapi-core's Request protocol over one of the fake server's requests."""

    def __init__(self, host_url: str, method: str, path: str, *, headers: Mapping[str, str], query, body):
        self.host_url = host_url
        self.path = path
        self.method = method.lower()
        self.body = body or None
        self.content_type = (headers.get("content-type") or "").lower()
        from openapi_core.datatypes import RequestParameters

        self.parameters = RequestParameters(
            query=ImmutableMultiDict([(k, v) for k, values in (query or {}).items() for v in values]),
            header=Headers(dict(headers)),
            cookie=ImmutableMultiDict(),
        )


class _OpenAPIResponse:
    def __init__(self, status: int, body: bytes, content_type: str):
        self.status_code = status
        self.data = body
        self.content_type = content_type
        self.headers = Headers({"Content-Type": content_type})


@dataclass
class SpecError:
    field: str | None
    message: str


class IntercomSpec:
    """The Intercom 2.16 description with the checks `FakeIntercom` runs on every call."""

    def __init__(self, doc: dict):
        from openapi_core import Config, OpenAPI

        self.doc = doc
        self.host_url = doc["servers"][0]["url"]
        # The description itself is not re-validated (openapi-spec-validator takes minutes on it).
        self.api = OpenAPI.from_dict(doc, config=Config(spec_validator_cls=None))

    def request_errors(self, method, path, headers, query, body) -> list[SpecError]:
        """Empty when the request matches its documented operation (or the path is undocumented)."""
        from openapi_core.templating.paths.exceptions import PathError

        request = _OpenAPIRequest(self.host_url, method, path, headers=headers, query=query, body=body)
        errors = []
        for error in self.api.iter_request_errors(request):
            if isinstance(error, PathError):
                return []  # not in the description: the fake's router answers
            errors.extend(self._explain(error))
        return errors

    def response_errors(self, method, path, status, body: bytes, content_type: str) -> list[str]:
        from openapi_core.templating.paths.exceptions import PathError
        from openapi_core.templating.responses.exceptions import ResponseNotFound

        request = _OpenAPIRequest(self.host_url, method, path, headers={}, query={}, body=None)
        response = _OpenAPIResponse(status, body, content_type)
        out = []
        for error in self.api.iter_response_errors(request, response):
            if isinstance(error, PathError | ResponseNotFound):
                return []  # undocumented path or status (e.g. 404, 429): nothing to check against
            out.extend(e.message for e in self._explain(error))
        return out

    @staticmethod
    def _explain(error: Exception) -> list[SpecError]:
        cause = error.__cause__
        schema_errors = getattr(cause, "schema_errors", None)
        name = getattr(error, "name", None)  # set on parameter errors
        if schema_errors and name:
            return [SpecError(name, f"{error}: {e.message}") for e in schema_errors]
        if schema_errors:
            return [SpecError(field or None, msg) for field, msg in _messages(schema_errors)]
        detail = f"{error}" + (f" ({cause})" if cause and str(cause) not in str(error) else "")
        return [SpecError(name, detail)]


@functools.cache
def intercom_spec() -> IntercomSpec:
    with open(specs_dir() / INTERCOM_FILE, "rb") as fh:
        doc = yaml.load(fh, Loader=_YamlLoader)  # a safe loader
    return IntercomSpec(_patch_intercom(doc))


# -- Slack (Swagger 2.0, jsonschema) ------------------------------------------------------------

_SLACK_URI = "urn:slack-web-api"
_TRUE_FALSE = {"true", "false", "1", "0"}


class SlackSpec:
    def __init__(self, doc: dict):
        self.doc = doc
        self.registry = Registry().with_resource(
            _SLACK_URI, Resource.from_contents(doc, default_specification=DRAFT4)
        )

    def operation(self, method: str) -> dict:
        return self.doc["paths"][f"/{method}"]["post"]

    def form_params(self, method: str) -> dict[str, dict]:
        return {p["name"]: p for p in self.operation(method)["parameters"] if p["in"] == "formData"}

    def argument_errors(self, method: str, args: Mapping[str, Any], *, json_body: bool) -> list[str]:
        """Check a call's arguments against the method's documented formData parameters.

        Form bodies carry strings ("true"/"1" for booleans, JSON text for blocks); a JSON body may
        carry real booleans and, for parameters documented as "JSON-based array", real arrays.
        Unknown arguments are ignored, as Slack does.
        """
        errors = []
        for name, param in self.form_params(method).items():
            if name not in args:
                if param.get("required"):
                    errors.append(f"missing required field: {name}")
                continue
            value, kind = args[name], param.get("type")
            json_array = "JSON-based array" in param.get("description", "")
            if kind == "boolean":
                ok = isinstance(value, bool) or (isinstance(value, str) and value.lower() in _TRUE_FALSE)
            elif json_body and json_array:
                ok = isinstance(value, list | str)
            else:
                ok = isinstance(value, str)
            if not ok:
                errors.append(
                    f"expected {'array' if json_array and json_body else kind} [json-pointer:/{name}]"
                )
        return errors

    def schema_errors(self, pointer: str, instance: Any) -> list[str]:
        validator = Draft4Validator({"$ref": f"{_SLACK_URI}#{pointer}"}, registry=self.registry)
        return [msg for _field, msg in _messages(validator.iter_errors(instance))]

    def response_errors(self, method: str, body: Any, *, extra_errors: Iterable[str] = ()) -> list[str]:
        """Validate a Web API answer: success against the 200 schema, failures against `default`.

        The `default` schema's error enum predates some errors Slack now returns (ratelimited,
        invalid_blocks...): pass those as `extra_errors`; `errors`/`response_metadata` are allowed.
        """
        base = f"/paths/~1{method}/post/responses"
        if body.get("ok"):
            return self.schema_errors(f"{base}/200/schema", body)
        schema = json.loads(json.dumps(self.operation(method)["responses"]["default"]["schema"]))
        schema["properties"]["error"]["enum"] += list(extra_errors)
        schema["properties"]["errors"] = {"type": "array", "items": {"type": "string"}}
        schema["properties"]["response_metadata"] = {"type": "object"}
        schema["definitions"] = self.doc["definitions"]  # for its "#/definitions/..." refs
        return [msg for _f, msg in _messages(Draft4Validator(schema).iter_errors(body))]


@functools.cache
def slack_spec() -> SlackSpec:
    with open(specs_dir() / SLACK_FILE, "rb") as fh:
        return SlackSpec(json.load(fh))

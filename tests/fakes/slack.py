"""A fake Slack workspace over real HTTP: `chat.postMessage` (bot token, JSON or form body) and one
incoming webhook, with Block Kit limits, per-channel rate limits and Slack's error answers.

`chat.postMessage` arguments are checked against the method's parameters in Slack's published Web
API description and every answer against its response schemas (see tests/fakes/specs.py); Web API
errors come back as HTTP 200 `{"ok": false, "error": ...}` except rate limiting (HTTP 429 with
`Retry-After`), as Slack does.

`chat.postMessage` keeps a message's `metadata` ({event_type, event_payload}); `conversations.list`
and `conversations.history` (channel id, `oldest`/`latest`, `limit`, `cursor`) read them back,
with `metadata` only under `include_all_metadata`, as Slack does (newest first, Tier 3 pages).

State tests assert on: `posted` (every accepted message, in order) and `messages(channel)`;
`broadcasts()` lists messages that would ping a whole channel (`<!channel>`, `<!here>`, `<!everyone>`).

Run alone: `python -m tests.fakes.slack --port 8703` (prints its URL, serves until killed).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.server import FakeServer, Request, Response, SlidingWindow, route
from tests.fakes.specs import slack_spec

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS, MAX_FIELD_TEXT = 10, 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_MESSAGE_TEXT = 40_000
BLOCK_TYPES = {
    *("section", "header", "divider", "context", "actions", "image", "rich_text", "input", "file", "video"),
    "markdown",
}
# errors Slack returns today that the 2021 description's error enum does not list
EXTRA_ERRORS = (
    *("ratelimited", "invalid_blocks", "invalid_blocks_format", "invalid_arguments", "invalid_json"),
    *("invalid_metadata_format", "invalid_metadata_schema"),
)
BROADCAST = re.compile(r"<!(channel|here|everyone)(\|[^>]*)?>")


def channel_id(name: str) -> str:
    """A stable Slack-looking conversation id for a channel name (matches ^C[A-Z0-9]{8,}$)."""
    return "C" + hashlib.sha1(name.encode()).hexdigest().upper()[:10]


def _locked(lock: threading.RLock, handler):
    @functools.wraps(handler)
    def run(request: Request) -> Response:
        with lock:
            return handler(request)

    return run


def _text_object_errors(obj: Any, pointer: str, limit: int, types=("plain_text", "mrkdwn")) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in types:
        return [f"must be a text object of type {' or '.join(types)} [json-pointer:{pointer}]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be a non-empty string [json-pointer:{pointer}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{pointer}/text]"]
    return []


def block_errors(blocks: Any) -> list[str]:
    """Block Kit checks for a message's blocks, in Slack's `[json-pointer:...]` wording."""
    schema = slack_spec().schema_errors("/definitions/blocks", blocks)
    if schema:
        return [f"{e} [json-pointer:/blocks]" for e in schema]
    errors = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        p, kind = f"/blocks/{i}", block["type"]
        if kind not in BLOCK_TYPES:
            errors.append(f"unsupported type: {kind} [json-pointer:{p}/type]")
        if len(str(block.get("block_id", ""))) > 255:
            errors.append(f"must be less than 256 characters [json-pointer:{p}/block_id]")
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide either text or fields [json-pointer:{p}]")
            if "text" in block:
                errors += _text_object_errors(block["text"], f"{p}/text", MAX_SECTION_TEXT)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
                errors.append(f"must be an array of at most {MAX_FIELDS} items [json-pointer:{p}/fields]")
            else:
                for j, item in enumerate(fields):
                    errors += _text_object_errors(item, f"{p}/fields/{j}", MAX_FIELD_TEXT)
        elif kind == "header":
            errors += _text_object_errors(block.get("text"), f"{p}/text", MAX_HEADER_TEXT, ("plain_text",))
        elif kind in ("context", "actions"):
            limit = MAX_CONTEXT_ELEMENTS if kind == "context" else MAX_ACTIONS_ELEMENTS
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= limit:
                errors.append(f"must be an array of 1 to {limit} items [json-pointer:{p}/elements]")
            elif kind == "context":
                for j, element in enumerate(elements):
                    if isinstance(element, dict) and element.get("type") in ("plain_text", "mrkdwn"):
                        errors += _text_object_errors(element, f"{p}/elements/{j}", MAX_SECTION_TEXT)
    return errors


def _texts(value: Any) -> Iterable[str]:
    """Every "text" string in a message's blocks (nested)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


class FakeSlack(FakeServer):
    def __init__(
        self,
        *,
        bot_token: str = "xoxb-plg-test-token",
        channels: Mapping[str, str] | Iterable[str] = ("plg-alerts",),
        webhook_path: str = "/services/T000/B000/XXXX",
        webhook_channel: str = "plg-alerts",
        per_channel_limit: int = 1,
        per_channel_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        bot_id: str = "B0PLGFAKE01",
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        """
        channels: channel names the bot is in ({name: id} or names, ids are then derived).
        per_channel_limit / per_channel_seconds: messages allowed per channel in a sliding window
            (Slack: about 1 per second per channel; raise it for tests that post bursts).
        """
        super().__init__(host, port)
        self._routes = [(m, rx, _locked(self._lock, h)) for m, rx, h in self._routes]
        self.spec = slack_spec()
        self.bot_token = bot_token
        names = channels if isinstance(channels, Mapping) else {n: channel_id(n) for n in channels}
        self.channels: dict[str, str] = {name.lstrip("#"): cid for name, cid in names.items()}
        self.webhook_path = webhook_path
        self.webhook_channel = self._resolve(webhook_channel)
        self.per_channel_limit, self.per_channel_seconds, self.clock = (
            per_channel_limit,
            per_channel_seconds,
            clock,
        )
        self._windows: dict[str, SlidingWindow] = {}
        self.bot_id = bot_id
        self.posted: list[dict[str, Any]] = []
        self.spec_violations: list[str] = []
        self._ts_serial = itertools.count(1)

    # Transport tweaks the base could take over (then delete these): no Nagle delay on keep-alive
    # answers (~40 ms per call otherwise) and a 50 ms shutdown poll so stop() is quick.
    def _handler_class(self):
        handler = super()._handler_class()
        handler.disable_nagle_algorithm = True
        return handler

    def start(self) -> FakeSlack:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    # -- test helpers ------------------------------------------------------------------------

    def _resolve(self, channel: str) -> str | None:
        channel = channel.strip().lstrip("#")
        if channel in self.channels.values():
            return channel
        return self.channels.get(channel)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Accepted messages of a channel (name, #name or id), oldest first."""
        cid = self._resolve(channel)
        return [m for m in self.posted if m["channel"] == cid]

    def broadcasts(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages whose text or blocks carry an unescaped <!channel>, <!here> or <!everyone>."""
        pool = self.messages(channel) if channel else self.posted
        return [m for m in pool if any(BROADCAST.search(t) for t in [m["text"] or "", *_texts(m["blocks"])])]

    # -- shared steps ------------------------------------------------------------------------

    def _throttle(self, cid: str) -> int | None:
        """None when the channel may take a message now, else the Retry-After seconds."""
        window = self._windows.setdefault(
            cid, SlidingWindow(self.per_channel_limit, self.per_channel_seconds, self.clock)
        )
        allowed, _remaining = window.hit()
        if allowed:
            return None
        return max(1, math.ceil(window.reset_at() - self.clock()))

    def _store(self, cid: str, text: str | None, blocks: list | None, via: str, **extra: Any) -> dict:
        ts = f"{int(time.time()):010d}.{next(self._ts_serial) % 1_000_000:06d}"
        name = next((n for n, i in self.channels.items() if i == cid), None)
        message = {"channel": cid, "channel_name": name, "text": text, "blocks": blocks, "ts": ts, "via": via}
        message.update(extra)
        self.posted.append(message)
        return message

    def _api(self, request: Request, body: dict, status: int = 200, headers: dict | None = None) -> Response:
        """A Web API answer, checked against the method's response schemas first."""
        method = request.path.rsplit("/", 1)[-1]
        problems = self.spec.response_errors(method, body, extra_errors=EXTRA_ERRORS)
        if problems:
            self.spec_violations.extend(f"{method}: {p}" for p in problems)
            return Response(500, {"ok": False, "error": "fatal_error", "detail": problems})
        return Response(status, body, headers=headers or {})

    @staticmethod
    def _parse(request: Request) -> tuple[dict[str, Any], bool, str | None]:
        """(arguments, came as JSON, error). Query-string arguments count too, as on Slack."""
        args: dict[str, Any] = {k: v[0] for k, v in request.query.items()}
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                return args, True, "invalid_json"
            if not isinstance(body, dict):
                return args, True, "invalid_json"
            return {**args, **body}, True, None
        if content_type in ("application/x-www-form-urlencoded", ""):
            form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            return {**args, **{k: v[0] for k, v in form.items()}}, False, None
        return args, False, "invalid_post_type" if request.body else "missing_post_type"

    # -- Web API -----------------------------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        if request.path.startswith("/api/"):
            return Response(404, {"ok": False, "error": "unknown_method"})
        return Response(404, "no_service", content_type="text/plain")

    def state(self) -> dict[str, Any]:
        """For `GET /_fake/state`: every posted message."""
        with self._lock:
            return {"messages": [dict(m) for m in self.posted]}

    @route("POST", r"/api/chat\.postMessage")
    def post_message(self, request: Request) -> Response:
        args, as_json, problem = self._parse(request)
        bearer = (request.header("authorization") or "").removeprefix("Bearer ").strip()
        token = bearer or (None if as_json else args.get("token")) or request.query.get("token", [None])[0]
        args.pop("token", None)
        if not token:
            return self._api(request, {"ok": False, "error": "not_authed"})
        if token != self.bot_token:
            return self._api(request, {"ok": False, "error": "invalid_auth"})
        if problem:
            return self._api(request, {"ok": False, "error": problem})
        invalid = self.spec.argument_errors("chat.postMessage", args, json_body=as_json)
        if invalid:
            metadata = {"messages": [f"[ERROR] {m}" for m in invalid]}
            return self._api(
                request, {"ok": False, "error": "invalid_arguments", "response_metadata": metadata}
            )
        cid = self._resolve(str(args["channel"]))
        if cid is None:
            return self._api(request, {"ok": False, "error": "channel_not_found"})
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return self._api(request, {"ok": False, "error": "invalid_blocks_format"})
        if blocks is not None:
            if not isinstance(blocks, list):
                return self._api(request, {"ok": False, "error": "invalid_blocks_format"})
            errors = block_errors(blocks)
            if errors:
                metadata = {"messages": [f"[ERROR] {e}" for e in errors]}
                body = {
                    "ok": False,
                    "error": "invalid_blocks",
                    "errors": errors,
                    "response_metadata": metadata,
                }
                return self._api(request, body)
        text = args.get("text")
        if not text and not blocks:
            return self._api(request, {"ok": False, "error": "no_text"})
        if text and len(text) > MAX_MESSAGE_TEXT:
            return self._api(request, {"ok": False, "error": "msg_too_long"})
        retry_after = self._throttle(cid)  # only messages that would be posted count
        if retry_after is not None:
            body = {"ok": False, "error": "ratelimited"}
            return self._api(request, body, status=429, headers={"Retry-After": str(retry_after)})
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                return self._api(request, {"ok": False, "error": "invalid_metadata_format"})
        if metadata is not None and not (
            isinstance(metadata, dict)
            and re.fullmatch(r"[A-Za-z0-9_]{1,255}", str(metadata.get("event_type") or ""))
            and isinstance(metadata.get("event_payload"), dict)
        ):
            return self._api(request, {"ok": False, "error": "invalid_metadata_schema"})
        stored = self._store(cid, text, blocks, "api", thread_ts=args.get("thread_ts"), metadata=metadata)
        message = {"type": "message", "subtype": "bot_message", "text": text or "", "ts": stored["ts"]}
        message["bot_id"] = self.bot_id
        if blocks:
            message["blocks"] = blocks
        if stored["thread_ts"]:
            message["thread_ts"] = stored["thread_ts"]
        return self._api(request, {"ok": True, "channel": cid, "ts": stored["ts"], "message": message})

    # -- reading back (conversations.*) --------------------------------------------------------

    def _reader(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        args, _as_json, problem = self._parse(request)
        bearer = (request.header("authorization") or "").removeprefix("Bearer ").strip()
        token = bearer or args.pop("token", None)
        if not token:
            return args, Response(200, {"ok": False, "error": "not_authed"})
        if token != self.bot_token:
            return args, Response(200, {"ok": False, "error": "invalid_auth"})
        if problem:
            return args, Response(200, {"ok": False, "error": problem})
        return args, None

    @route("POST", r"/api/conversations\.list")
    def conversations_list_post(self, request: Request) -> Response:
        return self.conversations_list(request)

    @route("POST", r"/api/conversations\.history")
    def conversations_history_post(self, request: Request) -> Response:
        return self.conversations_history(request)

    @route("GET", r"/api/conversations\.list")
    def conversations_list(self, request: Request) -> Response:
        _args, refused = self._reader(request)
        if refused:
            return refused
        channels = [
            {"id": cid, "name": name, "is_channel": True, "is_member": True}
            for name, cid in self.channels.items()
        ]
        return Response(200, {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}})

    @route("GET", r"/api/conversations\.history")
    def conversations_history(self, request: Request) -> Response:
        """Newest first; `oldest`/`latest` bound ts (exclusive unless `inclusive`); a cursor pages."""
        args, refused = self._reader(request)
        if refused:
            return refused
        cid = str(args.get("channel") or "")
        if cid not in self.channels.values():  # names are not accepted here: ids only
            return Response(200, {"ok": False, "error": "channel_not_found"})
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or 9e12)
        limit = max(1, min(int(args.get("limit") or 100), 999))
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [m for m in self.posted if m["channel"] == cid and oldest < float(m["ts"]) < latest]
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        start = int(args.get("cursor") or 0)
        page = found[start : start + limit]
        messages = []
        for m in page:
            message = {"type": "message", "ts": m["ts"], "text": m["text"] or "", "bot_id": self.bot_id}
            if with_metadata and m.get("metadata"):
                message["metadata"] = m["metadata"]
            messages.append(message)
        more = start + limit < len(found)
        body = {
            "ok": True,
            "messages": messages,
            "has_more": more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }
        return Response(200, body)

    # -- incoming webhook --------------------------------------------------------------------

    @route("POST", r"/services/.+")
    def webhook(self, request: Request) -> Response:
        def plain(status: int, text: str, **headers: str) -> Response:
            return Response(status, text, headers=headers, content_type="text/plain")

        if request.path != self.webhook_path or self.webhook_channel is None:
            return plain(404, "no_service")
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        try:
            if content_type == "application/x-www-form-urlencoded":
                payload = json.loads(parse_qs(request.body.decode())["payload"][0])
            else:
                payload = json.loads(request.body or b"")
        except (ValueError, KeyError):
            return plain(400, "invalid_payload")
        if not isinstance(payload, dict):
            return plain(400, "invalid_payload")
        text, blocks = payload.get("text"), payload.get("blocks")
        if blocks is not None and (not isinstance(blocks, list) or block_errors(blocks)):
            return plain(400, "invalid_blocks")
        if not text and not blocks:
            return plain(400, "no_text")
        retry_after = self._throttle(self.webhook_channel)
        if retry_after is not None:
            return plain(429, "rate_limited", **{"Retry-After": str(retry_after)})
        self._store(self.webhook_channel, text, blocks, "webhook")
        return plain(200, "ok")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Slack workspace until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bot-token", default="xoxb-plg-test-token")
    parser.add_argument("--channel", action="append", help="channel name the bot is in (repeatable)")
    parser.add_argument("--webhook-path", default="/services/T000/B000/XXXX")
    args = parser.parse_args(argv)
    channels = args.channel or ["plg-alerts"]
    server = FakeSlack(
        bot_token=args.bot_token,
        channels=channels,
        webhook_path=args.webhook_path,
        webhook_channel=channels[0],
        host=args.host,
        port=args.port,
    )
    server.serve_until_stopped("Slack")


if __name__ == "__main__":
    main()

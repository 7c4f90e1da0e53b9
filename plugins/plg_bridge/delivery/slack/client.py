"""Slack sending through the Slack provider (SlackHook / SlackWebhookHook), one outcome per message."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import random
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.error import URLError

from plg_bridge.delivery import journal
from plg_bridge.delivery.base import Stop, send_batches
from plg_bridge.delivery.outcomes import RowOutcome, outcomes_frame
from plg_bridge.delivery.slack import lookup
from plg_bridge.delivery.slack.mapping import (
    DEFAULT_CHANNEL,
    DEFAULT_CONN_ID,
    MAX_FALLBACK_TEXT,
    STOP_ERRORS,
    clip,
)
from plg_bridge.delivery.transport import RetryPolicy, parse_retry_after
from plg_bridge.redact import sdk_logger

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# -- retry policy for slack_sdk (built lazily: slack_sdk is only imported when sending) ----------


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list | tuple) and value else value
    return None


def _never_sent(error: BaseException | None) -> bool:
    """True when the request provably did not reach Slack (refused connection, unknown host)."""
    reason = error.reason if isinstance(error, URLError) else error
    return isinstance(reason, ConnectionRefusedError | socket.gaierror)


def retry_handlers(
    *,
    rate_limit_retries: int = 5,
    connect_retries: int = 2,
    sleep: Callable[[float], None] = time.sleep,
    max_wait: float = 60.0,
) -> list[Any]:
    """slack_sdk retry handlers for a non-idempotent post: 429 after `Retry-After`, and a
    connection refused before sending; nothing else (slack_sdk's default handler would replay
    after a reset, when Slack may already have posted). `sleep` is injectable for tests."""
    from slack_sdk.http_retry import RetryHandler
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    class RetryAfterHandler(RateLimitErrorRetryHandler):
        """slack_sdk's 429 handler, sleeping through an injectable `sleep`, capped at `max_wait`."""

        waits: list[float]

        def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
            if response is None:
                raise error  # type: ignore[misc]
            wait = parse_retry_after(_header(response.headers, "Retry-After"))
            wait = min(max_wait, 1.0 if wait is None else wait)
            log.warning("Slack rate limited the post; retrying in %.1fs", wait)
            state.next_attempt_requested = True
            self.waits.append(wait)
            sleep(wait)
            state.increment_current_attempt()

    class NotSentRetryHandler(RetryHandler):
        """Retries only when the connection was refused / the host unknown: nothing was sent."""

        waits: list[float]

        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            return response is None and _never_sent(error)

        def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
            state.next_attempt_requested = True
            wait = min(max_wait, 0.5 * 2**state.current_attempt)
            self.waits.append(wait)
            sleep(wait)
            state.increment_current_attempt()

    rate = RetryAfterHandler(max_retry_count=rate_limit_retries)
    rate.waits = []
    connect = NotSentRetryHandler(max_retry_count=connect_retries)
    connect.waits = []
    return [rate, connect]


# Look-up reads (conversations.list / conversations.history) change nothing at Slack: every
# transient fault is retried with the shared transport's policy, so a look-up stays undecided
# (its rows wait for on-call) only when Slack keeps failing for the whole policy.
LOOKUP_POLICY = RetryPolicy()


def read_retry_handlers(
    policy: RetryPolicy = LOOKUP_POLICY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> list[Any]:
    """slack_sdk retry handler for idempotent reads: a retry status of `policy` (429 after its
    `Retry-After`, 5xx after the policy's backoff) and a connection reset, timeout or cut answer,
    up to `policy.max_attempts` calls. `sleep` and `rand` are injectable for tests."""
    from slack_sdk.http_retry import RetryHandler

    class TransientReadRetryHandler(RetryHandler):
        waits: list[float]

        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            if response is not None:
                return response.status_code in policy.retry_statuses
            return isinstance(error, _TRANSPORT_ERRORS)

        def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
            hint = None if response is None else parse_retry_after(_header(response.headers, "Retry-After"))
            attempt = state.current_attempt + 1
            wait = policy.backoff(attempt, rand) if hint is None else min(hint, policy.max_delay)
            what = f"HTTP {response.status_code}" if response is not None else type(error).__name__
            log.warning("Slack look-up read got %s; retry %d in %.2fs", what, attempt, wait)
            state.next_attempt_requested = True
            self.waits.append(wait)
            sleep(wait)
            state.increment_current_attempt()

    handler = TransientReadRetryHandler(max_retry_count=policy.max_attempts - 1)
    handler.waits = []
    return [handler]


# -- sending --------------------------------------------------------------------------------------


def _message_parts(
    message: Any, n: int, key_prefix: str
) -> tuple[str, str | None, list[dict[str, Any]] | None]:
    """(record key, text, blocks) of a digest record, a {text, blocks} dict or a bare block list."""
    if isinstance(message, Mapping) and "payload" in message:
        payload = message["payload"]
        return str(message["record_key"]), payload.get("text"), payload.get("blocks")
    if isinstance(message, Mapping):
        return (
            str(message.get("record_key") or f"{key_prefix}:{n}"),
            message.get("text"),
            message.get("blocks"),
        )
    blocks = list(message)
    return f"{key_prefix}:{n}", fallback_text(blocks), blocks


def _message_keys(message: Any, key: str) -> list[str]:
    """The record keys a message answers for: a message of alert records answers for each
    record in it (mapping.alert_messages); any other message for its own key."""
    return [str(k) for k in message.get("record_keys") or [key]] if isinstance(message, Mapping) else [key]


def fallback_text(blocks: Iterable[Mapping[str, Any]]) -> str:
    """A plain fallback for a bare block list: its header, else its first section."""
    texts = [b.get("text", {}).get("text") for b in blocks if isinstance(b.get("text"), Mapping)]
    return clip(next((t for t in texts if t), "PLG signals"), MAX_FALLBACK_TEXT)


def _connection(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    from plg_bridge.redact import register_connection

    connection = BaseHook.get_connection(conn_id)
    register_connection(connection)  # a webhook URL is split over host and password
    return connection


_LAST_POST: dict[tuple, float] = {}  # (connection, channel, clock) -> when the last post left
# Added to `min_interval` between two posts' starts: Slack (and FakeSlack) count a post when it
# arrives, and two arrivals can come closer than their starts (the inbound half of a 150 ms +- 10 %
# round trip differs by up to 15 ms between calls, plus the client's scheduling). Like the HubSpot
# limiter's 50 ms, small enough to keep >= 95 % of the channel's 1 message/s.
PACE_MARGIN = 0.04
# (connection, channel, clock) -> recent seconds of the journal's in-flight commit before a post:
# the pacing wait ends that much early, so the commit does not add to every interval
_DEPART_COST: dict[tuple, float] = {}


def post_digest(
    messages: Sequence[Any],
    *,
    conn_id: str = DEFAULT_CONN_ID,
    channel: str = DEFAULT_CHANNEL,
    key_prefix: str = "digest",
    min_interval: float = 1.0,
    rate_limit_retries: int = 5,
    timeout: int = 30,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> pd.DataFrame:
    """Post digest messages in order; one outcome per message (`ts` as destination id).

    `messages`: messages from `alert_messages`, `{text, blocks}` dicts or bare block lists (their
    keys are then `<key_prefix>:<n>`). The connection decides the route: conn type `slack`
    (password = bot token; extra `base_url` for another endpoint) posts with `chat.postMessage`
    to `channel`; `slackwebhook` (password = webhook URL or path, host = its base) posts to the
    webhook's fixed channel. Message starts are spaced `min_interval` (+ PACE_MARGIN) seconds
    apart, measured from the previous post's start (Slack allows about one per second per channel). After an error that every later message would hit too (bad
    token, unknown channel, still rate limited), the rest are not sent and fail with that code
    (base.send_batches' stop rule).
    """
    if not messages:
        return outcomes_frame([])  # nothing to say: no connection needed, no call made
    connection = _connection(conn_id)
    handlers = retry_handlers(rate_limit_retries=rate_limit_retries, sleep=sleep)
    if connection.conn_type == "slackwebhook":
        send = _webhook_sender(conn_id, handlers, timeout)
        route = "webhook"
    else:
        send = _api_sender(conn_id, connection, channel, handlers, timeout)
        route = f"chat.postMessage to {channel}"

    # the channel's pace spans calls: the journal sends a target's batches in calls of their own
    pace = (conn_id, channel if connection.conn_type != "slackwebhook" else "", id(clock))

    def post(n: int) -> tuple[list[RowOutcome], Stop | None]:
        key, text, blocks = _message_parts(messages[n], n + 1, key_prefix)
        keys = _message_keys(messages[n], key)
        last = _LAST_POST.get(pace)
        # paced by request start: the previous post's round trip overlaps the interval
        due = last + min_interval + PACE_MARGIN if last is not None and min_interval > 0 else None

        def sleep_until(when: float) -> None:
            wait = when - clock()
            if 0 < wait <= min_interval + PACE_MARGIN:
                sleep(wait)

        if due is not None:  # woken early by the journal commit's recent cost, topped up below
            sleep_until(due - _DEPART_COST.get(pace, 0.0))
        started = clock()
        journal.departing(keys)  # in flight from here on (after the pacing wait): exactly-once journal
        cost = min(clock() - started, min_interval / 2)
        _DEPART_COST[pace] = (_DEPART_COST.get(pace, cost) + cost) / 2
        if due is not None:
            sleep_until(due)
        _LAST_POST[pace] = clock()  # after the journal's commit: as close to the wire as the client gets
        outcome = send(key, text, blocks, keys)
        stop = None
        if outcome.status == "failed" and outcome.error_code in STOP_ERRORS:
            log.error("Slack refused a digest message with %s; not sending the rest", outcome.error_code)
            stop = (str(outcome.error_code), str(outcome.error_message))
        return [dataclasses.replace(outcome, record_key=k) for k in keys], stop

    # one message at a time, paced: Slack allows about one post per second per channel
    # a refused credential or channel stops the later batches of this journaled send too (base):
    # scoped to the send in progress (its Journal), so a rerun tries again
    secret = hashlib.sha256(f"{connection.host}|{connection.password}".encode()).hexdigest()[:16]
    sends = tuple(journal._active)  # the journaled sends in progress (journal.py)
    outcomes = send_batches(
        range(len(messages)),
        post,
        lambda n: _message_keys(messages[n], _message_parts(messages[n], n + 1, key_prefix)[0]),
        what="Slack digest",
        stop_scope=("Slack", conn_id, pace[1], secret, sends) if sends else None,
        durable=lambda stop: stop[0] not in ("ratelimited", "rate_limited"),  # a later batch may pass
    )
    counts = {s: sum(o.status == s for o in outcomes) for s in ("created", "failed")}
    log.info("Slack digest via %s: %d messages, %s", route, len(outcomes), counts)
    return outcomes_frame(outcomes)


_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


def _transport_failure(key: str, exc: BaseException) -> RowOutcome:
    if _never_sent(exc):
        return RowOutcome(key, "failed", None, "NOT_SENT", f"connection failed before sending: {exc}")
    return RowOutcome(
        key,
        "failed",
        None,
        "DELIVERY_UNKNOWN",
        f"{type(exc).__name__}: {exc}; Slack may have posted it, so it was not sent again",
    )


def _api_sender(
    conn_id: str, connection: Any, channel: str, handlers: list[Any], timeout: int
) -> Callable[[str, str | None, list | None], RowOutcome]:
    from airflow.providers.slack.hooks.slack import SlackHook
    from slack_sdk.errors import SlackApiError

    kwargs: dict[str, Any] = {}
    base_url = (connection.extra_dejson or {}).get("base_url")
    if base_url and not str(base_url).endswith("/"):
        kwargs["base_url"] = f"{base_url}/"  # WebClient joins method names onto it
    # the hooks log through a WARNING logger: slack_sdk's retry log prints request URLs
    hook = SlackHook(
        slack_conn_id=conn_id, retry_handlers=handlers, timeout=timeout, logger=sdk_logger(), **kwargs
    )

    def send(key: str, text: str | None, blocks: list | None, keys: Sequence[str] = ()) -> RowOutcome:
        body: dict[str, Any] = {"channel": channel, "unfurl_links": False, "unfurl_media": False}
        body["metadata"] = lookup.metadata(key, keys)  # finds the message again if the answer is lost
        if text:
            body["text"] = text
        if blocks:
            body["blocks"] = blocks
        try:
            response = hook.client.chat_postMessage(**body)
        except SlackApiError as exc:
            return _api_failure(key, exc.response)
        except _TRANSPORT_ERRORS as exc:
            return _transport_failure(key, exc)
        return RowOutcome(key, "created", str(response.get("ts") or "") or None)

    return send


_SLACK_CODE = re.compile(r"[a-z_]{2,64}")


def _api_failure(key: str, response: Any) -> RowOutcome:
    status = getattr(response, "status_code", None)
    data = getattr(response, "data", None)
    error = str(data.get("error") or "") if isinstance(data, Mapping) else ""
    if _SLACK_CODE.fullmatch(error):
        code = error
        details = (data.get("response_metadata") or {}).get("messages") or data.get("errors") or []
        message = f"HTTP {status}: {code}" + (f" ({'; '.join(map(str, details))[:500]})" if details else "")
    elif error:  # slack_sdk's words for a body that is not Slack's JSON (a proxy's 5xx page)
        code, message = f"HTTP_{status}", f"HTTP {status}: {error[:300]}"
    else:
        code, message = f"HTTP_{status}", f"HTTP {status}: {str(data)[:300]}"
    return RowOutcome(key, "failed", None, code, message)


def _webhook_sender(
    conn_id: str, handlers: list[Any], timeout: int
) -> Callable[[str, str | None, list | None], RowOutcome]:
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(  # its URL is the secret: slack_sdk's retry log must not print it
        slack_webhook_conn_id=conn_id, retry_handlers=handlers, timeout=timeout, logger=sdk_logger()
    )

    def send(key: str, text: str | None, blocks: list | None, keys: Sequence[str] = ()) -> RowOutcome:
        body: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
        if text:
            body["text"] = text
        if blocks:
            body["blocks"] = blocks
        try:
            response = hook.client.send_dict(body)
        except _TRANSPORT_ERRORS as exc:
            return _transport_failure(key, exc)
        if response.status_code == 200:
            return RowOutcome(key, "created")
        answer = (response.body or "").strip()
        code = answer if _SLACK_CODE.fullmatch(answer) else f"HTTP_{response.status_code}"
        return RowOutcome(key, "failed", None, code, f"HTTP {response.status_code}: {answer[:300]}")

    return send


def find_digest(
    records: Sequence[dict],
    *,
    conn_id: str = DEFAULT_CONN_ID,
    channel: str = DEFAULT_CHANNEL,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, str | None] | None:
    """The journal's lookup for digest messages (lookup.py); None for a webhook connection,
    whose posts cannot be read back. Its reads retry transient faults (read_retry_handlers)."""
    from airflow.providers.slack.hooks.slack import SlackHook

    connection = _connection(conn_id)
    if connection.conn_type == "slackwebhook":
        return None
    kwargs: dict[str, Any] = {}
    base_url = (connection.extra_dejson or {}).get("base_url")
    if base_url and not str(base_url).endswith("/"):
        kwargs["base_url"] = f"{base_url}/"
    hook = SlackHook(
        slack_conn_id=conn_id,
        retry_handlers=read_retry_handlers(sleep=sleep),
        timeout=30,
        logger=sdk_logger(),  # slack_sdk's error log prints request URLs
        **kwargs,
    )
    return lookup.find_messages(hook.client, channel, records)

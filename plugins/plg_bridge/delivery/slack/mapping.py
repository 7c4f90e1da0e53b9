"""Slack mapping: the digest in Block Kit, escaped mrkdwn, within Slack's limits."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from plg_bridge.delivery.convert import day as iso_day
from plg_bridge.delivery.convert import missing as _missing
from plg_bridge.delivery.convert import real

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


DEFAULT_CONN_ID = "slack_default"
DEFAULT_CHANNEL = "#plg-alerts"
DEFAULT_TITLE = "PLG signals"
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FALLBACK_TEXT = 3000  # Slack takes 40,000; notifications show far less
MAX_NAME = 80  # characters of an organization name shown (before escaping)
MAX_DETAIL = 200

# The signals a digest reports, in this order (pql_crossed merges with the crossed-scores frame).
ALERT_SIGNALS = ("pql_crossed", "enterprise_interest", "usage_ceiling")
SIGNAL_TITLES = {
    "pql_crossed": "New PQLs",
    "enterprise_interest": "Enterprise interest",
    "usage_ceiling": "Usage ceilings",
    "integration_connected": "Integrations connected",
    "aha_reached": "Aha moments",
}
# Errors after which every further message would fail the same way.
STOP_ERRORS = frozenset(
    {
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "ratelimited",
        "rate_limited",
        "no_service",
        "invalid_token",
        "team_disabled",
        "channel_is_archived",
    }
)


# -- escaping -----------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")
_MENTION = re.compile(r"(?<![\w.+-])@(?=\w)")  # "@channel", "@here", "@alice"; not "a@b.io"
_WORD_JOINER = "\u2060"


def escape_mrkdwn(text: Any) -> str:
    """Untrusted text made inert in Slack mrkdwn.

    `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;`, so `<!channel>`, `<@U123>`, `<#C1>` or
    `<https://evil|click>` show as typed instead of pinging or linking; an `@` that starts a word
    gets an invisible word joiner so `@channel` / `@here` cannot become mentions even where Slack
    links names; line breaks and other whitespace runs collapse to one space.
    """
    if text is None:
        return ""
    flat = _WHITESPACE.sub(" ", str(text)).strip()
    escaped = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("@" + _WORD_JOINER, escaped)


def _inline(text: Any, limit: int) -> str:
    """Untrusted text for inside `*bold*` / `code`: clipped, formatting characters neutralised."""
    flat = _WHITESPACE.sub(" ", str(text)).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return escape_mrkdwn(flat.replace("*", "∗").replace("`", "'").replace("~", "∼"))


def _link_url(url: str) -> str:
    """A URL inside `<url|label>`: escaped, and `|` encoded so the label cannot be replaced."""
    return escape_mrkdwn(url.strip()).replace("|", "%7C").replace(" ", "%20")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, never cutting an `&...;` entity in half."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


# -- the digest (pure) --------------------------------------------------------------------------


def _count(value: Any) -> str:
    number = real(value)
    if number is None:
        return "n/a"
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"


def _trend(this_week: Any, last_week: Any) -> str:
    now, before = real(this_week), real(last_week)
    if now is None or before is None:
        return ""
    if before == 0:
        return " (new this week)" if now > 0 else ""
    change = (now - before) / before * 100
    return f" ({change:+.0f}% w/w)"


@dataclass(frozen=True)
class _Item:
    category: str
    sort_key: tuple
    text: str
    label: str  # escaped organization name, for the fallback text


def _who(row: Mapping[str, Any]) -> tuple[str, str]:
    """(`*Name* (`org`)` mrkdwn, escaped short name) of a row's organization."""
    org = "" if _missing(row.get("org_id")) else str(row["org_id"])
    name = None if _missing(row.get("org_name")) else str(row["org_name"]).strip() or None
    label = _inline(name or org or "unknown organization", MAX_NAME)
    org_code = f" (`{_inline(org, MAX_NAME)}`)" if org and name else ""
    return f"*{label}*{org_code}", label


def _score_sort(value: Any) -> float:
    number = real(value)
    return -number if number is not None else math.inf


def _pql_item(row: Mapping[str, Any]) -> _Item:
    who, label = _who(row)
    parts = [f"{who} crossed the PQL threshold: score *{_count(row.get('pql_score'))}*"]
    # a detail the record lacks (its organization not in this run's scores) is left out, not "n/a"
    if real(row.get("events_this_week")) is not None:
        parts.append(
            f"{_count(row.get('events_this_week'))} events this week"
            f"{_trend(row.get('events_this_week'), row.get('events_last_week'))}"
        )
    if real(row.get("active_creators")) is not None:
        parts.append(f"{_count(row.get('active_creators'))} active creators")
    if real(row.get("integrations_connected")) is not None:
        parts.append(f"{_count(row.get('integrations_connected'))} integrations")
    key = (_score_sort(row.get("pql_score")), str(row.get("org_id") or ""))
    return _Item("pql_crossed", key, " · ".join(parts), label)


_SIGNAL_PHRASES = {
    "enterprise_interest": "showed enterprise interest",
    "usage_ceiling": "is hitting a usage ceiling",
    "integration_connected": "connected an integration",
    "aha_reached": "has a member who reached the Aha moment",
    "pql_crossed": "crossed the PQL threshold",
}


def _signal_item(row: Mapping[str, Any]) -> _Item:
    who, label = _who(row)
    signal = str(row.get("signal"))
    phrase = _SIGNAL_PHRASES.get(signal, f"sent signal {_inline(signal, 60)}")
    detail = "" if _missing(row.get("detail")) else f": {_inline(row['detail'], MAX_DETAIL)}"
    score = real(row.get("pql_score"))
    suffix = f" · PQL score {_count(score)}" if score is not None else ""
    occurred = "" if _missing(row.get("occurred_at")) else str(row.get("occurred_at"))
    key = (
        _score_sort(row.get("pql_score")),
        str(row.get("org_id") or ""),
        occurred,
        str(row.get("signal_key") or ""),
    )
    return _Item(signal, key, f"{who} {phrase}{detail}{suffix}", label)


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return frame.to_dict("records")


def _items(
    scores_crossed: pd.DataFrame | None, signals: pd.DataFrame | None, alert_signals: Sequence[str]
) -> dict[str, list[_Item]]:
    groups: dict[str, list[_Item]] = {s: [] for s in alert_signals}
    crossed = _records(scores_crossed)
    if "pql_crossed" in groups:
        groups["pql_crossed"] = [_pql_item(r) for r in crossed]
    known = {str(r.get("org_id")) for r in crossed}
    for row in _records(signals):
        signal = str(row.get("signal"))
        if signal not in groups:
            continue
        if signal == "pql_crossed" and str(row.get("org_id")) in known:
            continue  # already listed, with its score details, from the crossed scores
        if signal == "pql_crossed":
            known.add(str(row.get("org_id")))
        groups[signal].append(_signal_item(row) if signal != "pql_crossed" else _pql_item(row))
    return {s: sorted(items, key=lambda i: i.sort_key) for s, items in groups.items() if items}


def _mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object; `verbatim` so Slack does not turn data text into links or mentions."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(clip(text, MAX_SECTION_TEXT))}


def _title(category: str, count: int, continued: bool) -> dict[str, Any]:
    name = SIGNAL_TITLES.get(category, category.replace("_", " ").capitalize())
    return _section(f"*{escape_mrkdwn(name)}* ({count}){' (continued)' if continued else ''}")


@dataclass(frozen=True)
class _Message:
    blocks: list[dict[str, Any]]
    text: str


def _digest(
    scores_crossed: pd.DataFrame | None,
    signals: pd.DataFrame | None,
    as_of: str | date | datetime,
    run_url: str | None,
    *,
    alert_signals: Sequence[str],
    title: str,
    max_blocks: int,
) -> list[_Message]:
    if not 4 <= max_blocks <= MAX_BLOCKS:
        raise ValueError(f"max_blocks must be between 4 and {MAX_BLOCKS}")
    groups = _items(scores_crossed, signals, alert_signals)
    if not groups:
        return []
    day = iso_day(as_of) or str(as_of)[:10]
    pqls = len(groups.get("pql_crossed", []))
    others = sum(len(v) for k, v in groups.items() if k != "pql_crossed")
    summary = _section(f"*{pqls}* new PQL{'s' * (pqls != 1)} · *{others}* other signal{'s' * (others != 1)}")
    footer_parts = [f"As of {escape_mrkdwn(day)}"]
    if run_url:
        footer_parts.append(f"<{_link_url(run_url)}|Airflow run>")
    footer = {"type": "context", "elements": [_mrkdwn(" · ".join(footer_parts))]}

    # Pack category titles and items; a continued category repeats its title in the next message.
    pages: list[list[tuple[dict[str, Any], str | None]]] = []
    page: list[tuple[dict[str, Any], str | None]] = []

    def room() -> int:
        return max_blocks - 2 - (1 if not pages else 0)  # header + footer (+ summary on the first)

    for category, items in groups.items():
        for n, item in enumerate(items):
            needs_title = n == 0 or not page
            if len(page) + 1 + needs_title > room():
                pages.append(page)
                page, needs_title = [], True
            if needs_title:
                page.append((_title(category, len(items), continued=n > 0), None))
            page.append((_section(item.text), item.label))
    pages.append(page)

    messages = []
    for number, content in enumerate(pages, 1):
        part = f" ({number}/{len(pages)})" if len(pages) > 1 else ""
        header_text = clip(f"{_WHITESPACE.sub(' ', title).strip()} · {day}{part}", MAX_HEADER_TEXT)
        header = {"type": "header", "text": {"type": "plain_text", "text": header_text, "emoji": True}}
        blocks = [header, *([summary] if number == 1 else []), *(b for b, _ in content), footer]
        labels = [label for _, label in content if label]
        shown = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
        text = f"{escape_mrkdwn(title)} {day}{part}: {pqls} new PQLs, {others} other signals. {shown}".strip()
        messages.append(_Message(blocks, clip(text, MAX_FALLBACK_TEXT)))
    return messages


# -- one record per alerted signal ---------------------------------------------------------------

_SCORE_FIELDS = (
    "pql_score",
    "events_this_week",
    "events_last_week",
    "active_creators",
    "integrations_connected",
)


def _plain(value: Any) -> Any:
    """A JSON-safe value of a frame cell (None for missing; numbers as numbers; times as ISO text)."""
    if _missing(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def alert_records(
    scores: pd.DataFrame | None,
    signals: pd.DataFrame | None,
    as_of: str | date | datetime,
    *,
    alert_signals: Sequence[str] = ALERT_SIGNALS,
) -> list[dict[str, Any]]:
    """One create-once record per alert-worthy signal, keyed by its `signal_key`.

    The signal, not the message, is the unit of exactly-once: a digest posted by one run (the fast
    path at 10:05, the daily run at midnight) holds the signals nobody alerted yet, and a signal in
    it is never in another digest. The payload is what its digest line shows (a PQL crossing with
    its score details from `scores`)."""
    if signals is None or signals.empty:
        return []
    by_org: dict[str, dict[str, Any]] = {}
    if scores is not None and len(scores):
        fields = [c for c in _SCORE_FIELDS if c in scores.columns]
        for row in scores[["org_id", *fields]].to_dict("records"):
            by_org[str(row["org_id"])] = {k: _plain(row[k]) for k in fields}
    day = iso_day(as_of) or str(as_of)[:10]
    records = []
    for row in signals[signals["signal"].isin(alert_signals)].to_dict("records"):
        fields = {
            k: _plain(row.get(k))
            for k in ("signal_key", "signal", "org_id", "org_name", "detail", "pql_score", "occurred_at")
        }
        if row["signal"] == "pql_crossed":
            fields.update(by_org.get(str(row["org_id"]), {}))
        records.append(
            {
                "record_key": str(row["signal_key"]),
                "org_id": row.get("org_id"),
                "payload": {"day": day, **fields},
            }
        )
    return records


def _message_of(
    records: Sequence[Mapping[str, Any]], alert_signals: Sequence[str], max_blocks: int
) -> list[_Message]:
    import pandas as pd

    rows = [dict(r["payload"]) for r in records]
    crossed = pd.DataFrame([r for r in rows if r["signal"] == "pql_crossed"])
    others = pd.DataFrame([r for r in rows if r["signal"] != "pql_crossed"])
    day = rows[0]["day"] if rows else ""
    return _digest(
        crossed if len(crossed) else None,
        others if len(others) else None,
        day,
        None,
        alert_signals=alert_signals,
        title=DEFAULT_TITLE,
        max_blocks=max_blocks,
    )


def alert_messages(
    records: Sequence[Mapping[str, Any]],
    *,
    alert_signals: Sequence[str] = ALERT_SIGNALS,
    max_blocks: int = MAX_BLOCKS,
) -> list[dict[str, Any]]:
    """Digest messages for alert records, each holding whole records:
    `{record_key, record_keys, payload: {text, blocks}}` (its first key names the message; every key
    in it gets the message's outcome). Records go into a message in order until one more would not fit."""
    messages: list[dict[str, Any]] = []
    group: list[Mapping[str, Any]] = []

    def flush() -> None:
        if group:
            (message,) = _message_of(group, alert_signals, max_blocks)
            keys = [str(r["record_key"]) for r in group]
            messages.append(
                {
                    "record_key": keys[0],
                    "record_keys": keys,
                    "payload": {"text": message.text, "blocks": message.blocks},
                }
            )

    for record in records:
        if group and len(_message_of([*group, record], alert_signals, max_blocks)) > 1:
            flush()
            group = []
        group.append(record)
    flush()
    return messages

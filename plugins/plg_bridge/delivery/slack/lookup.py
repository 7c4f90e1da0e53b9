"""Slack messages, exactly once: every digest message posted with `chat.postMessage` carries
message metadata `{event_type: plg_bridge_digest, event_payload: {key: <record key>}}`, so one
whose answer was lost can be found in the channel's history instead of being posted twice.

`find_messages` resolves the channel id (conversations.history takes ids, not names), reads the
history since shortly before the oldest row was sent with `include_all_metadata` (Slack returns
the payload only then), newest first, page by page, and matches the keys. Incoming webhooks
return nothing to match and cannot read history: their rows are undecidable (None) and wait for
on-call. (Slack: conversations.history is Tier 3, about 50 calls a minute.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

EVENT_TYPE = "plg_bridge_digest"  # letters, digits, underscores: Slack drops other characters
MARGIN_SECONDS = 600  # history read from this long before the oldest row was sent
MAX_PAGES = 25  # of 200 messages: beyond that the lookup gives up (undecided)
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,}")


def metadata(key: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    """The message metadata that names a digest message's record keys (every alert in it)."""
    return {"event_type": EVENT_TYPE, "event_payload": {"key": key, "keys": list(keys) or [key]}}


def _oldest(records: Sequence[dict]) -> float | None:
    times = []
    for record in records:
        sent_at = record.get("sent_at")
        if not isinstance(sent_at, str):
            return None  # unknown send time: read as far back as the page cap allows
        times.append(datetime.fromisoformat(sent_at).timestamp())
    return min(times) - MARGIN_SECONDS if times else None


def channel_id(client: Any, channel: str) -> str:
    """The id of `channel` (an id already, or a name with or without '#')."""
    name = channel.strip().lstrip("#")
    if _CHANNEL_ID.fullmatch(name):
        return name
    cursor = None
    for _ in range(MAX_PAGES):
        page = client.conversations_list(
            types="public_channel,private_channel", exclude_archived=True, limit=200, cursor=cursor
        )
        for found in page.get("channels") or []:
            if found.get("name") == name:
                return str(found["id"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    raise LookupError(f"Slack channel {channel!r} not found among the bot's conversations")


def find_messages(client: Any, channel: str, records: Sequence[dict]) -> dict[str, str | None]:
    """{record key: message ts} of the digest messages in `channel` whose metadata names one of
    `records`' keys. Raises when the history cannot be read to the rows' send time."""
    keys = {str(r["record_key"]) for r in records}
    oldest = _oldest(records)
    cid = channel_id(client, channel)
    found: dict[str, str | None] = {}
    cursor = None
    for _ in range(MAX_PAGES):
        kwargs: dict[str, Any] = {"channel": cid, "include_all_metadata": True, "limit": 200}
        if oldest is not None:
            kwargs["oldest"] = f"{oldest:.6f}"
        if cursor:
            kwargs["cursor"] = cursor
        page = client.conversations_history(**kwargs)
        for message in page.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") != EVENT_TYPE:
                continue
            for key in payload.get("keys") or [payload.get("key")]:
                if str(key) in keys:
                    found.setdefault(str(key), str(message.get("ts") or "") or None)
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not page.get("has_more") or not cursor or len(found) == len(keys):
            return found
    raise LookupError(f"Slack history of {channel} longer than {MAX_PAGES} pages since the rows were sent")

"""Slack target: the run's digest (create-once, journaled).

Imported by the DAG file at parse time (through delivery/targets.py): keep imports light.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plg_bridge.delivery.base import Target, routed

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.deliver import RunInputs

log = logging.getLogger(__name__)


def _slack_digest(inputs: RunInputs, settings: Settings) -> list[dict]:
    """One record per alerted signal (its signal key): whichever run posts it first, fast path or
    daily, no other digest repeats it."""
    from plg_bridge.delivery.slack.mapping import alert_records

    signals = routed(inputs, settings, "slack")
    return alert_records(inputs.frame("scores"), signals, inputs.as_of.date())


def _send_slack_digest(settings: Settings, records: list[dict]) -> pd.DataFrame:
    """The batch's signals as digest messages, each answering for the signals it holds."""
    from plg_bridge.delivery.slack.client import post_digest
    from plg_bridge.delivery.slack.mapping import alert_messages

    messages = alert_messages(records)
    return post_digest(messages, conn_id=settings.slack.conn_id, channel=settings.slack.channel)


def _find_slack_digest(settings: Settings, records: list[dict]) -> dict[str, str | None] | None:
    """The journal's lookup: digest messages found in the channel's history by their metadata."""
    from plg_bridge.delivery.slack.client import find_digest

    return find_digest(records, conn_id=settings.slack.conn_id, channel=settings.slack.channel)


# Signals per journaled batch (a digest message or two): one post_digest call paces messages ~1 s
# apart (Slack's per-channel limit) and stops at the first refusal every later one would hit too.
SLACK_JOURNAL_BATCH = 20

TARGETS: tuple[Target, ...] = (
    Target(
        "slack_digest",
        "slack",
        _slack_digest,
        _send_slack_digest,
        create_once=True,
        journal=lambda settings: SLACK_JOURNAL_BATCH,
        lookup=_find_slack_digest,
    ),
)

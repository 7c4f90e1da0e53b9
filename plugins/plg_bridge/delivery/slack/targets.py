"""Slack target: the run's digest (create-once, journaled).

Imported by the DAG file at parse time (through delivery/targets.py): keep imports light.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plg_bridge.delivery.base import Target, keyed, routed

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.deliver import RunInputs

log = logging.getLogger(__name__)


def _slack_digest(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.slack.mapping import digest_messages

    signals = routed(inputs, settings, "slack")
    crossed = signals[signals["signal"] == "pql_crossed"]["org_id"] if len(signals) else []
    scores = inputs.frame("scores")
    scores_crossed = scores[scores["org_id"].isin(crossed)] if len(scores) else scores
    if scores_crossed.empty and signals.empty:
        return []
    return keyed(digest_messages(scores_crossed, signals, inputs.as_of.date()))


def _send_slack_digest(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.slack.client import post_digest

    return post_digest(records, conn_id=settings.slack.conn_id, channel=settings.slack.channel)


def _find_slack_digest(settings: Settings, records: list[dict]) -> dict[str, str | None] | None:
    """The journal's lookup: digest messages found in the channel's history by their metadata."""
    from plg_bridge.delivery.slack.client import find_digest

    return find_digest(records, conn_id=settings.slack.conn_id, channel=settings.slack.channel)


# Digest messages per journaled batch: one post_digest call paces them ~1 s apart (Slack's
# per-channel limit) and stops at the first refusal every later message would hit too.
SLACK_JOURNAL_BATCH = 10

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

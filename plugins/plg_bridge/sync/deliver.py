"""Deliver a run's records to a destination and keep every row's outcome.

Outcomes (created / updated / failed, with the destination's error code and message) are
written beside the run's outputs; failed rows are also written as the run's dead letters, so
nothing is silently dropped and the next run can retry them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from plg_bridge.storage import location
from plg_bridge.window import run_prefix

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings

log = logging.getLogger(__name__)


def outcome_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    counts = outcomes["status"].value_counts().to_dict() if len(outcomes) else {}
    return {status: int(counts.get(status, 0)) for status in ("created", "updated", "failed")}


def record_outcomes(settings: Settings, destination: str, as_of: datetime, outcomes: pd.DataFrame) -> dict:
    """Store outcomes and dead letters of one destination; returns counts and URIs for XCom."""
    work = location(settings.work_location, settings.exports.endpoint_url)
    prefix = f"{run_prefix(as_of)}/{destination}"
    result: dict = {
        **outcome_counts(outcomes),
        "outcomes": work.write_frame(f"{prefix}/outcomes.parquet", outcomes),
    }
    failed = outcomes[outcomes["status"] == "failed"]
    if len(failed):
        result["dead_letters"] = work.write_frame(f"{prefix}/dead_letters.parquet", failed)
        for row in failed.head(5).itertuples():
            log.warning(
                "%s rejected %s: %s %s", destination, row.record_key, row.error_code, row.error_message
            )
    log.info("%s: %s", destination, {k: v for k, v in result.items() if isinstance(v, int)})
    return result


def deliver_scores_to_hubspot(settings: Settings, scores_uri: str, as_of: datetime) -> dict:
    """Upsert the run's scored organizations as HubSpot companies."""
    from plg_bridge.destinations.hubspot import HubSpotClient, deliver_companies

    work = location(settings.work_location, settings.exports.endpoint_url)
    scores = work.read_frame(work.key_of(scores_uri))
    client = HubSpotClient.from_connection(settings.hubspot.conn_id)
    outcomes = deliver_companies(client, scores, as_of.date().isoformat())
    return record_outcomes(settings, "hubspot", as_of, outcomes)

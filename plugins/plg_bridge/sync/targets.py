"""Every delivery target: which records it wants and how they are sent.

A target is one kind of object at one destination (HubSpot companies, HubSpot tasks, ...), with
its own state. `build` maps the run's model outputs to records `{record_key, org_id, payload}`;
`send` delivers records and returns one outcome per record. Create-once targets have no upsert
in the vendor's API, so their record key is the dedupe key that keeps reruns from duplicating.

This module is imported by the DAG file at parse time: keep its imports light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.sync.deliver import RunInputs


@dataclass(frozen=True)
class Target:
    name: str
    destination: str  # hubspot | salesforce | intercom | slack: its pool, connection and pause switch
    build: Callable[[RunInputs, Settings], list[dict]]
    send: Callable[[Settings, list[dict]], pd.DataFrame]
    create_once: bool = False


# -- HubSpot ----------------------------------------------------------------------------------


def _hubspot_companies(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.destinations.hubspot import company_inputs

    scores = inputs.frame("scores")
    if scores.empty:
        return []
    # No as-of date in the payload: an unchanged organization must diff as unchanged tomorrow.
    rows = company_inputs(scores, id_property=settings.hubspot.company_id_property, as_of=None)
    return [{"record_key": r["id"], "org_id": r["id"], "payload": r} for r in rows]


def _send_hubspot_companies(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.destinations.hubspot import COMPANY_PROPERTIES, HubSpotClient
    from plg_bridge.sync.outcomes import outcomes_frame

    client = HubSpotClient.from_connection(settings.hubspot.conn_id)
    client.ensure_properties("companies", COMPANY_PROPERTIES)
    payloads = [r["payload"] for r in records]
    return outcomes_frame(client.upsert("companies", payloads, batch_size=settings.hubspot.batch_size))


TARGETS: dict[str, Target] = {
    t.name: t for t in (Target("hubspot_companies", "hubspot", _hubspot_companies, _send_hubspot_companies),)
}


def enabled(settings: Settings, names: tuple[str, ...] = ()) -> list[Target]:
    """Targets to run: not paused, the destination enabled, and among `names` when given."""
    chosen = [t for t in TARGETS.values() if not names or t.name in names or t.destination in names]
    return [t for t in chosen if t.destination not in settings.delivery.paused]

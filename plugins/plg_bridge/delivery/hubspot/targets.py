"""HubSpot targets: companies and contacts (upserts), tasks (create-once, journaled).

Imported by the DAG file at parse time (through delivery/targets.py): keep imports light.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plg_bridge.delivery.base import Target, routed, run_as_of

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.deliver import RunInputs

log = logging.getLogger(__name__)


def _hubspot_companies(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.hubspot.mapping import company_inputs

    scores = inputs.frame("scores")
    if scores.empty:
        return []
    # No as-of date in the payload: an unchanged organization must diff as unchanged tomorrow.
    rows = company_inputs(scores, id_property=settings.hubspot.company_id_property, as_of=None)
    return [{"record_key": r["id"], "org_id": r["id"], "payload": r} for r in rows]


def _send_hubspot_companies(settings: Settings, records: list[dict]) -> pd.DataFrame:
    return send_companies(
        _client(settings), records, run_as_of(records), batch_size=settings.hubspot.batch_size
    )


def send_companies(client, records: list[dict], as_of: str | None, *, batch_size: int = 100) -> pd.DataFrame:
    """The hubspot_companies send step: properties ensured (once per run), then the upserts
    with `plg_scored_at` stamped at send time (the run's as-of date), so the planned payload (and
    so the diff) does not change with the date: a company is sent when its values change, and its
    `plg_scored_at` says as of which day the values it shows were computed."""
    from plg_bridge.delivery.hubspot.mapping import COMPANY_FIELDS
    from plg_bridge.delivery.outcomes import outcomes_frame

    _ensure_fields(client, COMPANY_FIELDS)
    payloads = [_stamped(r["payload"], as_of) for r in records]
    return outcomes_frame(client.upsert("companies", payloads, batch_size=batch_size))


def _stamped(payload: dict, as_of: str | None) -> dict:
    if as_of is None:
        return payload
    return {**payload, "properties": {**payload["properties"], "plg_scored_at": str(as_of)[:10]}}


def _client(settings: Settings):
    from plg_bridge.delivery.hubspot.client import HubSpotClient

    cfg = settings.hubspot
    return HubSpotClient.from_connection(
        cfg.conn_id, calls_per_10s=cfg.calls_per_10s, max_in_flight=cfg.max_in_flight
    )


def _hubspot_contacts(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.hubspot.mapping import contact_inputs

    contacts = inputs.frame("contacts")
    rows = contact_inputs(contacts) if len(contacts) else []
    org = dict(zip(contacts["email"], contacts["org_id"], strict=True)) if len(contacts) else {}
    return [{"record_key": r["id"], "org_id": org.get(r["id"]), "payload": r} for r in rows]


def _send_hubspot_contacts(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.hubspot.mapping import CONTACT_FIELDS
    from plg_bridge.delivery.outcomes import outcomes_frame

    client = _client(settings)
    _ensure_fields(client, CONTACT_FIELDS)
    payloads = [r["payload"] for r in records]
    return outcomes_frame(client.upsert("contacts", payloads, batch_size=settings.hubspot.batch_size))


def _ensure_fields(client, fields) -> None:
    """Create missing properties (base.ensure_fields: listed once per run and credential); if
    HubSpot refuses (daily limit, scopes, 5xx), the upsert still runs and reports per row what
    that means (it stops at a daily limit), so the rows become dead letters instead of the whole
    target failing without a trace."""
    from plg_bridge.delivery.base import FieldError, ensure_fields
    from plg_bridge.delivery.transport import DestinationError

    try:
        ensure_fields(client, fields)
    except (DestinationError, FieldError) as exc:
        log.warning("could not ensure HubSpot %s properties: %s", fields[0].object, exc)


def _hubspot_tasks(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.hubspot.mapping import task_records

    signals = routed(inputs, settings, "hubspot")
    return task_records(signals) if len(signals) else []


def _send_hubspot_tasks(settings: Settings, records: list[dict]) -> pd.DataFrame:
    """Tasks attach to the company the companies target delivered (its HubSpot id in that state)."""
    from plg_bridge.delivery import state
    from plg_bridge.delivery.outcomes import outcomes_frame
    from plg_bridge.workspace import Workspace

    companies = state.load(Workspace(settings).work, "hubspot_companies").frame
    delivered = companies[(companies["status"] == "delivered") & companies["destination_id"].notna()]
    ids = dict(zip(delivered["record_key"], delivered["destination_id"], strict=True))
    from plg_bridge.delivery.hubspot.mapping import TASK_FIELDS

    client = _client(settings)
    # every task carries its signal key (found again after a lost answer): the property must exist
    _ensure_fields(client, TASK_FIELDS)
    return outcomes_frame(client.create_tasks(records, ids))


def _find_hubspot_tasks(settings: Settings, records: list[dict]) -> dict[str, str | None]:
    """The journal's lookup: tasks found by CRM search on their `plg_signal_key` (lookup.py)."""
    from plg_bridge.delivery.hubspot.lookup import find_tasks

    return find_tasks(_client(settings), [str(r["record_key"]) for r in records])


TARGETS: tuple[Target, ...] = (
    Target("hubspot_companies", "hubspot", _hubspot_companies, _send_hubspot_companies),
    Target("hubspot_contacts", "hubspot", _hubspot_contacts, _send_hubspot_contacts),
    Target(
        "hubspot_tasks",
        "hubspot",
        _hubspot_tasks,
        _send_hubspot_tasks,
        create_once=True,
        after="hubspot_companies",
        journal=lambda settings: settings.hubspot.batch_size,
        lookup=_find_hubspot_tasks,
    ),
)

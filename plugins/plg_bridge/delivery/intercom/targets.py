"""Intercom targets: companies, tags and data events.

Imported by the DAG file at parse time (through delivery/targets.py): keep imports light.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plg_bridge.delivery.base import Target, keyed, routed, run_as_of

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.deliver import RunInputs

log = logging.getLogger(__name__)


def _intercom_client(settings: Settings):
    from plg_bridge.delivery.intercom.client import IntercomClient

    return IntercomClient.from_connection(
        settings.intercom.conn_id, max_in_flight=settings.intercom.max_in_flight
    )


def _intercom_companies(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.intercom.mapping import company_records

    scores = inputs.frame("scores")
    return keyed(company_records(scores, routed(inputs, settings, "intercom"))) if len(scores) else []


def _send_intercom_companies(settings: Settings, records: list[dict]) -> pd.DataFrame:
    return send_companies(_intercom_client(settings), records, run_as_of(records))


def send_companies(client, records: list[dict], as_of: str | None) -> pd.DataFrame:
    """The intercom_companies send step: `plg_scored_at` (midnight UTC of the run's as-of date)
    stamped at send time on companies that carry a score, then created or updated."""
    from plg_bridge.delivery.convert import unix_day
    from plg_bridge.delivery.intercom.deliver import deliver_companies

    stamp = unix_day(as_of) if as_of else None
    sent = []
    for record in records:
        payload = record["payload"]
        attributes = payload.get("custom_attributes") or {}
        if stamp is not None and "plg_pql_score" in attributes:
            payload = {**payload, "custom_attributes": {**attributes, "plg_scored_at": stamp}}
        sent.append({**record, "payload": payload})
    return deliver_companies(client, sent)


def _intercom_tags(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.intercom.mapping import tag_records

    return [
        {**r, "org_id": r["payload"]["companies"][0]["company_id"]}
        for r in keyed(tag_records(routed(inputs, settings, "intercom")))
    ]


def _intercom_events(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.intercom.mapping import event_records

    events = {"aha_reached": settings.intercom.aha_event_name}
    return keyed(event_records(routed(inputs, settings, "intercom"), events=events))


def _sender(deliver_name: str):
    """`send` for an Intercom target: the client from the connection, then `deliver_<name>`."""

    def send(settings: Settings, records: list[dict]) -> pd.DataFrame:
        from plg_bridge.delivery.intercom import deliver

        return getattr(deliver, deliver_name)(_intercom_client(settings), records)

    return send


TARGETS: tuple[Target, ...] = (
    Target("intercom_companies", "intercom", _intercom_companies, _send_intercom_companies),
    Target(
        "intercom_tags",
        "intercom",
        _intercom_tags,
        _sender("deliver_tags"),
        create_once=True,
        after="intercom_companies",
    ),
    Target("intercom_events", "intercom", _intercom_events, _sender("deliver_events"), create_once=True),
)

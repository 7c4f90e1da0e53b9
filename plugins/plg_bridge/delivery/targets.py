"""Every delivery target: which records it wants and how they are sent.

A target is one kind of object at one destination (HubSpot companies, HubSpot tasks, ...), with
its own state. `build` maps the run's model outputs to records `{record_key, org_id, payload}`;
`send` delivers records and returns one outcome per record. Create-once targets have no upsert
in the vendor's API, so their record key is the dedupe key that keeps reruns from duplicating.
Intercom dedupes a replayed tag or event itself; HubSpot tasks and Slack messages have no such
guard, so they are journaled (`journal`): a delivery whose outcome is unknown is never resent.

This module is imported by the DAG file at parse time: keep its imports light.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.deliver import RunInputs


log = logging.getLogger(__name__)

# Digest messages per journaled batch: one post_digest call paces them ~1 s apart (Slack's
# per-channel limit) and stops at the first refusal every later message would hit too.
SLACK_JOURNAL_BATCH = 10


@dataclass(frozen=True)
class Target:
    name: str
    destination: str  # hubspot | salesforce | intercom | slack: its pool, connection and pause switch
    build: Callable[[RunInputs, Settings], list[dict]]
    send: Callable[[Settings, list[dict]], pd.DataFrame]
    create_once: bool = False
    after: str | None = None  # a target whose records must exist first (tags need their companies)
    # Create-once targets the vendor cannot dedupe (a replayed call makes a second object): the
    # batch size the engine sends them in, committing each batch as in flight first (deliver.py).
    journal: Callable[[Settings], int] | None = None


# -- HubSpot ----------------------------------------------------------------------------------


def _hubspot_companies(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.hubspot import company_inputs

    scores = inputs.frame("scores")
    if scores.empty:
        return []
    # No as-of date in the payload: an unchanged organization must diff as unchanged tomorrow.
    rows = company_inputs(scores, id_property=settings.hubspot.company_id_property, as_of=None)
    return [{"record_key": r["id"], "org_id": r["id"], "payload": r} for r in rows]


def _send_hubspot_companies(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.hubspot import COMPANY_PROPERTIES, HubSpotClient
    from plg_bridge.delivery.outcomes import outcomes_frame

    client = HubSpotClient.from_connection(
        settings.hubspot.conn_id, calls_per_10s=settings.hubspot.calls_per_10s
    )
    _ensure_properties(client, "companies", COMPANY_PROPERTIES)
    payloads = [r["payload"] for r in records]
    return outcomes_frame(client.upsert("companies", payloads, batch_size=settings.hubspot.batch_size))


def _hubspot_contacts(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.hubspot import contact_inputs

    contacts = inputs.frame("contacts")
    rows = contact_inputs(contacts) if len(contacts) else []
    org = dict(zip(contacts["email"], contacts["org_id"], strict=True)) if len(contacts) else {}
    return [{"record_key": r["id"], "org_id": org.get(r["id"]), "payload": r} for r in rows]


def _send_hubspot_contacts(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.hubspot import CONTACT_PROPERTIES, HubSpotClient
    from plg_bridge.delivery.outcomes import outcomes_frame

    client = HubSpotClient.from_connection(
        settings.hubspot.conn_id, calls_per_10s=settings.hubspot.calls_per_10s
    )
    _ensure_properties(client, "contacts", CONTACT_PROPERTIES)
    payloads = [r["payload"] for r in records]
    return outcomes_frame(client.upsert("contacts", payloads, batch_size=settings.hubspot.batch_size))


def _ensure_properties(client, object_type: str, definitions) -> None:
    """Create missing properties; if HubSpot refuses (daily limit, scopes, 5xx), the upsert still
    runs and reports per row what that means (it stops at a daily limit), so the rows become dead
    letters instead of the whole target failing without a trace."""
    from plg_bridge.delivery.http import DestinationError

    try:
        client.ensure_properties(object_type, definitions)
    except DestinationError as exc:
        log.warning("could not ensure HubSpot %s properties: %s", object_type, exc)


def _hubspot_tasks(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.hubspot import task_records

    signals = _routed(inputs, settings, "hubspot")
    return task_records(signals) if len(signals) else []


def _send_hubspot_tasks(settings: Settings, records: list[dict]) -> pd.DataFrame:
    """Tasks attach to the company the companies target delivered (its HubSpot id in that state)."""
    from plg_bridge.delivery import state
    from plg_bridge.delivery.hubspot import HubSpotClient
    from plg_bridge.delivery.outcomes import outcomes_frame
    from plg_bridge.workspace import Workspace

    companies = state.load(Workspace(settings).work, "hubspot_companies").frame
    delivered = companies[(companies["status"] == "delivered") & companies["destination_id"].notna()]
    ids = dict(zip(delivered["record_key"], delivered["destination_id"], strict=True))
    client = HubSpotClient.from_connection(
        settings.hubspot.conn_id, calls_per_10s=settings.hubspot.calls_per_10s
    )
    return outcomes_frame(client.create_tasks(records, ids))


# -- Salesforce -------------------------------------------------------------------------------


def _salesforce_client(settings: Settings):
    from plg_bridge.delivery.salesforce import SalesforceClient

    cfg = settings.salesforce
    extra = {"api_version": cfg.api_version} if cfg.api_version else {}
    return SalesforceClient.from_connection(cfg.conn_id, **extra)


def _salesforce_accounts(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.salesforce import account_records

    scores = inputs.frame("scores")
    if scores.empty:
        return []
    records = account_records(scores, inputs.frame("signals"))
    return [
        {"record_key": r["record_key"], "org_id": r["record_key"], "payload": r["fields"]} for r in records
    ]


def _send_salesforce_accounts(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.salesforce import deliver_accounts

    cfg = settings.salesforce
    rows = [{"record_key": r["record_key"], "fields": r["payload"]} for r in records]
    return deliver_accounts(
        _salesforce_client(settings), rows, cfg.bulk_threshold, external_id_field=cfg.external_id_field
    )


def _signals(inputs: RunInputs, kind: str) -> pd.DataFrame:
    signals = inputs.frame("signals")
    return signals[signals["signal"] == kind] if len(signals) else signals


def _routed(inputs: RunInputs, settings: Settings, destination: str) -> pd.DataFrame:
    """The run's signals that settings route to `destination`."""
    signals = inputs.frame("signals")
    if signals.empty:
        return signals
    wanted = [s for s in settings.signals.enabled if destination in settings.signals.routes(s)]
    return signals[signals["signal"].isin(wanted)]


def _salesforce_lead_status(inputs: RunInputs, settings: Settings) -> list[dict]:
    """One record per PQL crossing (its signal key): the org's leads get the PQL status once."""
    status = settings.salesforce.pql_lead_status
    return [
        {
            "record_key": row.signal_key,
            "org_id": row.org_id,
            "payload": {"org_id": row.org_id, "status": status},
        }
        for row in _signals(inputs, "pql_crossed").itertuples()
    ]


def _send_salesforce_lead_status(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.salesforce import deliver_lead_status

    cfg = settings.salesforce
    by_org = {r["payload"]["org_id"]: r["record_key"] for r in records}
    outcomes = deliver_lead_status(
        _salesforce_client(settings), list(by_org), cfg.pql_lead_status, org_field=cfg.lead_org_field
    )
    return outcomes.assign(record_key=outcomes["record_key"].map(by_org))


# -- Intercom ---------------------------------------------------------------------------------


def _intercom_client(settings: Settings):
    from plg_bridge.delivery.intercom import IntercomClient

    return IntercomClient.from_connection(settings.intercom.conn_id)


def _keyed(records: list[dict]) -> list[dict]:
    return [
        {"record_key": r["record_key"], "org_id": r.get("org_id"), "payload": r["payload"]} for r in records
    ]


def _intercom_companies(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.intercom import company_records

    scores = inputs.frame("scores")
    return _keyed(company_records(scores, _routed(inputs, settings, "intercom"))) if len(scores) else []


def _intercom_tags(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.intercom import tag_records

    return [
        {**r, "org_id": r["payload"]["companies"][0]["company_id"]}
        for r in _keyed(tag_records(_routed(inputs, settings, "intercom")))
    ]


def _intercom_events(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.intercom import event_records

    events = {"aha_reached": settings.intercom.aha_event_name}
    return _keyed(event_records(_routed(inputs, settings, "intercom"), events=events))


def _sender(deliver_name: str):
    """`send` for an Intercom target: the client from the connection, then `deliver_<name>`."""

    def send(settings: Settings, records: list[dict]) -> pd.DataFrame:
        from plg_bridge.delivery import intercom

        return getattr(intercom, deliver_name)(_intercom_client(settings), records)

    return send


# -- Slack ------------------------------------------------------------------------------------


def _slack_digest(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.slack import digest_messages

    signals = _routed(inputs, settings, "slack")
    crossed = signals[signals["signal"] == "pql_crossed"]["org_id"] if len(signals) else []
    scores = inputs.frame("scores")
    scores_crossed = scores[scores["org_id"].isin(crossed)] if len(scores) else scores
    if scores_crossed.empty and signals.empty:
        return []
    return _keyed(digest_messages(scores_crossed, signals, inputs.as_of.date()))


def _send_slack_digest(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.slack import post_digest

    return post_digest(records, conn_id=settings.slack.conn_id, channel=settings.slack.channel)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
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
        ),
        Target("salesforce_accounts", "salesforce", _salesforce_accounts, _send_salesforce_accounts),
        Target("salesforce_lead_status", "salesforce", _salesforce_lead_status, _send_salesforce_lead_status),
        Target("intercom_companies", "intercom", _intercom_companies, _sender("deliver_companies")),
        Target(
            "intercom_tags",
            "intercom",
            _intercom_tags,
            _sender("deliver_tags"),
            create_once=True,
            after="intercom_companies",
        ),
        Target("intercom_events", "intercom", _intercom_events, _sender("deliver_events"), create_once=True),
        Target(
            "slack_digest",
            "slack",
            _slack_digest,
            _send_slack_digest,
            create_once=True,
            journal=lambda settings: SLACK_JOURNAL_BATCH,
        ),
    )
}


def skip_reason(target: Target, settings: Settings, names: tuple[str, ...] = ()) -> str | None:
    """Why a target does not run in this run (None: it runs)."""
    if target.destination not in settings.delivery.destinations:
        return "destination not enabled in settings"
    if target.destination in settings.delivery.paused:
        return "paused in settings"
    if names and target.name not in names and target.destination not in names:
        return "not selected"
    return None

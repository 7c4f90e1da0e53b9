"""Salesforce targets: Accounts (Collections or Bulk 2.0) and the PQL lead status.

Imported by the DAG file at parse time (through delivery/targets.py): keep imports light.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plg_bridge.delivery.base import Target, signals_of

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.deliver import RunInputs

log = logging.getLogger(__name__)


def _salesforce_client(settings: Settings):
    from plg_bridge.delivery.salesforce.client import SalesforceClient

    cfg = settings.salesforce
    extra = {"api_version": cfg.api_version} if cfg.api_version else {}
    return SalesforceClient.from_connection(
        cfg.conn_id, max_in_flight=cfg.max_in_flight, api_reserve=cfg.api_reserve, **extra
    )


def _salesforce_accounts(inputs: RunInputs, settings: Settings) -> list[dict]:
    from plg_bridge.delivery.salesforce.mapping import account_records

    scores = inputs.frame("scores")
    if scores.empty:
        return []
    records = account_records(scores, inputs.frame("signals"))
    return [
        {"record_key": r["record_key"], "org_id": r["record_key"], "payload": r["fields"]} for r in records
    ]


def _send_salesforce_accounts(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.salesforce.deliver import deliver_accounts

    cfg = settings.salesforce
    rows = [{"record_key": r["record_key"], "fields": r["payload"]} for r in records]
    return deliver_accounts(
        _salesforce_client(settings), rows, cfg.bulk_threshold, external_id_field=cfg.external_id_field
    )


def _salesforce_lead_status(inputs: RunInputs, settings: Settings) -> list[dict]:
    """One record per PQL crossing (its signal key): the org's leads get the PQL status once."""
    status = settings.salesforce.pql_lead_status
    return [
        {
            "record_key": row.signal_key,
            "org_id": row.org_id,
            "payload": {"org_id": row.org_id, "status": status},
        }
        for row in signals_of(inputs, "pql_crossed").itertuples()
    ]


def _send_salesforce_lead_status(settings: Settings, records: list[dict]) -> pd.DataFrame:
    from plg_bridge.delivery.salesforce.deliver import deliver_lead_status

    cfg = settings.salesforce
    by_org = {r["payload"]["org_id"]: r["record_key"] for r in records}
    outcomes = deliver_lead_status(
        _salesforce_client(settings), list(by_org), cfg.pql_lead_status, org_field=cfg.lead_org_field
    )
    return outcomes.assign(record_key=outcomes["record_key"].map(by_org))


TARGETS: tuple[Target, ...] = (
    Target("salesforce_accounts", "salesforce", _salesforce_accounts, _send_salesforce_accounts),
    Target("salesforce_lead_status", "salesforce", _salesforce_lead_status, _send_salesforce_lead_status),
)

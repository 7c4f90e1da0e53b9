"""The destination framework: what every vendor folder (hubspot/, salesforce/, intercom/, slack/)
plugs into, so a vendor only says how to map records and how to send one batch.

- `Target`: one kind of object at one destination, with its own state (see deliver.py). `build`
  maps the run's model outputs to records `{record_key, org_id, payload}`; `send` delivers records
  and returns exactly one outcome per record.
- `routed` / `signals_of` / `keyed`: the record-building helpers every vendor's targets share.

Imported by the DAG file at parse time (through delivery/targets.py): keep its imports light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.deliver import RunInputs


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


def routed(inputs: RunInputs, settings: Settings, destination: str) -> pd.DataFrame:
    """The run's signals that settings route to `destination`."""
    signals = inputs.frame("signals")
    if signals.empty:
        return signals
    wanted = [s for s in settings.signals.enabled if destination in settings.signals.routes(s)]
    return signals[signals["signal"].isin(wanted)]


def signals_of(inputs: RunInputs, kind: str) -> pd.DataFrame:
    """The run's signals of one kind (pql_crossed, ...)."""
    signals = inputs.frame("signals")
    return signals[signals["signal"] == kind] if len(signals) else signals


def keyed(records: list[dict]) -> list[dict]:
    """Records in the engine's shape `{record_key, org_id, payload}`."""
    return [
        {"record_key": r["record_key"], "org_id": r.get("org_id"), "payload": r["payload"]} for r in records
    ]

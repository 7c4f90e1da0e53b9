"""Every delivery target, collected from the vendor folders: the one list the DAGs, `sync` and
on-call commands iterate. Adding a vendor: a folder with client.py, mapping.py and targets.py
(its `TARGETS`), one line here, and its settings section.

This module is imported by the DAG file at parse time: keep its imports light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plg_bridge.delivery import base
from plg_bridge.delivery.hubspot import targets as hubspot
from plg_bridge.delivery.intercom import targets as intercom
from plg_bridge.delivery.salesforce import targets as salesforce
from plg_bridge.delivery.slack import targets as slack

if TYPE_CHECKING:
    from plg_bridge.config import Settings

Target = base.Target

TARGETS: dict[str, Target] = {
    t.name: t for vendor in (hubspot, salesforce, intercom, slack) for t in vendor.TARGETS
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

"""Intercom delivery steps: records -> outcomes frames."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plg_bridge.delivery.base import FieldError, FieldSpec
from plg_bridge.delivery.intercom.client import IntercomClient
from plg_bridge.delivery.intercom.mapping import COMPANY_FIELDS
from plg_bridge.delivery.outcomes import outcomes_frame
from plg_bridge.delivery.transport import DestinationError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# -- delivery entry points (records -> outcomes frame) ----------------------------------------


def ensure_data_attributes(client: IntercomClient, fields: Iterable[FieldSpec] = COMPANY_FIELDS) -> list[str]:
    """Create missing company data attributes (base.ensure_fields, remembered for the run)."""
    return client.ensure_data_attributes(fields)


def deliver_companies(
    client: IntercomClient, records: Sequence[Mapping[str, Any]], *, ensure_attributes: bool = True
) -> pd.DataFrame:
    """Create or update companies from `company_records`; one outcome row per record.

    Missing data attributes are created first; if that fails, the companies are still sent and
    report per row what it meant (Intercom's message names the attribute).
    """
    if records and ensure_attributes:
        try:
            client.ensure_data_attributes(COMPANY_FIELDS)
        except (DestinationError, FieldError) as exc:
            log.warning("could not ensure Intercom company data attributes: %s", exc)
    return outcomes_frame(client.upsert_companies(records))


def deliver_tags(client: IntercomClient, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Tag companies from `tag_records` (deliver companies first); one outcome row per record."""
    return outcomes_frame(client.apply_tags(records))


def deliver_events(client: IntercomClient, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Post data events from `event_records`; one outcome row per record."""
    return outcomes_frame(client.create_events(records))

"""First-touch attribution per stitched person, and revenue by original source, as of T.

The seed's failure mode: a paid click, a direct return visit three days later, a signup recorded as
"Direct". First touch here is chosen over the whole stitched identity (identity.stitch), from the
acquisition records of plg_bridge.ingest.people (all before T), in this order:

1. `set_once`, tagged: PostHog's recorded `$initial_utm_*` (`$set_once`, or person properties):
   they describe the first visit even when that visit predates the exported history;
2. `event`, tagged: the earliest event carrying `utm_*` values (projects with
   `person_profiles: 'identified_only'` record nothing for anonymous visits, but their pageviews
   keep their UTM values and `$identify` links them);
3. `set_once`, untagged: a recorded `$initial_referring_domain` without UTM values (organic);
4. `event`, untagged: the earliest event with a `$referring_domain`.

Within a rank the earliest record wins (ties: the smaller values). A direct or organic visit is
never tagged, so it never displaces a tagged touch: the first touch is locked once set. Source,
medium, campaign and referring domain always come from the same record. A person is "paid" when
the touch's utm_medium (any case) is one of `models.paid_mediums`, else "organic" (including
direct, referral and unknown).

Revenue by source follows the seed's query with its flaws corrected (see
include/sql/hogql/attribution.sql): conversions in the half-open window [T - window, T), each
conversion event counted once (uuid), attributed to the converting person's first touch (the
seed read `$initial_utm_source` from the event's own properties, where PostHog never puts it),
`contract_value` parsed as a number (unparseable: 0, like `toFloat64OrZero`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.rollup import Partial
    from plg_bridge.models.exclusions import Exclusions

FIRST_TOUCH = [
    "person_key",
    "source",
    "medium",
    "campaign",
    "referring_domain",
    "channel",
    "origin",
    "touched_at",
]
REVENUE = ["source", "campaign", "paid_conversions", "conversions", "total_revenue", "avg_contract_value"]
PAID, ORGANIC = "paid", "organic"


def channel(medium: pd.Series, paid_mediums: Iterable[str]) -> pd.Series:
    """ "paid" where utm_medium (trimmed, any case) is a paid medium, else "organic"."""
    import numpy as np
    import pandas as pd

    paid = medium.fillna("").str.strip().str.lower().isin(list(paid_mediums))
    return pd.Series(np.where(paid, PAID, ORGANIC), index=medium.index, dtype="str")


def first_touch(
    touches: pd.DataFrame, keys: pd.DataFrame, as_of: datetime, paid_mediums: Iterable[str]
) -> pd.DataFrame:
    """One row per stitched person with any acquisition record before `as_of` (columns FIRST_TOUCH).

    `touches` is the merged `Partial.touches`, `keys` the output of identity.stitch.
    """
    import pandas as pd

    from plg_bridge.models.identity import person_of

    rows = touches[touches["timestamp"] < pd.Timestamp(as_of)]
    rank = (~rows["tagged"]).astype("int64") * 2 + (rows["origin"] != "set_once").astype("int64")
    rows = rows.assign(person_key=person_of(rows["distinct_id"], keys), rank=rank)
    order = [
        "person_key",
        "rank",
        "timestamp",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "referring_domain",
    ]
    best = rows.sort_values(order, na_position="last", kind="stable").drop_duplicates("person_key")
    out = pd.DataFrame(
        {
            "person_key": best["person_key"],
            "source": best["utm_source"],
            "medium": best["utm_medium"],
            "campaign": best["utm_campaign"],
            "referring_domain": best["referring_domain"],
            "channel": channel(best["utm_medium"], paid_mediums),
            "origin": best["origin"],
            "touched_at": best["timestamp"],
        }
    )
    return out.sort_values("person_key").reset_index(drop=True)


def revenue_by_source(
    conversions: pd.DataFrame,
    keys: pd.DataFrame,
    touches: pd.DataFrame,
    as_of: datetime,
    window_days: int,
) -> pd.DataFrame:
    """Paid conversions and contract value by original source and campaign (columns REVENUE).

    `conversions` (already without excluded persons and organizations) are counted in
    [as_of - window_days, as_of). `touches` is `first_touch` output; persons without one fall in
    the (null, null) group. paid_conversions = distinct persons, conversions = events,
    avg_contract_value = total_revenue / paid_conversions (the seed's definition), sorted by
    total revenue, then source and campaign.
    """
    import pandas as pd

    from plg_bridge.models.identity import person_of

    t = pd.Timestamp(as_of)
    rows = conversions[
        (conversions["timestamp"] >= t - timedelta(days=window_days)) & (conversions["timestamp"] < t)
    ]
    rows = rows.assign(person_key=person_of(rows["distinct_id"], keys))
    rows = rows.merge(touches[["person_key", "source", "campaign"]], on="person_key", how="left")
    rows = rows.assign(value=rows["contract_value"].fillna(0.0))
    out = rows.groupby(["source", "campaign"], dropna=False, as_index=False).agg(
        paid_conversions=("person_key", "nunique"),
        conversions=("uuid", "size"),
        total_revenue=("value", "sum"),
    )
    out["avg_contract_value"] = out["total_revenue"] / out["paid_conversions"]
    out = out.astype(
        {"source": "str", "campaign": "str", "paid_conversions": "int64", "conversions": "int64"}
    )
    out = out.astype({"total_revenue": "float64", "avg_contract_value": "float64"})
    out = out.sort_values(
        ["total_revenue", "source", "campaign"],
        ascending=[False, True, True],
        na_position="last",
        kind="stable",
    )
    return out[REVENUE].reset_index(drop=True)


@dataclass(frozen=True)
class Attribution:
    first_touch: pd.DataFrame  # FIRST_TOUCH, one row per (non-excluded) person with a touch
    revenue: pd.DataFrame  # REVENUE
    quality: dict[str, int] = field(default_factory=dict)


def run(
    partial: Partial, as_of: datetime, settings: Settings, exclusions: Exclusions | None = None
) -> Attribution:
    """First touch and revenue by source from merged partials, as of `as_of`, exclusions applied.

    quality counts persons with a first touch (and the paid ones), conversions of the revenue
    window left out by the exclusions, and the exclusions themselves.
    """
    import pandas as pd

    from plg_bridge.models import exclusions as excl
    from plg_bridge.models import identity

    cfg = settings.models
    t = pd.Timestamp(as_of)
    keys = identity.stitch(partial.links, as_of, settings.exports.placeholder_ids, firsts=partial.firsts)
    found = exclusions if exclusions is not None else excl.find(partial, keys, as_of, settings)
    touches = found.drop_persons(first_touch(partial.touches, keys, as_of, cfg.paid_mediums))
    conversions = partial.conversions
    in_window = (conversions["timestamp"] >= t - timedelta(days=cfg.revenue_window_days)) & (
        conversions["timestamp"] < t
    )
    converting = conversions[in_window].assign(
        person_key=identity.person_of(conversions["distinct_id"], keys)
    )
    kept = found.drop_orgs(found.drop_persons(converting))
    revenue = revenue_by_source(kept, keys, touches, as_of, cfg.revenue_window_days)
    quality = {
        "persons_with_first_touch": len(touches),
        "paid_first_touches": int((touches["channel"] == PAID).sum()),
        "conversions_excluded": len(converting) - len(kept),
        **found.counts(),
    }
    return Attribution(first_touch=touches, revenue=revenue, quality=quality)

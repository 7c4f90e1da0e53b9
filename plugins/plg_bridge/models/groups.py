"""Organization properties as of T: name, plan, seat count, MRR from `$groupidentify`.

posthog-js `group('organization', key, {name, plan, seat_count, mrr})` sends `$groupidentify`
with `$group_set`; PostHog merges each `$group_set` into the group's properties, so a later call
that omits `mrr` keeps the earlier MRR. We do the same per field: the latest non-empty value
known before T (the rollup keeps the latest `$group_set` per organization and day, so a run as
of T never sees a later rename). Organizations that acted before T but never sent
`$groupidentify` are listed with empty properties, so "no name" is visible, not silently absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.ingest.rollup import Partial

COLUMNS = ["org_id", "name", "plan", "seat_count", "mrr", "updated_at"]


def organizations(partial: Partial, as_of: datetime, exclude: Iterable[str] = ()) -> pd.DataFrame:
    """One row per organization seen before `as_of` (COLUMNS), sorted by org_id.

    seat_count is a nullable integer and mrr a float (unparseable values: null); updated_at is the
    time of the latest `$groupidentify` that set any field (null when none did). Organizations
    in `exclude` (test organizations) are left out.
    """
    import pandas as pd

    from plg_bridge.ingest.rollup import GROUP_FIELDS

    t = pd.Timestamp(as_of)
    groups = partial.groups[partial.groups["timestamp"] < t].sort_values("timestamp", kind="stable")
    latest = {}
    for name in GROUP_FIELDS:
        values = groups[groups[name].notna() & (groups[name].fillna("").str.strip() != "")]
        latest[name] = values.groupby("org_id")[name].last()
    updated = groups.groupby("org_id")["timestamp"].max()
    seen = partial.counts.loc[partial.counts["day"] < t, "org_id"]
    if len(partial.memberships):
        seen = pd.concat([seen, partial.memberships.loc[partial.memberships["timestamp"] < t, "org_id"]])
    index = pd.Index(sorted(set(seen) | set(groups["org_id"])), name="org_id", dtype="str")
    index = index[~index.isin(list(exclude))]
    out = pd.DataFrame({name: latest[name].reindex(index) for name in GROUP_FIELDS}, index=index)
    out = out.astype({name: "str" for name in ("name", "plan")})
    seats = pd.to_numeric(out["seat_count"], errors="coerce")
    out["seat_count"] = seats.where(seats == seats.round()).astype("Int64")
    out["mrr"] = pd.to_numeric(out["mrr"], errors="coerce").astype("float64")
    out["updated_at"] = updated.reindex(index)
    return out.reset_index()[COLUMNS]

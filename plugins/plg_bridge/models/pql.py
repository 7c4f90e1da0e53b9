"""PQL score per organization, as of the run's data interval end T (exclusive, UTC).

Windows are half-open and day-aligned: this week = [T-7d, T), last week = [T-14d, T-7d). The
seed's HogQL compared `toDate(timestamp)` with `today()`, so both weeks contained day T-7d and
"today" counted too; we define them without overlap (see include/sql/hogql/pql.sql).

score = velocity_points  if events_this_week > events_last_week * velocity_ratio
      + breadth_points   if active_creators >= breadth_min_creators, else active_creators * points_per_creator
      + integration_points if integrations_connected >= 1
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import PqlSettings
    from plg_bridge.ingest.rollup import Partial

COLUMNS = [
    "org_id",
    "org_name",
    "events_this_week",
    "events_last_week",
    "active_creators",
    "integrations_connected",
    "pql_score",
    "is_pql",
]


def as_of_time(value: str | datetime) -> datetime:
    """Parse an as-of date/time into an aware UTC datetime at a day boundary."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"as-of {value!r} is not a date (expected YYYY-MM-DD)") from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value != value.replace(hour=0, minute=0, second=0, microsecond=0):
        raise ValueError(f"as-of {value.isoformat()} must be midnight UTC: windows are whole days")
    return value


def score(partial: Partial, as_of: datetime, cfg: PqlSettings) -> pd.DataFrame:
    """One row per organization with at least one scoring event in [T-2w, T), best first."""
    import numpy as np
    import pandas as pd

    week = timedelta(days=cfg.week_days)
    t = pd.Timestamp(as_of_time(as_of))
    this_start, last_start = t - week, t - 2 * week

    counts = partial.counts[(partial.counts["day"] >= last_start) & (partial.counts["day"] < t)]
    counts = counts[counts["event"].isin(cfg.events)]

    def total(event: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        rows = counts[(counts["event"] == event) & (counts["day"] >= start) & (counts["day"] < end)]
        return rows.groupby("org_id")["n"].sum()

    creators = partial.creators
    creators = creators[(creators["day"] >= last_start) & (creators["day"] < t)]
    out = pd.DataFrame(
        {
            "events_this_week": total(cfg.velocity_event, this_start, t),
            "events_last_week": total(cfg.velocity_event, last_start, this_start),
            "active_creators": creators.groupby("org_id")["user"].nunique(),
            "integrations_connected": total(cfg.integration_event, last_start, t),
        },
        index=pd.Index(sorted(counts["org_id"].unique()), name="org_id", dtype="str"),
    )
    out = out.fillna(0).astype("int64")

    velocity = np.where(
        out["events_this_week"] > out["events_last_week"] * cfg.velocity_ratio, cfg.velocity_points, 0
    )
    breadth = np.where(
        out["active_creators"] >= cfg.breadth_min_creators,
        cfg.breadth_points,
        out["active_creators"] * cfg.points_per_creator,
    )
    integration = np.where(out["integrations_connected"] >= 1, cfg.integration_points, 0)
    out["pql_score"] = (velocity + breadth + integration).astype("int64")
    out["is_pql"] = out["pql_score"] >= cfg.threshold

    from plg_bridge.ingest.rollup import latest_groups

    groups = latest_groups(partial.groups[partial.groups["timestamp"] < t])  # known at T, not later
    names = groups.set_index("org_id")["name"] if len(groups) else pd.Series(dtype="str")
    named = names.reindex(out.index)
    out["org_name"] = named.astype(object).where(named.notna(), None)
    out = out.reset_index()
    return out.sort_values(["pql_score", "org_id"], ascending=[False, True], kind="stable")[
        COLUMNS
    ].reset_index(drop=True)

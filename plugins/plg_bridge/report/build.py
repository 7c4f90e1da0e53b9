"""The weekly PLG insights report's numbers: every model as of T, gathered once for every format.

What a growth team reads (every number comes from plg_bridge.models, as of the run's T):

- time to value: hours from signup to each milestone, converted vs not converted persons
  (models/activation.py: only judged persons, only milestones reached inside their window);
- the Aha candidate and PostHog's correlation odds ratios of events with conversion;
- revenue by original source (models/attribution.py, first touch that survives merges);
- the PQL funnel: organizations -> scored -> PQL -> converted, as of the latest calibration date D
  (T - calibration.horizon_days), so "converted within the horizon" is known; as of T when the
  data is too short to calibrate (then the last stage is unknown);
- the PQL trend (`pql_trend`): PQLs and new PQLs at weekly as-of points over the lookback;
- the top organizations by PQL score as of T;
- the calibration curve: precision and recall of the PQL flag per threshold, with the current and
  the recommended threshold (models/calibration.py).

Test organizations (`models.test_org_ids`) and excluded persons are left out of every section.
Nothing here formats text: report/tables.py, charts.py and render.py do, from an `Insights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.rollup import Partial
    from plg_bridge.models.activation import Activation
    from plg_bridge.models.attribution import Attribution
    from plg_bridge.models.calibration import Calibration

FUNNEL_STAGES = ("organizations", "scored", "pql", "converted")
TREND_COLUMNS = ("as_of", "organizations_scored", "pqls", "new_pqls")


def report_prefix(as_of: datetime) -> str:
    """Where a window's report lives under the work location: one folder per T, a rerun overwrites."""
    return f"insights/as_of={as_of:%Y-%m-%d}"


@dataclass(frozen=True)
class Insights:
    as_of: str
    activation: Activation
    hours: pd.DataFrame  # person_key, cohort, milestone, hours (activation.hours_to_value)
    attribution: Attribution
    scores: pd.DataFrame  # models/pql.py as of T
    calibration: Calibration
    funnel: pd.DataFrame  # stage, organizations (null: not known yet)
    funnel_as_of: str
    trend: pd.DataFrame  # TREND_COLUMNS, oldest point first
    milestones: tuple[str, ...]
    threshold: int
    horizon_days: int
    revenue_window_days: int
    lookback_days: int
    quality: dict[str, int] = field(default_factory=dict)


def funnel(
    partial: Partial, calibration: Calibration, as_of: datetime, settings: Settings
) -> tuple[str, Any]:
    """(D, stages): organizations known before D and not yet customers -> scored as of D -> PQL ->
    converted in [D, D + horizon). D = the latest calibration date, else T (converted unknown)."""
    import pandas as pd

    from plg_bridge.models import pql

    obs = calibration.observations
    if len(calibration.dates):
        label = str(calibration.dates["as_of"].iloc[-1])
        day = pd.Timestamp(label, tz="UTC")
        at = obs[obs["as_of"] == label]
        scored, flagged = at, at[at["pql_score"] >= settings.pql.threshold]
        converted: int | None = int(flagged["converted"].sum())
    else:
        day = pd.Timestamp(as_of)
        label = f"{as_of:%Y-%m-%d}"
        scored = pql.score(partial, as_of, settings.pql)
        scored = scored[~scored["org_id"].isin(settings.models.test_org_ids)]
        flagged, converted = scored[scored["is_pql"]], None
    conversions = partial.conversions
    customers = set(conversions.loc[conversions["timestamp"] < day, "org_id"].dropna())
    known = set(partial.counts.loc[partial.counts["day"] < day, "org_id"])
    known |= set(partial.memberships.loc[partial.memberships["timestamp"] < day, "org_id"])
    known |= set(partial.groups.loc[partial.groups["timestamp"] < day, "org_id"])
    known -= customers | set(settings.models.test_org_ids)
    scored = scored[~scored["org_id"].isin(customers)]
    flagged = flagged[~flagged["org_id"].isin(customers)]
    counts = [len(known | set(scored["org_id"])), len(scored), len(flagged), converted]
    frame = pd.DataFrame({"stage": list(FUNNEL_STAGES), "organizations": pd.array(counts, dtype="Int64")})
    return label, frame


def trend_points(partial: Partial, as_of: datetime, settings: Settings) -> list[datetime]:
    """Weekly as-of points T, T - 1 week, ... back to T - calibration.lookback_days, oldest first;
    none earlier than two PQL weeks after the first day with a PQL event (an earlier point would
    score weeks the export does not cover, like the calibration dates)."""
    import pandas as pd

    from plg_bridge.models.pql import as_of_time

    t = as_of_time(as_of)
    week = timedelta(days=settings.pql.week_days)
    counts = partial.counts
    days = counts["day"][(counts["day"] < pd.Timestamp(t)) & counts["event"].isin(settings.pql.events)]
    if days.empty:
        return []
    earliest = max(
        days.min().to_pydatetime() + 2 * week, t - timedelta(days=settings.calibration.lookback_days)
    )
    points = []
    point = t
    while point >= earliest:
        points.append(point)
        point -= week
    return points[::-1]


def pql_trend(partial: Partial, as_of: datetime, settings: Settings) -> pd.DataFrame:
    """PQLs per week: at each weekly as-of point t (`trend_points`), the organizations scored by
    models/pql.py as of t, those at or above the threshold, and the new ones: PQL as of t but not as
    of t - 1 week (not scored then counts as not PQL). Test organizations are left out."""
    import pandas as pd

    from plg_bridge.models import pql

    week = timedelta(days=settings.pql.week_days)
    test_orgs = set(settings.models.test_org_ids)

    def flagged(t: datetime) -> tuple[int, set[str]]:
        scores = pql.score(partial, t, settings.pql)
        scores = scores[~scores["org_id"].isin(test_orgs)]
        return len(scores), set(scores.loc[scores["is_pql"], "org_id"])

    rows = []
    for t in trend_points(partial, as_of, settings):
        scored, now = flagged(t)
        _, before = flagged(t - week)
        rows.append((f"{t:%Y-%m-%d}", scored, len(now), len(now - before)))
    frame = pd.DataFrame.from_records(rows, columns=list(TREND_COLUMNS))
    return frame.astype(
        {"as_of": "str", "organizations_scored": "int64", "pqls": "int64", "new_pqls": "int64"}
    )


def build(partial: Partial, as_of: datetime, settings: Settings) -> Insights:
    """Every model of the report from merged partials (with their person tables), as of T."""
    from plg_bridge.models import activation, attribution, calibration, identity, pql
    from plg_bridge.models import exclusions as excl

    as_of = pql.as_of_time(as_of)
    cfg = settings.models
    keys = identity.stitch(partial.links, as_of, settings.exports.placeholder_ids, firsts=partial.firsts)
    found = excl.find(partial, keys, as_of, settings)
    act = activation.run(partial, as_of, settings, found)
    firsts = activation.person_firsts(partial.firsts, keys, as_of)
    hours = activation.hours_to_value(act.persons, firsts, cfg.milestones)
    attr = attribution.run(partial, as_of, settings, found)
    scores = pql.score(partial, as_of, settings.pql)
    scores = scores[~scores["org_id"].isin(cfg.test_org_ids)].reset_index(drop=True)
    cal = calibration.run(partial, as_of, settings)
    funnel_as_of, stages = funnel(partial, cal, as_of, settings)
    quality = {
        "rows_read": int(partial.quality.get("rows_read", 0)),
        "organizations_scored": len(scores),
        "pqls": int(scores["is_pql"].sum()),
        **act.quality,
        **{k: v for k, v in attr.quality.items() if k not in act.quality},
        **cal.quality,
    }
    return Insights(
        as_of=f"{as_of:%Y-%m-%d}",
        activation=act,
        hours=hours,
        attribution=attr,
        scores=scores,
        calibration=cal,
        funnel=stages,
        funnel_as_of=funnel_as_of,
        trend=pql_trend(partial, as_of, settings),
        milestones=tuple(cfg.milestones),
        threshold=settings.pql.threshold,
        horizon_days=settings.calibration.horizon_days,
        revenue_window_days=cfg.revenue_window_days,
        lookback_days=settings.calibration.lookback_days,
        quality=quality,
    )


def informative(correlation: pd.DataFrame) -> pd.DataFrame:
    """Odds ratios without the events every judged person did (their ratio only reflects the prior)."""
    universal = (correlation["success_count"] == correlation["success_total"]) & (
        correlation["failure_count"] == correlation["failure_total"]
    )
    return correlation[~universal]


def headline(ins: Insights) -> dict[str, Any]:
    """The few numbers of the Slack message and the summary's first section (JSON-ready)."""
    everyone = ins.activation.cohorts
    everyone = everyone[everyone["breakdown"] == "all"].iloc[0]
    aha = ins.activation.aha
    aha = aha[aha["breakdown"] == "all"]
    revenue = ins.attribution.revenue
    top = revenue.sort_values("total_revenue", ascending=False, kind="stable").head(1)
    cal = ins.calibration
    latest = ins.trend.iloc[-1] if len(ins.trend) else None
    return {
        "as_of": ins.as_of,
        "signed_up": int(everyone["signed_up"]),
        "converted": int(everyone["converted"]),
        "not_converted": int(everyone["not_converted"]),
        "pending": int(everyone["pending"]),
        "pre_existing": int(everyone.get("pre_existing", 0)),
        "conversion_rate": number(everyone["conversion_rate"]),
        "aha_candidate": str(aha["milestone"].iloc[0]) if len(aha) else None,
        "revenue": float(revenue["total_revenue"].sum()),
        "paid_conversions": int(revenue["conversions"].sum()),
        "top_source": source_label(top["source"].iloc[0]) if len(top) else None,
        "organizations_scored": len(ins.scores),
        "pqls": int(ins.scores["is_pql"].sum()),
        "new_pqls": int(latest["new_pqls"]) if latest is not None else None,
        "threshold": ins.threshold,
        "recommended_threshold": cal.recommended,
        "calibration": cal.reason,
    }


NO_SOURCE = "(no UTM source)"


def number(value: Any) -> float | None:
    """A float for JSON, None for missing or NaN."""
    import math

    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def source_label(value: Any) -> str:
    """An original source as shown: NO_SOURCE when the person had none."""
    return NO_SOURCE if is_missing(value) else str(value)


def is_missing(value: Any) -> bool:
    import math

    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))

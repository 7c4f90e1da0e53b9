"""PQL threshold calibration: how well past PQL flags predicted conversion, per threshold.

The seed tells teams to "calibrate the threshold after 30 days"; this measures it. As of a run's T:

- as-of dates D: T - horizon, T - horizon - step, ... (`calibration.horizon_days`, `date_step_days`),
  back to T - horizon - `lookback_days`, and no earlier than two PQL weeks after the first day with a
  PQL event (before that, "last week" would be empty and every organization would look like it grew).
  Every D's horizon is over before T, so each outcome is known.
- observations: one per (D, organization) scored as of D (models/pql.py on the merged partial, i.e.
  active in [D - 2 weeks, D)), leaving out `models.test_org_ids` and organizations that already
  converted before D (customers are not leads). Scores are recomputed from what the partials know
  today, so an event that arrived late counts at D although a run at D had not seen it yet.
- converted: the organization has a conversion event (`models.conversion_event`; the event's own
  organization, `Partial.conversions.org_id`) in [D, D + horizon). Conversions without an
  organization cannot be attributed and are ignored.
- per threshold t in 0, threshold_step, ... up to the maximum score (plus `pql.threshold`), an
  observation is flagged when pql_score >= t. Observations are pooled over all dates:
  flagged (organization-days), flagged_orgs (distinct organizations flagged on any date),
  true_positives, precision = tp / flagged, recall = tp / positives, base_rate = positives /
  observations, lift = precision / base_rate, f1 = 2 tp / (flagged + positives). Undefined ratios
  (a zero denominator) are null.

Recommended threshold (the rule): among thresholds that flag at least `min_flagged`
organization-days with lift >= `min_lift`, the one with the highest F1; ties go to the higher
threshold (fewer, better leads for the same F1). Threshold 0 flags everyone (lift exactly 1), so it
never qualifies with the default min_lift of 1.5. No qualifying threshold: no recommendation, and the
reason says why (no dates, no conversions, or the score does not separate converters enough).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.rollup import Partial

OBSERVATIONS = {"as_of": "str", "org_id": "str", "pql_score": "int64", "converted": "bool"}
DATES = {
    "as_of": "str",
    "scored": "int64",
    "already_converted": "int64",
    "observations": "int64",
    "positives": "int64",
}
CURVE = {
    "threshold": "int64",
    "observations": "int64",
    "positives": "int64",
    "flagged": "int64",
    "flagged_orgs": "int64",
    "true_positives": "int64",
    "precision": "float64",
    "recall": "float64",
    "base_rate": "float64",
    "lift": "float64",
    "f1": "float64",
    "qualifies": "bool",
    "recommended": "bool",
    "current": "bool",
}


def _frame(columns: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def max_score(settings: Settings) -> int:
    p = settings.pql
    return p.velocity_points + p.breadth_points + p.integration_points


def thresholds(settings: Settings) -> list[int]:
    """0, step, 2 * step, ... up to the maximum score, plus the configured threshold, ascending."""
    top = max_score(settings)
    return sorted({*range(0, top + 1, settings.calibration.threshold_step), settings.pql.threshold})


def as_of_dates(partial: Partial, as_of: datetime, settings: Settings) -> list[datetime]:
    """The past as-of dates D to calibrate on, oldest first (see the module docstring)."""
    import pandas as pd

    from plg_bridge.models.pql import as_of_time

    t = as_of_time(as_of)
    cfg = settings.calibration
    days = partial.counts["day"][
        (partial.counts["day"] < pd.Timestamp(t)) & partial.counts["event"].isin(settings.pql.events)
    ]
    if days.empty:
        return []
    first = days.min().to_pydatetime() + timedelta(days=2 * settings.pql.week_days)
    last = t - timedelta(days=cfg.horizon_days)
    earliest = max(first, last - timedelta(days=cfg.lookback_days))
    out = []
    day = last
    while day >= earliest:
        out.append(day)
        day -= timedelta(days=cfg.date_step_days)
    return out[::-1]


def _conversions(partial: Partial) -> pd.DataFrame:
    rows = partial.conversions
    return rows[rows["org_id"].notna() & (rows["org_id"] != "")][["org_id", "timestamp"]]


def observations(
    partial: Partial, dates: list[datetime], settings: Settings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(observations, dates): the scored organizations of every D with their outcome (OBSERVATIONS),
    and per D how many were scored, left out as already converted, kept and converted (DATES)."""
    import pandas as pd

    from plg_bridge.models import pql

    horizon = pd.Timedelta(days=settings.calibration.horizon_days)
    test_orgs = set(settings.models.test_org_ids)
    conversions = _conversions(partial)
    parts, per_date = [], []
    for d in dates:
        t = pd.Timestamp(d)
        scored = pql.score(partial, d, settings.pql, placeholder_ids=settings.exports.placeholder_ids)[
            ["org_id", "pql_score"]
        ]
        scored = scored[~scored["org_id"].isin(test_orgs)]
        before = set(conversions.loc[conversions["timestamp"] < t, "org_id"])
        within = set(
            conversions.loc[
                (conversions["timestamp"] >= t) & (conversions["timestamp"] < t + horizon), "org_id"
            ]
        )
        kept = scored[~scored["org_id"].isin(before)]
        label = f"{d:%Y-%m-%d}"
        converted = kept["org_id"].isin(within)
        parts.append(kept.assign(as_of=label, converted=converted.to_numpy(bool)))
        per_date.append(
            {
                "as_of": label,
                "scored": len(scored),
                "already_converted": len(scored) - len(kept),
                "observations": len(kept),
                "positives": int(converted.sum()),
            }
        )
    obs = pd.concat(parts, ignore_index=True) if parts else _frame(OBSERVATIONS)
    obs = obs[list(OBSERVATIONS)].astype(OBSERVATIONS)
    obs = obs.sort_values(["as_of", "org_id"], kind="stable").reset_index(drop=True)
    dates_frame = pd.DataFrame.from_records(per_date, columns=list(DATES)) if per_date else _frame(DATES)
    return obs, dates_frame.astype(DATES)


def curve(obs: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Precision, recall, lift and F1 of the flag `pql_score >= t` per threshold t (columns CURVE),
    with the qualifying thresholds and the recommended one marked."""
    import numpy as np
    import pandas as pd

    cfg = settings.calibration
    scores = obs["pql_score"].to_numpy(np.int64)
    won = obs["converted"].to_numpy(bool)
    orgs = obs["org_id"].to_numpy(object)
    n, positives = len(obs), int(won.sum())
    rows = []
    for t in thresholds(settings):
        flag = scores >= t
        rows.append(
            {
                "threshold": t,
                "observations": n,
                "positives": positives,
                "flagged": int(flag.sum()),
                "flagged_orgs": len(set(orgs[flag])),
                "true_positives": int((flag & won).sum()),
            }
        )
    out = pd.DataFrame.from_records(rows, columns=list(CURVE)[:6])

    def ratio(a: pd.Series, b: pd.Series | int) -> pd.Series:
        b = pd.Series(b, index=out.index, dtype="float64")
        return (a.astype("float64") / b.where(b > 0)).astype("float64")

    out["precision"] = ratio(out["true_positives"], out["flagged"])
    out["recall"] = ratio(out["true_positives"], positives)
    out["base_rate"] = ratio(pd.Series(positives, index=out.index), n)
    out["lift"] = (out["precision"] / out["base_rate"].where(out["base_rate"] > 0)).astype("float64")
    out["f1"] = ratio(2 * out["true_positives"], out["flagged"] + positives)
    out["qualifies"] = (out["flagged"] >= cfg.min_flagged) & (out["lift"] >= cfg.min_lift).fillna(False)
    best = recommend(out)
    out["recommended"] = out["threshold"] == best if best is not None else False
    out["current"] = out["threshold"] == settings.pql.threshold
    return out[list(CURVE)].astype(CURVE)


def recommend(table: pd.DataFrame) -> int | None:
    """The qualifying threshold with the highest F1 (ties: the higher threshold), or None."""
    ok = table[table["qualifies"] & table["f1"].notna()]
    if ok.empty:
        return None
    best = ok.sort_values(["f1", "threshold"], ascending=[False, False], kind="stable")
    return int(best["threshold"].iloc[0])


def reason(table: pd.DataFrame, dates: pd.DataFrame, settings: Settings) -> str:
    """Why the recommendation is what it is, in one sentence for people."""
    cfg = settings.calibration
    best = table[table["recommended"]]
    if len(best):
        row = best.iloc[0]
        return (
            f"threshold {int(row['threshold'])}: best F1 ({row['f1']:.2f}) among thresholds flagging at least "
            f"{cfg.min_flagged} organization-days with lift >= {cfg.min_lift:g} "
            f"(precision {row['precision']:.0%}, recall {row['recall']:.0%}, lift {row['lift']:.2f})"
        )
    if dates.empty:
        return (
            f"no as-of dates yet: calibration needs two PQL weeks of data plus the {cfg.horizon_days}-day "
            "conversion horizon before T"
        )
    if not len(table) or int(table["observations"].iloc[0]) == 0:
        return "no scored organizations on the calibration dates"
    if int(table["positives"].iloc[0]) == 0:
        return f"no scored organization converted within {cfg.horizon_days} days of any calibration date"
    return (
        f"no threshold flags at least {cfg.min_flagged} organization-days with lift >= {cfg.min_lift:g}: "
        "on this data the score does not separate converting organizations enough"
    )


@dataclass(frozen=True)
class Calibration:
    observations: pd.DataFrame  # OBSERVATIONS
    dates: pd.DataFrame  # DATES
    curve: pd.DataFrame  # CURVE
    recommended: int | None
    reason: str
    quality: dict[str, int] = field(default_factory=dict)


def run(partial: Partial, as_of: datetime, settings: Settings) -> Calibration:
    """The calibration as of T from merged partials (with their person tables: conversions)."""
    if not partial.people:
        raise ValueError("calibration needs the person tables (conversions): roll up with people=True")
    dates = as_of_dates(partial, as_of, settings)
    obs, per_date = observations(partial, dates, settings)
    table = curve(obs, settings)
    best = recommend(table)
    quality = {
        "calibration_dates": len(per_date),
        "calibration_observations": len(obs),
        "calibration_positives": int(obs["converted"].sum()),
        "calibration_already_converted": int(per_date["already_converted"].sum()),
    }
    return Calibration(obs, per_date, table, best, reason(table, per_date, settings), quality)

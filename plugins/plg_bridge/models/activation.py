"""Aha moment and time-to-value, as of T: which milestones converted persons reach, how fast.

Definitions (all over stitched persons, exclusions applied, only facts known before T):

- signup_at: the person's first `models.signup_event` (default `$identify`). Persons who signed up
  in [T - cohort_days, T) are in scope.
- pre-existing customers: a person whose first `models.conversion_event` came before their first
  observed signup (a customer older than the export history, or identified late) is "pre_existing":
  kept out of the activation cohorts, milestones and odds ratios and counted apart
  (`cohorts.pre_existing`). Judging them would end their window before it began.
- cohort: a person is judged only once their horizon is over (signup_at + horizon <= T), so a
  recent signup is never counted as "not converted" just because it had no time yet:
  "converted" when their first `models.conversion_event` came in [signup_at, signup_at + horizon),
  else "not_converted"; persons still inside their horizon are "pending" (counted, not compared).
- observation window: [signup, conversion) for converted persons, [signup, signup + horizon) for
  the others, like PostHog's correlation which looks at events before the conversion step; so a
  milestone reached only after paying never looks like a cause of paying.
- a milestone is reached when its first occurrence is before the window's end; hours to value =
  (first occurrence - signup_at) in hours, 0 when it happened before signup.
- reach = reached / persons of the cohort; median and p75 hours over the persons who reached it
  (linear interpolation between order statistics, like numpy and DuckDB `quantile_cont`).
- Aha candidate of a segment = the milestone with the largest reach gap, reach(converted) minus
  reach(not_converted), in percentage points of each cohort; only a positive gap qualifies, both
  cohorts must be non-empty, ties go to the milestone listed first in `models.milestones`. (The
  seed compares median times, which rewards a milestone two converted persons happened to reach
  fast; reach is what separates converters from the rest.)
- Breakdowns: "all", "channel" (paid / organic from attribution.first_touch; no touch = organic)
  and "signup_week" (Monday of signup_at's ISO week, UTC).

Odds ratios follow PostHog's funnel correlation (funnel_correlation_query_runner.py) exactly:
for each event, s / f = converted / not-converted persons who did it in their window, S / F = all
converted / not-converted persons, odds_ratio = ((s + 1) * (F - f + 1)) / ((S - s + 1) * (f + 1)),
an event is insignificant (PostHog drops it; we keep it flagged) when s + f < min(25, 0.02 * (S + F)),
the result is skewed when S / F or F / S exceeds 10, and nothing is returned when S or F is 0. The
signup and conversion events (the funnel steps) are not candidates.

Correlation window (`models.correlation_window`):
- "posthog" (default), PostHog's funnel correlation: an event counts for a person when they sent
  it strictly after their signup (the first step) and strictly before their conversion
  (converted) or signup + horizon (not converted); an anonymous pre-signup pageview does not count,
  a pageview repeated after signup does, an event at the signup or conversion instant does not.
  Read from the `spans` person table (first and last time per distinct id, event and UTC day,
  plus the day's other distinct times when there are any), which decides every case exactly,
  including a day holding both the signup and the conversion (see docs/models.md).
- "first_seen", the earlier variant: an event counts when its first occurrence (ever) is before
  the window's end, the same rule as the milestones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from plg_bridge.config import ModelSettings, Settings
    from plg_bridge.ingest.rollup import Partial
    from plg_bridge.models.exclusions import Exclusions

CONVERTED, NOT_CONVERTED, PENDING = "converted", "not_converted", "pending"
PRE_EXISTING = "pre_existing"
COHORTS = (CONVERTED, NOT_CONVERTED)
BREAKDOWNS = ("all", "channel", "signup_week")
PERSONS = ["person_key", "signup_at", "signup_week", "channel", "cohort", "converted_at", "window_end"]
COHORT_COLUMNS = [
    "breakdown",
    "segment",
    "signed_up",
    "converted",
    "not_converted",
    "pending",
    "conversion_rate",
    "pre_existing",
]
MILESTONES = [
    "breakdown",
    "segment",
    "cohort",
    "milestone",
    "persons",
    "reached",
    "reach",
    "median_hours",
    "p75_hours",
]
AHA = [
    "breakdown",
    "segment",
    "milestone",
    "reach_converted",
    "reach_not_converted",
    "gap",
    "median_hours_converted",
    "median_hours_not_converted",
]
CORRELATION = [
    "event",
    "success_count",
    "failure_count",
    "success_total",
    "failure_total",
    "odds_ratio",
    "correlation_type",
    "significant",
    "skewed",
]
MIN_PERSON_COUNT = 25  # PostHog's FunnelCorrelationQueryRunner constants
MIN_PERSON_PERCENTAGE = 0.02
PRIOR_COUNT = 1
SKEW_RATIO = 10


def person_firsts(firsts: pd.DataFrame, keys: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """First time each stitched person sent each event before `as_of`: person_key, event, timestamp."""
    import pandas as pd

    from plg_bridge.models.identity import person_of

    rows = firsts[firsts["timestamp"] < pd.Timestamp(as_of)]
    rows = rows.assign(person_key=person_of(rows["distinct_id"], keys))
    out = rows.groupby(["person_key", "event"], as_index=False)["timestamp"].min()
    return out.astype({"person_key": "str", "event": "str"})


def persons(
    firsts: pd.DataFrame,
    touches: pd.DataFrame,
    as_of: datetime,
    cfg: ModelSettings,
    exclusions: Exclusions | None = None,
) -> pd.DataFrame:
    """One row per person who signed up in [T - cohort_days, T) (columns PERSONS), by person_key.

    `firsts` is `person_firsts` output, `touches` attribution.first_touch output.
    """
    import numpy as np
    import pandas as pd

    t = pd.Timestamp(as_of)
    horizon = pd.Timedelta(days=cfg.conversion_horizon_days)
    signups = firsts[firsts["event"] == cfg.signup_event][["person_key", "timestamp"]]
    signups = signups.rename(columns={"timestamp": "signup_at"})
    signups = signups[signups["signup_at"] >= t - timedelta(days=cfg.cohort_days)]
    if exclusions is not None:
        signups = exclusions.drop_persons(signups)
    converted = firsts[firsts["event"] == cfg.conversion_event][["person_key", "timestamp"]]
    out = signups.merge(converted.rename(columns={"timestamp": "converted_at"}), on="person_key", how="left")
    out = out.merge(touches[["person_key", "channel"]], on="person_key", how="left")
    out["channel"] = out["channel"].fillna("organic").astype("str")
    day = out["signup_at"].dt.floor("D")
    week = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    out["signup_week"] = week.dt.strftime("%Y-%m-%d").astype("str")
    deadline = out["signup_at"] + horizon
    matured = deadline <= t
    won = out["converted_at"].notna() & (out["converted_at"] < deadline)
    old = out["converted_at"].notna() & (out["converted_at"] < out["signup_at"])
    cohort = np.where(~matured, PENDING, np.where(won, CONVERTED, NOT_CONVERTED))
    out["cohort"] = pd.Series(np.where(old, PRE_EXISTING, cohort), index=out.index, dtype="str")
    out["window_end"] = out["converted_at"].where(won, deadline).where(matured & ~old)
    return out.sort_values("person_key")[PERSONS].reset_index(drop=True)


def _segments(people: pd.DataFrame, breakdown: str) -> tuple[pd.Series, list[str]]:
    if breakdown == "all":
        return _const(people, "all"), ["all"]
    if breakdown == "channel":
        return people["channel"], ["organic", "paid"]
    return people["signup_week"], sorted(people["signup_week"].unique())


def _const(people: pd.DataFrame, value: str) -> pd.Series:
    import pandas as pd

    return pd.Series(value, index=people.index, dtype="str")


def _by_segment(people: pd.DataFrame) -> pd.DataFrame:
    """people with `breakdown` and `segment`, one copy per breakdown."""
    import pandas as pd

    return pd.concat(
        [people.assign(breakdown=b, segment=_segments(people, b)[0]) for b in BREAKDOWNS], ignore_index=True
    )


def _grid(people: pd.DataFrame, extra: dict[str, Sequence[str]]) -> pd.DataFrame:
    """Every breakdown x segment (x the `extra` dimensions), so empty cohorts still get a row."""
    import pandas as pd

    frames = [pd.DataFrame({"breakdown": b, "segment": _segments(people, b)[1]}) for b in BREAKDOWNS]
    grid = pd.concat(frames, ignore_index=True)
    for name, values in extra.items():
        grid = grid.merge(pd.DataFrame({name: list(values)}), how="cross")
    return grid.astype("str")


def cohorts(people: pd.DataFrame) -> pd.DataFrame:
    """Signups and outcomes per breakdown and segment (columns COHORT_COLUMNS).

    `signed_up` counts the cohort (converted + not converted + pending); pre-existing customers
    are only in `pre_existing`.
    """
    import pandas as pd

    long = _by_segment(people)
    counts = pd.crosstab([long["breakdown"], long["segment"]], long["cohort"])
    outcomes = [CONVERTED, NOT_CONVERTED, PENDING, PRE_EXISTING]
    counts = counts.reindex(columns=outcomes, fill_value=0).reset_index()
    out = _grid(people, {}).merge(counts, on=["breakdown", "segment"], how="left")
    out[outcomes] = out[outcomes].fillna(0).astype("int64")
    out["signed_up"] = out[[CONVERTED, NOT_CONVERTED, PENDING]].sum(axis=1).astype("int64")
    judged = out[CONVERTED] + out[NOT_CONVERTED]
    out["conversion_rate"] = (out[CONVERTED] / judged.where(judged > 0)).astype("float64")
    return out[COHORT_COLUMNS]


def _done(people: pd.DataFrame, firsts: pd.DataFrame, events: Sequence[str] | None) -> pd.DataFrame:
    """(person, event) pairs done inside the person's window, with hours from signup (judged persons)."""
    judged = people[people["cohort"].isin(COHORTS)]
    rows = firsts if events is None else firsts[firsts["event"].isin(list(events))]
    rows = rows.merge(judged[["person_key", "signup_at", "window_end"]], on="person_key")
    rows = rows[rows["timestamp"] < rows["window_end"]]
    hours = (rows["timestamp"] - rows["signup_at"]).dt.total_seconds() / 3600.0
    return rows.assign(hours=hours.clip(lower=0.0))[["person_key", "event", "hours"]]


def hours_to_value(people: pd.DataFrame, firsts: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """(person_key, cohort, milestone, hours) of every judged person who reached a milestone in their
    window: the values behind the medians and p75 of `milestones` (the report's distributions)."""
    done = _done(people, firsts, names).rename(columns={"event": "milestone"})
    done = done.merge(people[["person_key", "cohort"]], on="person_key")
    done = done.sort_values(["milestone", "cohort", "hours", "person_key"], kind="stable")
    return done[["person_key", "cohort", "milestone", "hours"]].reset_index(drop=True)


def milestones(people: pd.DataFrame, firsts: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Reach and hours-to-value per breakdown, segment, cohort and milestone (columns MILESTONES).

    Every milestone gets a row for both cohorts of every segment, with persons = 0 and null
    statistics when a cohort is empty.
    """
    import pandas as pd

    judged = _by_segment(people[people["cohort"].isin(COHORTS)])
    done = _done(people, firsts, names).rename(columns={"event": "milestone"})
    sizes = judged.groupby(["breakdown", "segment", "cohort"]).size().rename("persons").reset_index()
    reached = judged[["person_key", "breakdown", "segment", "cohort"]].merge(done, on="person_key")
    grouped = reached.groupby(["breakdown", "segment", "cohort", "milestone"])["hours"]
    stats = pd.DataFrame(
        {
            "reached": grouped.size(),
            "median_hours": grouped.quantile(0.5),
            "p75_hours": grouped.quantile(0.75),
        }
    ).reset_index()
    keys = ["breakdown", "segment", "cohort"]
    out = _grid(people, {"cohort": COHORTS, "milestone": names})
    out = out.merge(sizes.astype({k: "str" for k in keys}), on=keys, how="left")
    out = out.merge(
        stats.astype({k: "str" for k in [*keys, "milestone"]}), on=[*keys, "milestone"], how="left"
    )
    out["persons"] = out["persons"].fillna(0).astype("int64")
    out["reached"] = out["reached"].fillna(0).astype("int64")
    out["reach"] = (out["reached"] / out["persons"].where(out["persons"] > 0)).astype("float64")
    out[["median_hours", "p75_hours"]] = out[["median_hours", "p75_hours"]].astype("float64")
    return out[MILESTONES]


def aha_candidates(stats: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Per breakdown and segment, the milestone with the largest positive reach gap (columns AHA).

    `stats` is `milestones` output; segments with an empty cohort or no positive gap get no row.
    """
    import pandas as pd

    keys = ["breakdown", "segment", "milestone"]
    conv = stats[stats["cohort"] == CONVERTED].set_index(keys)
    lost = stats[stats["cohort"] == NOT_CONVERTED].set_index(keys)
    both = pd.DataFrame(
        {
            "reach_converted": conv["reach"],
            "reach_not_converted": lost["reach"],
            "median_hours_converted": conv["median_hours"],
            "median_hours_not_converted": lost["median_hours"],
        }
    ).reset_index()
    both["gap"] = both["reach_converted"] - both["reach_not_converted"]
    both = both[both["gap"] > 0]
    order = {name: i for i, name in enumerate(names)}
    both = both.assign(order=both["milestone"].map(order))
    best = both.sort_values(["breakdown", "segment", "gap", "order"], ascending=[True, True, False, True])
    best = best.drop_duplicates(["breakdown", "segment"])
    return best[AHA].astype({"breakdown": "str", "segment": "str", "milestone": "str"}).reset_index(drop=True)


def odds_ratio(s, f, success_total, failure_total):
    """PostHog's odds ratio with a prior of 1: ((s + 1) * (F - f + 1)) / ((S - s + 1) * (f + 1))."""
    p = PRIOR_COUNT
    return ((s + p) * (failure_total - f + p)) / ((success_total - s + p) * (f + p))


def significant(s, f, success_total, failure_total):
    """PostHog's minimum-count rule: kept when s + f >= min(25, 0.02 * (S + F))."""
    import numpy as np

    return (s + f) >= np.minimum(MIN_PERSON_COUNT, MIN_PERSON_PERCENTAGE * (success_total + failure_total))


def inside_windows(people: pd.DataFrame, spans: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """(person_key, event) pairs a judged person sent strictly inside (signup_at, window_end).

    `spans` is the `spans` person table (first / last / other times per distinct id, event and
    day). A span holds an occurrence inside the window exactly when its first or last time lies
    inside, or, for a span that starts at or before the signup and ends at or after the window's
    end (one day holding both), one of its other times does; only those straddling spans are
    unpacked. A span without `times` (1 or 2 distinct times, or a partial written before the
    column existed) has no other times.
    """
    import numpy as np

    from plg_bridge.ingest.people import span_times
    from plg_bridge.models.identity import person_of

    judged = people[people["cohort"].isin(COHORTS)][["person_key", "signup_at", "window_end"]]
    lo = judged["signup_at"].dt.floor("D").min()
    rows = (
        spans[(spans["day"] >= lo) & (spans["day"] < judged["window_end"].max())]
        if len(judged)
        else spans[:0]
    )
    rows = rows.assign(person_key=person_of(rows["distinct_id"], keys)).merge(judged, on="person_key")
    s, e = rows["signup_at"], rows["window_end"]
    first, last = rows["first"], rows["last"]
    inside = (((first > s) & (first < e)) | ((last > s) & (last < e))).to_numpy(bool, copy=True)
    straddle = (first <= s) & (last >= e) & (rows["times"].notna() if "times" in rows.columns else False)
    at = np.flatnonzero(straddle.to_numpy(bool))
    if len(at):
        which, times = span_times(rows["times"].iloc[at])
        lo = _micros(s.iloc[at])[which]
        hi = _micros(e.iloc[at])[which]
        hit = which[(times > lo) & (times < hi)]
        inside[at[np.unique(hit)]] = True
    return rows.loc[inside, ["person_key", "event"]].drop_duplicates(ignore_index=True)


def _micros(stamps: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 microseconds since the epoch (the unit of `spans.times`)."""
    import numpy as np

    return stamps.to_numpy(dtype="datetime64[us]").view(np.int64)


def correlation(
    people: pd.DataFrame,
    firsts: pd.DataFrame,
    exclude: Sequence[str],
    spans: pd.DataFrame | None = None,
    keys: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Odds ratio of every event done by judged persons in their window (columns CORRELATION).

    With `spans` and `keys` (stitch output): PostHog's window, strictly after signup and before
    the window's end (`inside_windows`); without: the "first_seen" variant (first occurrence
    before the window's end). Events in `exclude` (the funnel steps and configured exclusions)
    are skipped. Sorted: significant first, then by odds ratio (highest first), then event name.
    Empty when either cohort is empty, as in PostHog.
    """
    import numpy as np
    import pandas as pd

    judged = people[people["cohort"].isin(COHORTS)]
    total_s = int((judged["cohort"] == CONVERTED).sum())
    total_f = int((judged["cohort"] == NOT_CONVERTED).sum())
    if not total_s or not total_f:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _CORRELATION_TYPES.items()})
    if spans is not None and keys is not None:
        done = inside_windows(people, spans[~spans["event"].isin(list(exclude))], keys)
    else:
        done = _done(people, firsts[~firsts["event"].isin(list(exclude))], None)
    done = done.merge(judged[["person_key", "cohort"]], on="person_key")
    counts = pd.crosstab(done["event"], done["cohort"]).reindex(columns=list(COHORTS), fill_value=0)
    s = counts[CONVERTED].to_numpy(np.int64)
    f = counts[NOT_CONVERTED].to_numpy(np.int64)
    ratio = odds_ratio(s, f, total_s, total_f)
    out = pd.DataFrame(
        {
            "event": counts.index.astype("str"),
            "success_count": s,
            "failure_count": f,
            "success_total": total_s,
            "failure_total": total_f,
            "odds_ratio": ratio.astype("float64"),
            "correlation_type": np.where(ratio > 1, "success", "failure"),
            "significant": significant(s, f, total_s, total_f),
            "skewed": total_s / total_f > SKEW_RATIO or total_f / total_s > SKEW_RATIO,
        }
    )
    out = out.sort_values(
        ["significant", "odds_ratio", "event"], ascending=[False, False, True], kind="stable"
    )
    return out.astype(_CORRELATION_TYPES)[CORRELATION].reset_index(drop=True)


_CORRELATION_TYPES = {
    "event": "str",
    "success_count": "int64",
    "failure_count": "int64",
    "success_total": "int64",
    "failure_total": "int64",
    "odds_ratio": "float64",
    "correlation_type": "str",
    "significant": "bool",
    "skewed": "bool",
}


@dataclass(frozen=True)
class Activation:
    persons: pd.DataFrame  # PERSONS
    cohorts: pd.DataFrame  # COHORT_COLUMNS
    milestones: pd.DataFrame  # MILESTONES
    aha: pd.DataFrame  # AHA
    correlation: pd.DataFrame  # CORRELATION
    quality: dict[str, int] = field(default_factory=dict)

    @property
    def pre_existing(self) -> pd.DataFrame:
        """Pre-existing customers (converted before their first signup): PERSONS rows, apart."""
        return self.persons[self.persons["cohort"] == PRE_EXISTING].reset_index(drop=True)


def run(
    partial: Partial, as_of: datetime, settings: Settings, exclusions: Exclusions | None = None
) -> Activation:
    """The whole activation model from merged partials, as of `as_of`, exclusions applied."""
    from plg_bridge.models import attribution, identity
    from plg_bridge.models import exclusions as excl

    cfg = settings.models
    keys = identity.stitch(partial.links, as_of, settings.exports.placeholder_ids, firsts=partial.firsts)
    found = exclusions if exclusions is not None else excl.find(partial, keys, as_of, settings)
    touches = attribution.first_touch(partial.touches, keys, as_of, cfg.paid_mediums)
    firsts = person_firsts(partial.firsts, keys, as_of)
    people = persons(firsts, touches, as_of, cfg, found)
    stats = milestones(people, firsts, cfg.milestones)
    steps = [cfg.signup_event, cfg.conversion_event, *cfg.correlation_exclude_events]
    quality = {f"persons_{c}": int((people["cohort"] == c).sum()) for c in (*COHORTS, PENDING, PRE_EXISTING)}
    posthog = cfg.correlation_window == "posthog"
    return Activation(
        persons=people,
        cohorts=cohorts(people),
        milestones=stats,
        aha=aha_candidates(stats, cfg.milestones),
        correlation=correlation(
            people, firsts, steps, partial.spans if posthog else None, keys if posthog else None
        ),
        quality={**quality, **found.counts()},
    )

"""The seed's signal table, raised for the run's day [T-1d, T), with the hygiene a sales team needs.

| signal                | raised by                                              | subject      |
|-----------------------|--------------------------------------------------------|--------------|
| aha_reached           | a stitched person's first `signals.aha_event`           | person       |
| usage_ceiling         | `hits_80_percent_of_tier_limit` in an organization     | organization |
| enterprise_interest   | `enterprise_feature_clicked`, detail = `feature_name`  | organization |
| pql_crossed           | score reaches the threshold, re-armed below a low mark | organization |
| integration_connected | `integration_connected`, detail = `provider`           | organization |

Rules (docs/models.md states each with PostHog's behaviour):

- Persons: `distinct_id` is the person key, the identified id whenever the person has one
  (models/identity.py: any `$identify`, server-side ones included), so Intercom and HubSpot get
  an id they know; `email` is the person's latest email known before T across its distinct ids.
  Organization signals name the person of the day's first occurrence the same way.
- Organization names are the group properties merged per property (models/groups.py), as PostHog
  merges `$group_set`: a later `$groupidentify` with only `plan` keeps the name.
- One task per account: `usage_ceiling` and `enterprise_interest` are raised at most once per
  organization within `signals.cooldown_days`; the day's feature names are normalised (lower
  case, whitespace collapsed, placeholders such as "-" dropped) and listed in the one row.
  `integration_connected` is per organization and normalised provider, with the same cool-down.
- PQL hysteresis: `pql_crossed` is raised when the score reaches `pql.threshold` while armed; it
  disarms and re-arms only once the score has been below `signals.pql_rearm_below` on a daily
  evaluation, and never within `signals.cooldown_days` of the previous alert.
- History without a clock: the earlier alerts the cool-down and the hysteresis need are derived
  from the event data as of T (the organization's occurrence days since the beginning of the
  data; the daily score series over `signals.pql_lookback_days`), so reruns and backfills raise
  the same rows.
- Aha is credited to the organization of the Aha event itself (none: the row still goes out,
  its actions are per person). Excluded persons and test organizations raise nothing; an
  organization's signal comes from the occurrences of persons who are not excluded.
- Placeholder ids (trimmed, any case) are nobody: they never raise or name a signal.

Each row has a stable `signal_key` = signal:subject:detail:day ("-" for the one-per-account
signals), so a rerun or a backfill raises the same key and the delivery state sends it once.
The SQL twin is include/sql/duckdb/signals.sql.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.rollup import Partial
    from plg_bridge.models import exclusions

COLUMNS = {
    "signal_key": "str",
    "signal": "str",
    "org_id": "object",  # None for an Aha outside any organization
    "org_name": "object",
    "distinct_id": "object",
    "email": "object",
    "detail": "object",
    "occurred_at": "datetime64[us, UTC]",
    "as_of": "str",
    "pql_score": "Int64",
    "is_pql": "boolean",
}
PER_ACCOUNT = ("usage_ceiling", "enterprise_interest")  # one row per organization: AE tasks
_SPACES = re.compile(r"\s+")


def empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})


def normalise_details(values: pd.Series, placeholders: Iterable[str]) -> pd.Series:
    """Feature / provider names as one name: lower case, whitespace collapsed, placeholders null."""
    text = values.astype("object").where(values.notna(), None)
    clean = text.map(lambda v: None if v is None else _SPACES.sub(" ", str(v)).strip().lower())
    dropped = {p.strip().lower() for p in placeholders} | {""}
    return clean.where(~clean.isin(dropped) & clean.notna(), None)


def cooled_days(days: pd.DataFrame, keys: list[str], cooldown_days: int) -> pd.DataFrame:
    """The days a signal is raised: per `keys` group, the first active day, then the first active
    day at least `cooldown_days` after the last raised one (greedy, in day order)."""
    import pandas as pd

    gap = pd.Timedelta(days=cooldown_days)
    kept = []
    for _, group in days.sort_values([*keys, "day"], kind="stable").groupby(keys, sort=False):
        last = None
        for index, day in zip(group.index, group["day"], strict=True):
            if last is None or day - last >= gap:
                kept.append(index)
                last = day
    return days.loc[kept]


def pql_alerts(partial: Partial, scores: pd.DataFrame, as_of: datetime, settings: Settings) -> pd.DataFrame:
    """(org_id, day) of every PQL alert over the lookback, the run's as-of date included.

    Daily as-of dates D = T - lookback .. T. An organization is armed at the first date when
    its score is below the threshold then; an armed organization reaching the threshold at D
    raises an alert (D - the previous alert >= cooldown) and disarms; a score below
    `pql_rearm_below` re-arms it.
    """
    import pandas as pd

    from plg_bridge.models import pql

    cfg, sig = settings.pql, settings.signals
    t = pd.Timestamp(as_of)
    dates = [t - pd.Timedelta(days=k) for k in range(sig.pql_lookback_days, 0, -1)]
    series = pql.daily_scores(partial, dates, cfg, placeholder_ids=settings.exports.placeholder_ids)
    daily = pd.concat([series, scores[["org_id", "pql_score"]].assign(day=t)], ignore_index=True)
    grid = daily.pivot_table(index="org_id", columns="day", values="pql_score", aggfunc="max")
    grid = grid.reindex(columns=[*dates, t]).fillna(0)
    alerts = []
    gap = pd.Timedelta(days=sig.cooldown_days)
    for org, row in grid.iterrows():
        armed, last = bool(row.iloc[0] < cfg.threshold), None
        for day, value in row.iloc[1:].items():
            if value < sig.pql_rearm_below:
                armed = True
            elif armed and value >= cfg.threshold and (last is None or day - last >= gap):
                alerts.append((org, day))
                armed, last = False, day
    return pd.DataFrame(alerts, columns=["org_id", "day"])


def pql_crossed(partial: Partial, scores: pd.DataFrame, as_of: datetime, settings: Settings) -> pd.DataFrame:
    """Organizations whose PQL alert (`pql_alerts`) falls on the run's as-of date T."""
    import pandas as pd

    t = pd.Timestamp(as_of)
    alerts = pql_alerts(partial, scores, as_of, settings)
    crossed = alerts[alerts["day"] == t]
    return pd.DataFrame(
        {
            "signal": "pql_crossed",
            "org_id": crossed["org_id"],
            "subject": crossed["org_id"],
            "detail": None,  # not the score: a late event changing it must not make a second crossing
            "key_detail": None,
            "occurred_at": t - pd.Timedelta(microseconds=1),
            "distinct_id": None,
        }
    )


def org_events(
    partial: Partial,
    as_of: datetime,
    settings: Settings,
    keys: pd.DataFrame | None = None,
    excluded: pd.Series | None = None,
) -> pd.DataFrame:
    """Usage ceiling, enterprise interest and integrations raised on the run's day.

    Occurrences by `excluded` person keys (distinct ids stitched with `keys`) are dropped first: an
    internal user clicking first must not hide the customer who clicked after. The cool-down is
    evaluated over every occurrence day before T.
    """
    import pandas as pd

    from plg_bridge.models.identity import person_of

    cfg = settings.signals
    names = {
        cfg.usage_ceiling_event: "usage_ceiling",
        cfg.enterprise_event: "enterprise_interest",
        settings.pql.integration_event: "integration_connected",
    }
    t = pd.Timestamp(as_of)
    rows = partial.occurrences
    rows = rows[(rows["timestamp"] < t) & rows["event"].isin(names)]
    if keys is None:
        keys = pd.DataFrame({"distinct_id": pd.Series(dtype="str"), "person_key": pd.Series(dtype="str")})
    rows = rows.assign(
        signal=rows["event"].map(names),
        person_key=person_of(rows["distinct_id"], keys),
        detail=normalise_details(rows["detail"], cfg.detail_placeholders),
    )
    if excluded is not None and len(excluded):
        rows = rows[~rows["person_key"].isin(excluded).to_numpy()]
    rows = rows.assign(group=rows["detail"].where(rows["signal"] == "integration_connected", "-").fillna("-"))
    rows = rows[(rows["signal"] != "integration_connected") | rows["detail"].notna()]
    days = rows[["org_id", "signal", "group", "day"]].drop_duplicates()
    raised = cooled_days(days, ["org_id", "signal", "group"], cfg.cooldown_days)
    today = raised[raised["day"] == t - pd.Timedelta(days=1)]
    hits = rows.merge(today, on=["org_id", "signal", "group", "day"])
    hits = hits.sort_values(["timestamp", "person_key", "distinct_id"], kind="stable")
    first = hits.drop_duplicates(["org_id", "signal", "group"])
    listed = hits.dropna(subset=["detail"]).groupby(["org_id", "signal", "group"])["detail"]
    listed = listed.agg(lambda v: ", ".join(sorted(set(v))))
    detail = first.set_index(["org_id", "signal", "group"]).index.map(listed.to_dict())
    return pd.DataFrame(
        {
            "signal": first["signal"].to_numpy(),
            "org_id": first["org_id"].to_numpy(),
            "subject": first["org_id"].to_numpy(),
            "detail": pd.Series(detail, dtype="object").where(pd.notna(detail), None).to_numpy(),
            "key_detail": first["group"].to_numpy(),
            "occurred_at": first["timestamp"].to_numpy(),
            "distinct_id": first["person_key"].to_numpy(),
        }
    )


def aha_reached(partial: Partial, keys: pd.DataFrame, as_of: datetime, settings: Settings) -> pd.DataFrame:
    """Persons whose first-ever Aha event (across their stitched ids) happened on the run's day,
    credited to the organization that Aha event was sent in (none: org_id null)."""
    import pandas as pd

    from plg_bridge.models.activation import person_firsts
    from plg_bridge.models.identity import person_of

    t = pd.Timestamp(as_of)
    event = settings.signals.aha_event
    firsts = person_firsts(partial.firsts[partial.firsts["event"] == event], keys, as_of)
    today = firsts[firsts["timestamp"] >= t - pd.Timedelta(days=1)]
    where = partial.occurrences
    where = where[(where["event"] == event) & (where["timestamp"] < t)]
    where = where.assign(person_key=person_of(where["distinct_id"], keys))
    where = where.merge(today, on=["person_key", "timestamp"], suffixes=("", "_first"))
    org = where.sort_values(["org_id"], kind="stable").drop_duplicates("person_key")
    org = org.set_index("person_key")["org_id"]
    return pd.DataFrame(
        {
            "signal": "aha_reached",
            "org_id": today["person_key"].map(org),
            "subject": today["person_key"],
            "detail": event,
            "key_detail": event,
            "occurred_at": today["timestamp"],
            "distinct_id": today["person_key"],
        }
    )


def raise_signals(
    partial: Partial,
    scores: pd.DataFrame,
    as_of: datetime,
    settings: Settings,
    *,
    keys: pd.DataFrame | None = None,
    excluded: exclusions.Exclusions | None = None,
) -> pd.DataFrame:
    """All enabled signals of the run's day, one row per signal key (see the module table).

    `keys` / `excluded`: the run's identity.stitch and exclusions.find, when already computed.
    """
    import pandas as pd

    from plg_bridge.ingest.people import EMAIL, latest_profiles
    from plg_bridge.models import exclusions, groups
    from plg_bridge.models.identity import person_of, persons

    if not partial.people:
        return empty()
    if keys is None:
        keys = persons(partial, as_of, settings.exports.placeholder_ids)
    if excluded is None:
        excluded = exclusions.find(partial, keys, as_of, settings)
    parts = {
        "pql_crossed": lambda: pql_crossed(partial, scores, as_of, settings),
        "aha_reached": lambda: aha_reached(partial, keys, as_of, settings),
    }
    raised = [parts[s]() for s in ("pql_crossed", "aha_reached") if s in settings.signals.enabled]
    raised.append(org_events(partial, as_of, settings, keys, excluded.persons["person_key"]))
    frame = (
        pd.concat([f for f in raised if len(f)], ignore_index=True) if any(len(f) for f in raised) else None
    )
    if frame is None:
        return empty()
    per_person = frame["signal"] == "aha_reached"
    frame = frame[frame["signal"].isin(settings.signals.enabled) & (frame["org_id"].notna() | per_person)]
    frame = excluded.drop_orgs(frame)
    if len(excluded.persons) and frame["distinct_id"].notna().any():
        person = person_of(frame["distinct_id"].fillna(""), keys)
        frame = frame[
            ~person.isin(excluded.persons["person_key"]).to_numpy() | frame["distinct_id"].isna().to_numpy()
        ]

    emails = latest_profiles(partial.profiles, pd.Timestamp(as_of))
    emails = emails[emails["key"] == EMAIL]
    emails = emails.assign(person_key=person_of(emails["distinct_id"], keys))
    # the person's latest email across its distinct ids (ties: the larger value), as PostHog keeps it
    emails = emails.sort_values(["person_key", "timestamp", "value"], kind="stable")
    emails = emails.drop_duplicates("person_key", keep="last")
    by_person = emails.set_index("person_key")["value"]
    person_of_row = person_of(frame["distinct_id"].fillna(""), keys)
    frame = frame.assign(
        email=person_of_row.map(by_person).where(frame["distinct_id"].notna(), None).to_numpy()
    )

    day = (pd.Timestamp(as_of) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    frame["signal_key"] = (
        frame["signal"]
        + ":"
        + frame["subject"].astype(str)
        + ":"
        + frame["key_detail"].fillna("-").astype(str)
        + ":"
        + day
    )
    info = scores.set_index("org_id")
    names = groups.organizations(partial, as_of).set_index("org_id")["name"]
    org_name = frame["org_id"].map(names)
    frame["org_name"] = org_name.astype(object).where(org_name.notna(), None)
    frame["pql_score"] = frame["org_id"].map(info["pql_score"]) if len(info) else None
    frame["is_pql"] = frame["org_id"].map(info["is_pql"]) if len(info) else None
    frame["as_of"] = pd.Timestamp(as_of).strftime("%Y-%m-%d")
    frame = frame.drop_duplicates("signal_key").sort_values(["signal", "org_id", "signal_key"], kind="stable")
    frame = frame[list(COLUMNS)].astype(COLUMNS).reset_index(drop=True)
    for column in ("org_id", "org_name", "distinct_id", "email", "detail"):  # missing is None, never NaN
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame

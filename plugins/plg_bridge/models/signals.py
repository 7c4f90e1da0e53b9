"""The seed's signal table, raised for the run's day [T-1d, T).

| signal                | raised by                                              | subject      |
|-----------------------|--------------------------------------------------------|--------------|
| aha_reached           | a stitched person's first `signals.aha_event`           | person       |
| usage_ceiling         | `hits_80_percent_of_tier_limit` in an organization     | organization |
| enterprise_interest   | `enterprise_feature_clicked`, detail = `feature_name`  | organization |
| pql_crossed           | score below the threshold as of T-1d, at or above at T | organization |
| integration_connected | `integration_connected`, detail = `provider`           | organization |

Each row has a stable `signal_key` = signal:subject:detail:day, so a rerun or a backfill raises
the same key again and the delivery state sends it once. Excluded persons and organizations
(models/exclusions.py) raise nothing: an organization's signal comes from the day's first occurrence
by a person who is not excluded. `email` is the person's latest email known before T across its
stitched distinct ids. The SQL twin is include/sql/duckdb/signals.sql.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.ingest.rollup import Partial
    from plg_bridge.models import exclusions

COLUMNS = {
    "signal_key": "str",
    "signal": "str",
    "org_id": "str",
    "org_name": "object",
    "distinct_id": "object",
    "email": "object",
    "detail": "object",
    "occurred_at": "datetime64[us, UTC]",
    "as_of": "str",
    "pql_score": "Int64",
    "is_pql": "boolean",
}


def empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})


def pql_crossed(partial: Partial, scores: pd.DataFrame, as_of: datetime, settings: Settings) -> pd.DataFrame:
    """Organizations at or above the threshold at T that were below it as of T-1d."""
    import pandas as pd

    from plg_bridge.models import pql

    before = pql.score(partial, as_of - timedelta(days=1), settings.pql).set_index("org_id")["pql_score"]
    was = before.reindex(scores["org_id"]).fillna(0).to_numpy()
    crossed = scores[scores["is_pql"].to_numpy() & (was < settings.pql.threshold)]
    return pd.DataFrame(
        {
            "signal": "pql_crossed",
            "org_id": crossed["org_id"],
            "subject": crossed["org_id"],
            "detail": None,  # not the score: a late event changing it must not make a second crossing
            "occurred_at": pd.Timestamp(as_of) - pd.Timedelta(microseconds=1),
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
    """Usage ceiling, enterprise interest and integrations seen on the run's day.

    Occurrences by `excluded` person keys (distinct ids stitched with `keys`) are dropped before
    the day's first occurrence is picked: an internal user clicking first must not hide the
    customer who clicked after.
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
    rows = rows[
        (rows["timestamp"] >= t - pd.Timedelta(days=1)) & (rows["timestamp"] < t) & rows["event"].isin(names)
    ]
    if keys is not None and excluded is not None and len(excluded):
        rows = rows[~person_of(rows["distinct_id"], keys).isin(excluded).to_numpy()]
    first = rows.sort_values(["timestamp", "distinct_id"], kind="stable").drop_duplicates(
        ["org_id", "event", "detail"]
    )
    return pd.DataFrame(
        {
            "signal": first["event"].map(names),
            "org_id": first["org_id"],
            "subject": first["org_id"],
            "detail": first["detail"],
            "occurred_at": first["timestamp"],
            "distinct_id": first["distinct_id"],
        }
    )


def aha_reached(partial: Partial, keys: pd.DataFrame, as_of: datetime, settings: Settings) -> pd.DataFrame:
    """Persons whose first-ever Aha event (across their stitched ids) happened on the run's day."""
    import pandas as pd

    from plg_bridge.models.activation import person_firsts
    from plg_bridge.models.identity import person_of

    t = pd.Timestamp(as_of)
    event = settings.signals.aha_event
    firsts = person_firsts(partial.firsts[partial.firsts["event"] == event], keys, as_of)
    today = firsts[firsts["timestamp"] >= t - pd.Timedelta(days=1)]
    members = partial.memberships[partial.memberships["timestamp"] < t]
    members = members.assign(person_key=person_of(members["distinct_id"], keys))
    org = members.sort_values(["timestamp", "org_id"], kind="stable").drop_duplicates("person_key")
    org = org.set_index("person_key")["org_id"]
    return pd.DataFrame(
        {
            "signal": "aha_reached",
            "org_id": today["person_key"].map(org),
            "subject": today["person_key"],
            "detail": event,
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
    from plg_bridge.models import exclusions
    from plg_bridge.models.identity import person_of, stitch

    if not partial.people:
        return empty()
    if keys is None:
        keys = stitch(partial.links, as_of, settings.exports.placeholder_ids, partial.firsts["distinct_id"])
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
    frame = frame[frame["signal"].isin(settings.signals.enabled) & frame["org_id"].notna()]
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
        + frame["detail"].fillna("-").astype(str)
        + ":"
        + day
    )
    info = scores.set_index("org_id")
    frame["org_name"] = frame["org_id"].map(info["org_name"]) if len(info) else None
    frame["pql_score"] = frame["org_id"].map(info["pql_score"]) if len(info) else None
    frame["is_pql"] = frame["org_id"].map(info["is_pql"]) if len(info) else None
    frame["as_of"] = pd.Timestamp(as_of).strftime("%Y-%m-%d")
    frame = frame.drop_duplicates("signal_key").sort_values(["signal", "org_id", "signal_key"], kind="stable")
    return frame[list(COLUMNS)].astype(COLUMNS).reset_index(drop=True)

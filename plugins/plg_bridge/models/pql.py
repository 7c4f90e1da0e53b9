"""PQL score per organization, as of the run's data interval end T (exclusive, UTC).

Windows are half-open and day-aligned: this week = [T-7d, T), last week = [T-14d, T-7d). The
seed's HogQL compared `toDate(timestamp)` with `today()`, so both weeks contained day T-7d and
"today" counted too; we define them without overlap (see include/sql/hogql/pql.sql).

score = velocity_points  if events_this_week > events_last_week * velocity_ratio
      + breadth_points   if active_creators >= breadth_min_creators, else active_creators * points_per_creator
      + integration_points if integrations_connected >= 1

active_creators counts PostHog persons, not raw ids: each creation event's distinct_id (else its
person_id) is resolved through the identity links known before T by PostHog's merge rules
(models/identity.py), so two person_ids PostHog merged (`$merge_dangerously`, an anonymous person
identified into an identified one, ids sharing a person_id) count once, and two identified
persons an `$identify` could not merge count twice (creator_persons).
"""

from __future__ import annotations

from collections.abc import Iterable
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


UNRESOLVED = "\x1f"  # prefix of a creator key that no distinct id resolves (never a distinct id)


def creator_links(partial: Partial, creators: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The links and `$identify` firsts that can decide who `creators` are: the partial's links plus
    the creators' own distinct_id -> person_id links, kept only in the connected components that
    hold a creator (merges only run along links, so the rest cannot change a creator's person)."""
    import numpy as np
    import pandas as pd

    from plg_bridge.models.identity import IDENTIFY, components

    own = creators.loc[creators["person_id"].notna(), ["distinct_id", "person_id", "day"]]
    own = own[own["distinct_id"].notna()]
    own = pd.DataFrame(
        {"a": own["distinct_id"], "b": own["person_id"], "kind": "person", "timestamp": own["day"]}
    )
    links = pd.concat([partial.links, own.astype(partial.links.dtypes.to_dict())], ignore_index=True)
    firsts = partial.firsts[partial.firsts["event"] == IDENTIFY]
    if links.empty:
        return links, firsts.iloc[:0]
    is_person = (links["kind"] == "person").to_numpy(bool)
    n, k = len(links), int((~is_person).sum())
    ids = pd.concat([links["a"], links["b"][~is_person], creators["distinct_id"].fillna("")])
    id_codes, names = pd.factorize(ids)
    people = pd.concat([links["b"][is_person], creators["person_id"].dropna()])
    person_codes, person_names = pd.factorize(people)
    left = id_codes[:n]
    right = np.empty(n, np.int64)
    right[~is_person] = id_codes[n : n + k]
    right[is_person] = len(names) + person_codes[: int(is_person.sum())]
    labels = components(left, right, len(names) + len(person_names))
    wanted = np.union1d(labels[id_codes[n + k :]], labels[len(names) + person_codes[int(is_person.sum()) :]])
    links = links[np.isin(labels[left], wanted)]
    kept = pd.Index(names)[np.isin(labels[: len(names)], wanted)]
    return links.reset_index(drop=True), firsts[firsts["distinct_id"].isin(kept)]


def creator_persons(
    partial: Partial,
    creators: pd.DataFrame,
    as_of: datetime,
    placeholder_ids: Iterable[str] = (),
    *,
    keys: pd.DataFrame | None = None,
    links: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> pd.Series:
    """The PostHog person of each row of `creators` (a slice of `partial.creators`), as of T.

    `keys` is identity.stitch's output when the caller already has it (the DAG path: persons of
    the whole merged partial); otherwise creator_links (the partial's links, all of them or only
    the identity events' on the CLI path, plus the creators' own; `links` when already made) are
    stitched. A distinct id PostHog never merges (a placeholder like "guest") resolves through
    its person_id; one that resolves to no one keeps its person_id (else itself) as its own person.
    """
    import pandas as pd

    from plg_bridge.models.identity import stitch

    t = pd.Timestamp(as_of_time(as_of))
    if links is None and keys is None:
        links = creator_links(partial, creators)
    if keys is None:
        keys = stitch(links[0], t, placeholder_ids, creators["distinct_id"], links[1])
    by_id = pd.Series(keys["person_key"].to_numpy(), index=keys["distinct_id"].to_numpy())
    person = creators["distinct_id"].map(by_id).to_numpy(dtype=object, copy=True)
    missing = pd.isna(person)
    if missing.any():  # rare: ids PostHog never merges
        edges = (links if links is not None else creator_links(partial, creators))[0]
        held = edges[(edges["kind"] == "person") & (edges["timestamp"] < t)]
        held = held.assign(key=held["a"].map(by_id)).dropna(subset=["key"])
        via = held.groupby("b")["key"].min()
        person[missing] = creators["person_id"][missing].map(via).astype(object).to_numpy()
        missing = pd.isna(person)
        raw = creators["person_id"].fillna(creators["distinct_id"]).astype(object).to_numpy()
        person[missing] = [UNRESOLVED + str(v) for v in raw[missing]]
    return pd.Series(person, index=creators.index, dtype="str")


def score(
    partial: Partial,
    as_of: datetime,
    cfg: PqlSettings,
    *,
    placeholder_ids: Iterable[str] = (),
    keys: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per organization with at least one scoring event in [T-2w, T), best first.

    `keys` (identity.stitch as of T over the partial) saves creator_persons a stitch."""
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
    creators = creators.assign(person=creator_persons(partial, creators, t, placeholder_ids, keys=keys))
    out = pd.DataFrame(
        {
            "events_this_week": total(cfg.velocity_event, this_start, t),
            "events_last_week": total(cfg.velocity_event, last_start, this_start),
            "active_creators": creators.groupby("org_id")["person"].nunique(),
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


def daily_scores(
    partial: Partial, dates: list[datetime], cfg: PqlSettings, *, placeholder_ids: Iterable[str] = ()
) -> pd.DataFrame:
    """`score`'s pql_score as of each of `dates` (midnights), for every organization scored on
    any of them: columns org_id, day, pql_score (0 where unscored), one pass over the partials.

    The same rules as `score`, on an organization x day grid with cumulative sums (creators: a
    user counts when active on any day of the window), so a series of as-of dates costs about
    one score, not one per date. Creators are resolved to persons as of each date; the links
    are stitched once when no identity link falls between the first and the last date.
    """
    import numpy as np
    import pandas as pd

    stamps = [pd.Timestamp(as_of_time(d)) for d in dates]
    week = pd.Timedelta(days=cfg.week_days)
    first, stop = min(stamps) - 2 * week, max(stamps)
    counts = partial.counts[
        (partial.counts["day"] >= first)
        & (partial.counts["day"] < stop)
        & partial.counts["event"].isin(cfg.events)
    ]
    creators = partial.creators[(partial.creators["day"] >= first) & (partial.creators["day"] < stop)]
    orgs = pd.Index(sorted(set(counts["org_id"])), dtype="str")
    n_days = int((stop - first) / pd.Timedelta(days=1))
    if not len(orgs) or n_days <= 0:
        return pd.DataFrame(
            {
                "org_id": pd.Series(dtype="str"),
                "day": pd.Series(dtype="datetime64[ns, UTC]"),
                "pql_score": pd.Series(dtype="int64"),
            }
        )

    def grid(rows: pd.DataFrame, values: np.ndarray) -> np.ndarray:
        """org x day matrix of `values` summed, with a leading zero column (for window sums)."""
        out = np.zeros((len(orgs), n_days + 1), dtype=np.int64)
        i = orgs.get_indexer(rows["org_id"])
        j = ((rows["day"] - first) / pd.Timedelta(days=1)).to_numpy().astype(np.int64) + 1
        keep = i >= 0
        np.add.at(out, (i[keep], j[keep]), values[keep])
        return np.cumsum(out, axis=1)

    def window(cum: np.ndarray, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        a = int((start - first) / pd.Timedelta(days=1))
        b = int((end - first) / pd.Timedelta(days=1))
        return cum[:, b] - cum[:, a]

    def event_grid(name: str) -> np.ndarray:
        rows = counts[counts["event"] == name]
        return grid(rows, rows["n"].to_numpy(np.int64))

    velocity, integration = event_grid(cfg.velocity_event), event_grid(cfg.integration_event)
    scored = grid(counts, np.ones(len(counts), dtype=np.int64))
    edges = creator_links(partial, creators)  # once: the per-date stitches only see these
    calls = edges[0].loc[edges[0]["kind"] != "person", "timestamp"]
    moving = pd.concat([calls, edges[1]["timestamp"]])
    moving = moving[(moving >= min(stamps)) & (moving < max(stamps))]
    resolved: dict[pd.Timestamp, tuple] = {}

    def active_pairs(t: pd.Timestamp) -> tuple:
        """(pair cumulative activity, org of each pair) with creators resolved as of `t`."""
        at = max(stamps) if moving.empty else t
        if at not in resolved:
            person = creator_persons(partial, creators, at, placeholder_ids, links=edges)
            keyed = creators.assign(person=person)
            pairs = keyed[["org_id", "person"]].drop_duplicates().reset_index(drop=True)
            pair_of = keyed.merge(pairs.reset_index(names="pair"), on=["org_id", "person"])
            active = np.zeros((len(pairs), n_days + 1), dtype=np.int64)
            j = ((pair_of["day"] - first) / pd.Timedelta(days=1)).to_numpy().astype(np.int64) + 1
            active[pair_of["pair"].to_numpy(), j] = 1
            resolved[at] = (np.cumsum(active, axis=1), orgs.get_indexer(pairs["org_id"]))
        return resolved[at]

    frames = []
    for t in stamps:
        active, pair_org = active_pairs(t)
        this = window(velocity, t - week, t)
        last = window(velocity, t - 2 * week, t - week)
        users = window(active, t - 2 * week, t) > 0
        made = np.zeros(len(orgs), dtype=np.int64)
        np.add.at(made, pair_org[(pair_org >= 0) & users], 1)
        points = (
            np.where(this > last * cfg.velocity_ratio, cfg.velocity_points, 0)
            + np.where(made >= cfg.breadth_min_creators, cfg.breadth_points, made * cfg.points_per_creator)
            + np.where(window(integration, t - 2 * week, t) >= 1, cfg.integration_points, 0)
        )
        points = np.where(window(scored, t - 2 * week, t) > 0, points, 0)
        frames.append(pd.DataFrame({"org_id": orgs, "day": t, "pql_score": points.astype(np.int64)}))
    return pd.concat(frames, ignore_index=True)

"""Per-file partial aggregates and their merge.

An export file is read once and boiled down to a few small tables that merge by concatenation:
event counts per organization x event-time day x event, creators per organization x day, the
latest group properties per organization, quarantined rows, and data-quality counters. A run as
of T merges the partials of the files it may see and applies T only then, so the expensive
part never depends on the run's date and each file's work is done once.

Duplicates (PostHog delivers at least once) are dropped by uuid within a file.

With `people=True` (the default) the same single read also produces the person-level tables of
plg_bridge.ingest.people (identity links, first times, touches, conversions, profiles, memberships);
the PQL tables are computed from the PQL events exactly as without it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plg_bridge.ingest import people as people_tables
from plg_bridge.ingest import reader

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.storage import Location

GROUP_FIELDS = ("name", "plan", "seat_count", "mrr")
QUALITY_COUNTERS = ("rows_read", "rows_used", "duplicates", "missing_org", "placeholder_users")
# person-level reading: rows parsed, rows left out for a placeholder distinct_id, rows set aside
# for unparseable properties (any event; `quarantined_*` count those of the PQL events only)
PEOPLE_COUNTERS = ("people_rows", "people_placeholder_ids", "people_quarantined")


@dataclass
class Partial:
    counts: pd.DataFrame  # org_id, day, event, n
    creators: pd.DataFrame  # org_id, day, user
    groups: pd.DataFrame  # org_id, timestamp, name, plan, seat_count, mrr
    quarantine: pd.DataFrame  # file, row, uuid, event, reason, properties (PQL events)
    quality: Counter = field(default_factory=Counter)
    # person-level tables (plg_bridge.ingest.people); empty unless `people` is True
    links: pd.DataFrame = field(default_factory=lambda: people_tables.empty("links"))
    firsts: pd.DataFrame = field(default_factory=lambda: people_tables.empty("firsts"))
    touches: pd.DataFrame = field(default_factory=lambda: people_tables.empty("touches"))
    conversions: pd.DataFrame = field(default_factory=lambda: people_tables.empty("conversions"))
    profiles: pd.DataFrame = field(default_factory=lambda: people_tables.empty("profiles"))
    memberships: pd.DataFrame = field(default_factory=lambda: people_tables.empty("memberships"))
    occurrences: pd.DataFrame = field(default_factory=lambda: people_tables.empty("occurrences"))
    spans: pd.DataFrame = field(default_factory=lambda: people_tables.empty("spans"))
    people: bool = False  # True when every file behind this partial was rolled up with people=True

    TABLES = ("counts", "creators", "groups", "quarantine")
    PEOPLE_TABLES = tuple(people_tables.TABLES)


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


COUNTS = {"org_id": "str", "day": "datetime64[us, UTC]", "event": "str", "n": "int64"}
CREATORS = {"org_id": "str", "day": "datetime64[us, UTC]", "user": "str"}
GROUPS = {"org_id": "str", "timestamp": "datetime64[us, UTC]", **dict.fromkeys(GROUP_FIELDS, "str")}
QUARANTINE = {
    "file": "str",
    "row": "int64",
    "uuid": "str",
    "event": "str",
    "reason": "str",
    "properties": "str",
}


def _group_rows(groups: pd.DataFrame, group_type: str) -> pd.DataFrame:
    """Parse the rare `$groupidentify` rows: org key and the `$group_set` fields we keep."""
    import pandas as pd

    records = []
    for ts, text in zip(groups["timestamp"], groups["properties"], strict=True):
        try:
            obj = json.loads(text) if isinstance(text, str) and text else None  # null -> NaN in pandas
        except ValueError:
            continue
        if (
            not isinstance(obj, dict)
            or obj.get("$group_type") != group_type
            or obj.get("$group_key") in (None, "")
        ):
            continue
        group_set = obj.get("$group_set") if isinstance(obj.get("$group_set"), dict) else {}
        values = {k: (None if group_set.get(k) is None else str(group_set[k])) for k in GROUP_FIELDS}
        records.append({"org_id": str(obj["$group_key"]), "timestamp": ts, **values})
    frame = pd.DataFrame.from_records(records, columns=list(GROUPS)) if records else _empty(GROUPS)
    return latest_groups(frame.astype(GROUPS), per_day=True)


def latest_groups(groups: pd.DataFrame, per_day: bool = False) -> pd.DataFrame:
    """The latest `$group_set` per organization (ties: the last one seen).

    Partials keep one per organization and day, so a run as of T can still find what was
    known before T when a later file renamed the organization.
    """
    if groups.empty:
        return groups
    ordered = groups.reset_index(drop=True).sort_values("timestamp", kind="stable")
    keys = [ordered["org_id"], ordered["timestamp"].dt.floor("D")] if per_day else [ordered["org_id"]]
    return ordered[~ordered.groupby(keys).cumcount(ascending=False).astype(bool)].reset_index(drop=True)


def rollup_file(location: Location, key: str, settings: Settings, people: bool = True) -> Partial:
    """Read one export object into its Partial. Raises ExportReadError / ExportSchemaError naming it.

    `people=False` reads only the PQL events and skips the person tables (`plg-bridge score`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    events = settings.pql.events
    slim, groups, quarantine = [], [], []
    person_parts: dict[str, list[pd.DataFrame]] = {name: [] for name in Partial.PEOPLE_TABLES}
    quality: Counter = Counter(dict.fromkeys(QUALITY_COUNTERS, 0))
    if people:
        quality.update(dict.fromkeys(PEOPLE_COUNTERS, 0))
    signal_details = people_tables.signal_events(settings.signals, settings.pql)
    batches = reader.iter_batches(
        location,
        key,
        settings.exports,
        None if people else events,
        properties=people_tables.event_properties(settings.models, signal_details.values())
        if people
        else None,
        # used when the export's person_properties column is read (exports.schema.OPTIONAL)
        person_properties=people_tables.person_properties(settings.models) if people else None,
    )
    wanted = pa.array(list(events))
    for batch in batches:
        quality["rows_read"] += batch.rows
        if people:
            tables, placeholder_rows = people_tables.from_slim(
                batch.events, settings.exports, settings.models, signal_details
            )
            for name, table in tables.items():
                person_parts[name].append(table)
            quality["people_rows"] += batch.events.num_rows
            quality["people_placeholder_ids"] += placeholder_rows
            quality["people_quarantined"] += batch.quarantine.num_rows
            # the PQL tables see exactly the rows a PQL-only read would have kept
            is_pql = pc.fill_null(pc.is_in(batch.events.column("event"), value_set=wanted), False)
            slim.append(batch.events.filter(is_pql).select(reader.slim_schema().names))
            is_pql = pc.fill_null(pc.is_in(batch.quarantine.column("event"), value_set=wanted), False)
            quarantine.append(batch.quarantine.filter(is_pql))
        else:
            slim.append(batch.events)
            quarantine.append(batch.quarantine)
        groups.append(batch.groups)

    frame = pa.concat_tables(slim or [reader.slim_schema().empty_table()]).to_pandas()
    quarantined = (
        pa.concat_tables(quarantine).to_pandas() if quarantine else _empty(QUARANTINE).drop(columns="file")
    )
    for reason, n in quarantined["reason"].value_counts().items():
        quality[f"quarantined_{reason}"] += int(n)
    quarantined.insert(0, "file", location.uri_of(key))

    duplicated = frame["uuid"].duplicated(keep="first")
    quality["duplicates"] += int(duplicated.sum())
    frame = frame[~duplicated]
    has_org = frame["org_id"].notna() & (frame["org_id"] != "")
    quality["missing_org"] += int((~has_org).sum())
    frame = frame[has_org]
    quality["rows_used"] += len(frame)

    frame = frame.assign(day=frame["timestamp"].dt.floor("D"))
    counts = frame.groupby(["org_id", "day", "event"], as_index=False, observed=True).size()
    counts = counts.rename(columns={"size": "n"}).astype(COUNTS)

    made = frame[frame["event"] == settings.pql.breadth_event]
    person = made["person_id"].where(made["person_id"].notna() & (made["person_id"] != ""))
    user = person.fillna(made["distinct_id"])
    placeholder = user.isna() | user.str.lower().isin(settings.exports.placeholder_ids)
    quality["placeholder_users"] += int(placeholder.sum())
    creators = (
        made.assign(user=user)[~placeholder][["org_id", "day", "user"]].drop_duplicates().astype(CREATORS)
    )

    group_table = (
        pa.concat_tables(groups).to_pandas() if groups else _empty({"timestamp": "str", "properties": "str"})
    )
    return Partial(
        counts=counts.reset_index(drop=True),
        creators=creators.reset_index(drop=True),
        groups=_group_rows(group_table, settings.exports.group_type),
        quarantine=quarantined.astype(QUARANTINE).reset_index(drop=True),
        quality=quality,
        **{name: people_tables.merge(name, parts) for name, parts in person_parts.items()},
        people=people,
    )


def merge(partials: Iterable[Partial]) -> Partial:
    """Combine partials of different files; the result is again a Partial."""
    import pandas as pd

    parts = list(partials)
    if not parts:
        return Partial(_empty(COUNTS), _empty(CREATORS), _empty(GROUPS), _empty(QUARANTINE), Counter())

    def cat(name: str, columns: dict[str, str]) -> pd.DataFrame:
        frames = [getattr(p, name) for p in parts if len(getattr(p, name))]
        return pd.concat(frames, ignore_index=True).astype(columns) if frames else _empty(columns)

    counts = cat("counts", COUNTS).groupby(["org_id", "day", "event"], as_index=False)["n"].sum()
    quality: Counter = Counter()
    for p in parts:
        quality.update(p.quality)
    return Partial(
        counts=counts.astype(COUNTS),
        creators=cat("creators", CREATORS).drop_duplicates(ignore_index=True),
        groups=latest_groups(cat("groups", GROUPS), per_day=True),
        quarantine=cat("quarantine", QUARANTINE),
        quality=quality,
        **{
            name: people_tables.merge(name, (getattr(p, name) for p in parts))
            for name in Partial.PEOPLE_TABLES
        },
        people=all(p.people for p in parts),
    )


def write(partial: Partial, location: Location, prefix: str) -> None:
    """Store a Partial as one Parquet per table plus its quality counters under `prefix`.

    The person tables are written only when computed (`partial.people`), under `{prefix}/people/`.
    """
    for name in Partial.TABLES:
        location.write_frame(f"{prefix}/{name}.parquet", getattr(partial, name))
    if partial.people:
        for name in Partial.PEOPLE_TABLES:
            location.write_frame(f"{prefix}/people/{name}.parquet", getattr(partial, name))
    location.write_bytes(f"{prefix}/quality.json", json.dumps(dict(partial.quality), sort_keys=True).encode())


def read(location: Location, prefix: str) -> Partial:
    """A stored Partial; one written without person tables reads back with `people=False`."""
    tables = {
        name: location.read_frame(f"{prefix}/{name}.parquet").astype(columns)
        for name, columns in zip(Partial.TABLES, (COUNTS, CREATORS, GROUPS, QUARANTINE), strict=True)
    }
    people = location.exists(f"{prefix}/people/{Partial.PEOPLE_TABLES[-1]}.parquet")
    if people:
        for name in Partial.PEOPLE_TABLES:
            frame = location.read_frame(f"{prefix}/people/{name}.parquet")
            tables[name] = frame.astype(people_tables.TABLES[name])
    quality = Counter(json.loads(location.read_bytes(f"{prefix}/quality.json")))
    return Partial(**tables, quality=quality, people=people)

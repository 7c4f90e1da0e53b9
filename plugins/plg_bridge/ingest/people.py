"""Person-level partials of one export file, small and mergeable.

The person models (identity, first touch, activation, exclusions) need a handful of facts per
`distinct_id`, never the events themselves. Each export file is boiled down once to six tables;
partials of different files merge by concatenation plus min / latest / dedupe, so a run as of T
only reads small frames and applies T at the end (every table keeps a time to filter on).

- links:       a, b, kind, timestamp    identity edges: `$identify` (a = identified id, b = its
                                        `$anon_distinct_id`), `$create_alias` / `$merge_dangerously`
                                        (b = `alias`), and `person` (b = the export's person_id);
                                        first time seen. Never through placeholder ids.
- firsts:      distinct_id, event, timestamp       first time each distinct id sent each event
- touches:     distinct_id, origin, tagged, timestamp, utm_source, utm_medium, utm_campaign,
               referring_domain         earliest acquisition record per distinct id x origin x tagged:
                                        origin "set_once" = PostHog's recorded `$initial_*` (from
                                        `$set_once` or the person_properties column), "event" = the
                                        event's own `utm_*` / `$referring_domain`; tagged = has UTM values
- conversions: uuid, distinct_id, org_id, timestamp, contract_value   conversion events, one per uuid
- profiles:    distinct_id, key, value, timestamp  latest `email` / `opt_out` per distinct id and day
                                        (from `$set` and person_properties), so a run as of T sees
                                        what was known before T
- memberships: distinct_id, org_id, timestamp      first time a distinct id acted in an organization
- occurrences: org_id, event, detail, distinct_id, day, timestamp   first time per day a distinct id
                                        sent a signal event (usage ceiling, enterprise feature,
                                        integration, Aha) in an organization, with its detail property
- spans:       distinct_id, event, day, first, last   first and last time per UTC day each distinct
                                        id sent each event: enough to tell whether it sent it
                                        strictly inside a window (PostHog's correlation window,
                                        models/activation.py)

Rows whose distinct_id is a placeholder ("anonymous", "null", ...) describe no one: they are left
out of every table and counted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from plg_bridge.config import ExportSettings, ModelSettings, PqlSettings, SignalSettings

UTM = ("utm_source", "utm_medium", "utm_campaign")
INITIAL = ("$initial_utm_source", "$initial_utm_medium", "$initial_utm_campaign", "$initial_referring_domain")
TOUCH_VALUES = (*UTM, "referring_domain")
IDENTITY_EVENTS = {"$identify": "identify", "$create_alias": "alias", "$merge_dangerously": "merge"}
NIL_UUID = "00000000-0000-0000-0000-000000000000"
EMAIL, OPT_OUT = "email", "opt_out"

_TS = "datetime64[us, UTC]"
TABLES: dict[str, dict[str, str]] = {
    "links": {"a": "str", "b": "str", "kind": "str", "timestamp": _TS},
    "firsts": {"distinct_id": "str", "event": "str", "timestamp": _TS},
    "touches": {
        "distinct_id": "str",
        "origin": "str",
        "tagged": "bool",
        "timestamp": _TS,
        **dict.fromkeys(TOUCH_VALUES, "str"),
    },
    "conversions": {
        "uuid": "str",
        "distinct_id": "str",
        "org_id": "str",
        "timestamp": _TS,
        "contract_value": "float64",
    },
    "profiles": {"distinct_id": "str", "key": "str", "value": "str", "timestamp": _TS},
    "memberships": {"distinct_id": "str", "org_id": "str", "timestamp": _TS},
    "occurrences": {
        "org_id": "str",
        "event": "str",
        "detail": "str",
        "distinct_id": "str",
        "day": _TS,
        "timestamp": _TS,
    },
    "spans": {"distinct_id": "str", "event": "str", "day": _TS, "first": _TS, "last": _TS},
}


def empty(name: str) -> pd.DataFrame:
    """An empty table `name` with its column types."""
    return _empty(name).copy()


@functools.cache
def _empty(name: str) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in TABLES[name].items()})


def signal_events(signals: SignalSettings, pql: PqlSettings) -> dict[str, str | None]:
    """Signal event -> the property holding its detail (None: no detail)."""
    events = {signals.aha_event: None}  # the organization an Aha happened in (signals.aha_reached)
    events.update(
        {
            signals.usage_ceiling_event: None,
            signals.enterprise_event: signals.enterprise_detail,
            pql.integration_event: signals.integration_detail,
        }
    )  # an Aha event that is also a signal event keeps that signal's detail
    return events


def event_properties(cfg: ModelSettings, details: Iterable[str | None] = ()) -> pa.Schema:
    """Keys of `properties` the person tables need (for reader.iter_batches(properties=...))."""
    import pyarrow as pa

    text = pa.string()
    names = dict.fromkeys(
        [*UTM, "$referring_domain", "$anon_distinct_id", "alias", cfg.contract_value_property]
        + [d for d in details if d]
    )
    return pa.schema(
        [pa.field(n, text) for n in names]
        + [
            pa.field("$set", pa.struct([(cfg.email_property, text), (cfg.opt_out_property, text)])),
            pa.field("$set_once", pa.struct([(k, text) for k in INITIAL])),
        ]
    )


def person_properties(cfg: ModelSettings) -> pa.Schema:
    """Keys of the export's `person_properties` column the person tables use, when it is read."""
    import pyarrow as pa

    keys = dict.fromkeys([cfg.email_property, cfg.opt_out_property, *INITIAL])
    return pa.schema([pa.field(k, pa.string()) for k in keys])


def valid_ids(values: pd.Series, placeholder_ids: Iterable[str]) -> pd.Series:
    """True where an id can name someone: not null, not empty, not a placeholder (any case)."""
    placeholders = {p.lower() for p in placeholder_ids} | {"", NIL_UUID}
    return values.notna() & ~values.fillna("").str.strip().str.lower().isin(placeholders)


def _valid_arrow(values: pa.ChunkedArray | pa.Array, placeholder_ids: Iterable[str]) -> pa.Array:
    """valid_ids in Arrow, for whole batches."""
    import pyarrow as pa
    import pyarrow.compute as pc

    placeholders = pa.array(sorted({p.lower() for p in placeholder_ids} | {"", NIL_UUID}), pa.string())
    normal = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    return pc.fill_null(pc.invert(pc.is_in(normal, value_set=placeholders)), False)


def from_slim(
    table: pa.Table,
    exports: ExportSettings,
    cfg: ModelSettings,
    signal_details: dict[str, str | None] | None = None,
) -> tuple[dict[str, pd.DataFrame], int]:
    """The six tables of one slim batch (reader columns plus `event_properties` / `person_properties`).

    Returns the tables and the number of rows left out for a placeholder distinct_id.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    flat = table.flatten()  # struct members become "$set.email", "person_properties.email", ...
    names = set(flat.column_names)
    ok = _valid_arrow(flat.column("distinct_id"), exports.placeholder_ids)
    placeholder_rows = flat.num_rows - pc.sum(ok).as_py() if flat.num_rows else 0
    flat = flat.filter(ok)
    tables: dict[str, pd.DataFrame] = {}

    def grouped_min(sub: pa.Table, keys: list[str]) -> pd.DataFrame:
        out = sub.group_by(keys, use_threads=False).aggregate([("timestamp", "min")])
        return out.rename_columns([*keys, "timestamp"]).to_pandas()

    # firsts: every event, so any event can be a milestone, a signup or an odds-ratio candidate
    has_event = pc.is_valid(flat.column("event"))
    firsts = flat.filter(has_event).select(["distinct_id", "event", "timestamp"])
    tables["firsts"] = _typed("firsts", grouped_min(firsts, ["distinct_id", "event"]))

    org = flat.column("org_id")
    has_org = pc.and_(pc.is_valid(org), pc.not_equal(pc.fill_null(org, ""), ""))
    members = flat.filter(has_org).select(["distinct_id", "org_id", "timestamp"])
    tables["memberships"] = _typed("memberships", grouped_min(members, ["distinct_id", "org_id"]))

    # links: distinct_id <-> person_id (already one row per pair), and the rare identity events
    persons = flat.filter(_valid_arrow(flat.column("person_id"), exports.placeholder_ids))
    person = grouped_min(
        persons.select(["distinct_id", "person_id", "timestamp"]), ["distinct_id", "person_id"]
    )
    links = [
        _typed("links", person.rename(columns={"distinct_id": "a", "person_id": "b"}).assign(kind="person"))
    ]
    rare = flat.filter(pc.fill_null(pc.is_in(flat.column("event"), pa.array(list(IDENTITY_EVENTS))), False))
    if rare.num_rows:
        frame = rare.select(["distinct_id", "event", "timestamp", "$anon_distinct_id", "alias"]).to_pandas()
        other = frame["$anon_distinct_id"].where(frame["event"] == "$identify", frame["alias"])
        frame = frame.assign(a=frame["distinct_id"], b=other, kind=frame["event"].map(IDENTITY_EVENTS))
        frame = frame[valid_ids(frame["b"], exports.placeholder_ids) & (frame["a"] != frame["b"])]
        links.append(reduce("links", frame[["a", "b", "kind", "timestamp"]]))
    tables["links"] = _typed("links", pd.concat(links, ignore_index=True)) if len(links) > 1 else links[0]

    tables["touches"] = _touches(flat, names)  # already the first record per key

    conv = flat.filter(pc.fill_null(pc.equal(flat.column("event"), cfg.conversion_event), False))
    columns = ["uuid", "distinct_id", "org_id", "timestamp", cfg.contract_value_property]
    conv = conv.select(columns).to_pandas()
    value = pd.to_numeric(conv[cfg.contract_value_property].str.strip(), errors="coerce")
    conv = conv.assign(contract_value=value.astype("float64"))
    conv["org_id"] = conv["org_id"].mask(conv["org_id"].fillna("") == "")
    tables["conversions"] = reduce("conversions", conv[list(TABLES["conversions"])])

    tables["profiles"] = reduce("profiles", _profiles(flat, names, cfg))
    tables["occurrences"] = _occurrences(flat.filter(has_org), names, signal_details or {})
    events = flat.filter(has_event).select(["distinct_id", "event", "timestamp"])
    day = pc.floor_temporal(events.column("timestamp"), unit="day")
    spans = events.append_column("day", day).group_by(["distinct_id", "event", "day"], use_threads=False)
    spans = spans.aggregate([("timestamp", "min"), ("timestamp", "max")])
    tables["spans"] = _typed(
        "spans", spans.rename_columns(["distinct_id", "event", "day", "first", "last"]).to_pandas()
    )
    return tables, placeholder_rows


def _occurrences(flat: pa.Table, names: set[str], details: dict[str, str | None]) -> pd.DataFrame:
    import pandas as pd
    import pyarrow.compute as pc

    frames = []
    for event, detail in details.items():
        sub = flat.filter(pc.fill_null(pc.equal(flat.column("event"), event), False))
        if not sub.num_rows:
            continue
        frame = sub.select(["org_id", "event", "distinct_id", "timestamp"]).to_pandas()
        values = sub.column(detail).to_pandas() if detail and detail in names else None
        frame["detail"] = values.str.strip().replace("", None) if values is not None else None
        frames.append(frame.assign(day=frame["timestamp"].dt.floor("D")))
    return reduce("occurrences", pd.concat(frames, ignore_index=True)) if frames else empty("occurrences")


def _blank_to_null(values: pa.Array) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    blank = pc.equal(pc.utf8_trim_whitespace(values), "")
    return pc.if_else(blank, pa.scalar(None, pa.string()), values)


def _first_per(table: pa.Table, keys: list[str], order: list[str]) -> pa.Table:
    """The first row of each `keys` group when sorted by keys + order (nulls last), in Arrow."""
    import pyarrow.compute as pc

    sort = [(c, "ascending", "at_end") for c in [*keys, *order]]
    ordered = table.take(pc.sort_indices(table, sort_keys=sort))
    first = pc.ScalarAggregateOptions(skip_nulls=False)
    out = ordered.group_by(keys, use_threads=False).aggregate([(c, "first", first) for c in order])
    return out.rename_columns([*keys, *order])


def _touches(flat: pa.Table, names: set[str]) -> pd.DataFrame:
    """Candidate acquisition records: recorded `$initial_*` values and the events' own UTM values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = []
    sources = [
        ("set_once", "$set_once.", INITIAL),
        ("set_once", "person_properties.", INITIAL),
        ("event", "", (*UTM, "$referring_domain")),
    ]
    for origin, prefix, keys in sources:
        columns = [prefix + k for k in keys]
        if not set(columns) <= names:
            continue
        values = [_blank_to_null(flat.column(c).combine_chunks()) for c in columns]
        tagged = pc.or_(pc.or_(pc.is_valid(values[0]), pc.is_valid(values[1])), pc.is_valid(values[2]))
        keep = pc.or_(tagged, pc.is_valid(values[3]))
        n = flat.num_rows
        part = pa.table(
            {
                "distinct_id": flat.column("distinct_id"),
                "origin": pa.array([origin] * n, pa.string()) if n else pa.array([], pa.string()),
                "tagged": tagged,
                "timestamp": flat.column("timestamp"),
                **dict(zip(TOUCH_VALUES, values, strict=True)),
            }
        )
        parts.append(part.filter(keep))
    if not parts or not sum(p.num_rows for p in parts):
        return empty("touches")
    table = _first_per(
        pa.concat_tables(parts), ["distinct_id", "origin", "tagged"], ["timestamp", *TOUCH_VALUES]
    )
    return _typed("touches", table.to_pandas())


def _profiles(flat: pa.Table, names: set[str], cfg: ModelSettings) -> pd.DataFrame:
    """(distinct_id, key, value, timestamp) for the email and opt-out person properties."""
    import pandas as pd
    import pyarrow.compute as pc

    frames = []
    for prefix in ("$set.", "person_properties."):
        for key, prop in ((EMAIL, cfg.email_property), (OPT_OUT, cfg.opt_out_property)):
            column = prefix + prop
            if column not in names:
                continue
            sub = flat.filter(pc.is_valid(flat.column(column)))
            if sub.num_rows:
                frame = sub.select(["distinct_id", column, "timestamp"]).to_pandas()
                frames.append(frame.rename(columns={column: "value"}).assign(key=key))
    return pd.concat(frames, ignore_index=True) if frames else empty("profiles")


def reduce(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Collapse a (concatenated) table to its mergeable form; merging is reduce(concat(parts))."""
    if frame.empty:
        return empty(name)
    if name in ("links", "firsts", "memberships", "occurrences"):
        keys = [c for c in TABLES[name] if c != "timestamp"]
        frame = frame.groupby(keys, as_index=False, sort=False, dropna=False)["timestamp"].min()
    elif name == "spans":
        frame = frame.groupby(["distinct_id", "event", "day"], as_index=False, sort=False).agg(
            first=("first", "min"), last=("last", "max")
        )
    elif name == "touches":
        order = ["distinct_id", "origin", "tagged", "timestamp", *TOUCH_VALUES]
        frame = frame.sort_values(order, na_position="last", kind="stable")
        frame = frame.drop_duplicates(["distinct_id", "origin", "tagged"])
    elif name == "conversions":
        frame = frame.sort_values(["uuid", "timestamp", "distinct_id"], kind="stable")
        frame = frame.drop_duplicates("uuid")
    elif name == "profiles":
        day = frame["timestamp"].dt.floor("D")
        frame = frame.assign(day=day).sort_values(
            ["distinct_id", "key", "day", "timestamp", "value"], kind="stable"
        )
        frame = frame.drop_duplicates(["distinct_id", "key", "day"], keep="last")
    return _typed(name, frame)


def _typed(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with exactly the columns of table `name`, in order, with their types."""
    frame = frame[list(TABLES[name])].reset_index(drop=True)
    wrong = {c: t for c, t in TABLES[name].items() if str(frame[c].dtype) != t}
    return frame.astype(wrong) if wrong else frame


def merge(name: str, frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Merge table `name` of several partials (or batches of one file)."""
    import pandas as pd

    parts = [f for f in frames if len(f)]
    if len(parts) <= 1:
        return parts[0] if parts else empty(name)
    return reduce(name, pd.concat(parts, ignore_index=True))


def latest_profiles(profiles: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """The latest value of each key per distinct id (known before `as_of`); ties: the larger value."""
    if as_of is not None:
        profiles = profiles[profiles["timestamp"] < as_of]
    ordered = profiles.sort_values(["distinct_id", "key", "timestamp", "value"], kind="stable")
    return ordered.drop_duplicates(["distinct_id", "key"], keep="last").reset_index(drop=True)

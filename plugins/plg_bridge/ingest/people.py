"""Person-level partials of one export file, small and mergeable.

The person models (identity, first touch, activation, exclusions) need a handful of facts per
`distinct_id`, never the events themselves. Each export file is boiled down once to eight tables;
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
- spans:       distinct_id, event, day, first, last, times   first and last time per UTC day each
                                        distinct id sent each event, and `times`: its other distinct
                                        times that day (strictly between first and last), sorted,
                                        packed as little-endian int64 microseconds since the epoch
                                        (`span_times` reads them); null when the day holds at most
                                        two distinct times. Enough to tell exactly whether the id
                                        sent the event strictly inside any window (PostHog's
                                        correlation window, models/activation.py). Partials written
                                        before `times` existed read back with it null.

Rows whose distinct_id is a placeholder ("anonymous", "null", ...) describe no one: they are left
out of every table and counted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
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
    "spans": {
        "distinct_id": "str",
        "event": "str",
        "day": _TS,
        "first": _TS,
        "last": _TS,
        "times": "binary[pyarrow]",
    },
}
# columns a stored table may lack (written before they existed): read back as null
OPTIONAL = {"spans": ("times",)}
_SPAN_KEYS = ["distinct_id", "event", "day"]


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
    """The eight tables of one slim batch (reader columns plus `event_properties` / `person_properties`).

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
    tables["spans"] = _spans(flat.filter(has_event).select(["distinct_id", "event", "timestamp"]))
    return tables, placeholder_rows


def _spans(events: pa.Table) -> pd.DataFrame:
    """The spans of (distinct_id, event, timestamp) rows: one per id, event and UTC day."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not events.num_rows:
        return empty("spans")
    day = pc.floor_temporal(events.column("timestamp"), unit="day")
    grouped = events.append_column("day", day).group_by(_SPAN_KEYS, use_threads=False)
    grouped = grouped.aggregate([("timestamp", "distinct")])
    distinct = grouped.column("timestamp_distinct").combine_chunks()
    parents = pc.list_parent_indices(distinct).to_numpy()
    values = pc.list_flatten(distinct).cast(pa.int64()).to_numpy()
    first, last, times = _collapse(parents, values, grouped.num_rows)
    return _span_frame(grouped.select(_SPAN_KEYS).to_pandas(), first, last, times)


def _collapse(parents: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Per group 0..n-1 (each with a value): the least and greatest value, and the other distinct
    values packed in order (null when none), from (group, value) pairs in any order, repeats allowed."""
    import numpy as np
    import pyarrow as pa

    order = np.lexsort((values, parents))
    group, value = parents[order], values[order]
    new = np.ones(len(group), dtype=bool)
    new[1:] = (group[1:] != group[:-1]) | (value[1:] != value[:-1])
    group, value = group[new], value[new]
    ids = np.arange(n)
    starts, ends = np.searchsorted(group, ids, "left"), np.searchsorted(group, ids, "right") - 1
    inner = np.ones(len(group), dtype=bool)
    inner[starts] = inner[ends] = False
    counts = np.bincount(group[inner], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts * 8, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"span times of one table exceed 2 GiB ({offsets[-1]} bytes)")
    has = counts > 0
    validity = None if has.all() else pa.array(has).buffers()[1]
    packed = pa.Array.from_buffers(
        pa.binary(),
        n,
        [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(value[inner].astype("<i8"))],
        null_count=int(n - has.sum()),
    )
    return value[starts], value[ends], packed


def _span_frame(keys: pd.DataFrame, first: np.ndarray, last: np.ndarray, times: pa.Array) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    def stamps(micros: np.ndarray) -> pd.Series:
        return pd.Series(pd.to_datetime(micros, unit="us", utc=True), index=keys.index, dtype=_TS)

    binary = pd.ArrowDtype(pa.binary())
    return _typed(
        "spans",
        keys.assign(
            first=stamps(first), last=stamps(last), times=pd.Series(times, index=keys.index, dtype=binary)
        ),
    )


def span_times(times: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Unpack a `times` column: (row position, time in int64 microseconds since the epoch) pairs."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    packed = pa.array(times, type=pa.binary()) if len(times) else pa.array([], pa.binary())
    packed = pc.fill_null(packed, pa.scalar(b"", pa.binary()))  # a null's slot may be non-empty
    if isinstance(packed, pa.ChunkedArray):
        packed = packed.combine_chunks()
    _, offsets_buffer, data = packed.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[packed.offset : packed.offset + len(packed) + 1]
    if not len(packed) or offsets[-1] == offsets[0]:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    values = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]].view("<i8").astype(np.int64)
    rows = np.repeat(np.arange(len(packed)), np.diff(offsets) // 8)
    return rows, values


def _micros(stamps: pd.Series) -> np.ndarray:
    import numpy as np

    return stamps.to_numpy(dtype="datetime64[us]", na_value=np.datetime64("NaT")).view(np.int64)


def _merge_spans(frame: pd.DataFrame) -> pd.DataFrame:
    """One span per id, event and day from several: least first, greatest last, the rest in times."""
    import numpy as np

    group = frame.groupby(_SPAN_KEYS, sort=False, dropna=False).ngroup().to_numpy(np.int64)
    n = int(group.max()) + 1
    if n == len(frame):
        return frame
    rows, inner = span_times(frame["times"])
    parents = np.concatenate([group, group, group[rows]])
    values = np.concatenate([_micros(frame["first"]), _micros(frame["last"]), inner])
    first, last, times = _collapse(parents, values, n)
    keys = frame.loc[~frame.duplicated(_SPAN_KEYS), _SPAN_KEYS].reset_index(drop=True)
    return _span_frame(keys, first, last, times)


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
        frame = _merge_spans(_typed(name, frame))
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
    """`frame` with exactly the columns of table `name`, in order, with their types (a missing
    OPTIONAL column null)."""
    missing = [c for c in OPTIONAL.get(name, ()) if c not in frame.columns]
    if missing:
        frame = frame.assign(**dict.fromkeys(missing))
    frame = frame[list(TABLES[name])].reset_index(drop=True)
    wrong = {c: t for c, t in TABLES[name].items() if str(frame[c].dtype) != t}
    return frame.astype(wrong) if wrong else frame


def stored(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Table `name` as read back from a Parquet partial: its types restored, and a column added
    since it was written (OPTIONAL) null, so older partials stay readable."""
    return _typed(name, frame)


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

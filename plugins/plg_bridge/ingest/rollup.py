"""Per-file partial aggregates, their merge with one count per event, and their storage.

An export file is read once, one record batch at a time, and boiled down to a few small tables
that merge: event counts per organization x event-time day x event, creators per organization x
day x (distinct_id, person_id), the latest group properties per organization, quarantined rows, data-quality
counters, and the fingerprints of the events it counted. A run as of T merges the partials of
the files it may see and applies T only then, so the expensive part never depends on the run's
date and each file's work is done once.

One count per event (PostHog delivers at least once; a re-delivered event keeps its `uuid`, gets
a later `_inserted_at` and can land in any later file): a uuid counts once across every file
merged, and the copy kept is the one with the earliest `_inserted_at` (ties: the earliest export
interval, then file order, then row order). A file keeps one copy per uuid itself; `seen` holds,
per kept PQL-event copy, 24 bytes: a 64-bit hash of its uuid, its `_inserted_at`, and the rows of
`counts` (org x day x event) and `creators` (org x day x ids) it added to; `sources` lists the
files behind a partial as ranges of `seen`. `merge` sorts the hashes once, orders only the uuids
seen more than once, and takes every later copy's contribution back out of the counts and
creators, so merge memory and time follow the counted events in compact numpy form, never the
rows. A 64-bit collision between two different uuids would drop one event: about 1e-5 odds at
20 M events. The person tables (links, firsts, touches, profiles, memberships, occurrences, spans:
first / min / max / latest per key; conversions: one per uuid) keep no fingerprints: a re-delivery
carries the same content, and a second identical copy cannot change a first / min / max / latest.
(Copies that differed, e.g. in person_id, would both reach the person tables: not undone.)
Quality counters: `duplicates` (copies dropped within a file), `duplicates_across_files` (copies
dropped by the merge).

With `people=True` (the default) the same single read also produces the person-level tables of
plg_bridge.ingest.people; the PQL tables are computed from the PQL events exactly as without it.
With `people=False` (`plg-bridge score`) only the identity events are read besides the PQL events:
their `links` and the `$identify` rows of `firsts`, all the PQL model needs to count creators per
PostHog person (models/pql.creator_persons).

Storage: `write` puts every table, then a completion marker `_complete-<digest>.json` LAST whose
name is a digest of the other objects' names and sizes (local writes are tmp + rename; S3 puts are
atomic per object). A prefix without a marker is missing (an unfinished write); one whose listed
sizes do not match its marker, or that cannot be parsed, is damaged: it is named in the log and the
partial's quarantine rows, moved under `quarantine/`, and rebuilt from its export file.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import json
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from plg_bridge.ingest import people as people_tables
from plg_bridge.ingest import reader

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from plg_bridge.config import Settings
    from plg_bridge.storage import Location

log = logging.getLogger(__name__)

GROUP_FIELDS = ("name", "plan", "seat_count", "mrr")
QUALITY_COUNTERS = (
    "rows_read",
    "rows_used",
    "duplicates",
    "duplicates_across_files",
    "missing_org",
    "placeholder_users",
)
# person-level reading: rows parsed, rows left out for a placeholder distinct_id, rows set aside
# for unparseable properties (any event; `quarantined_*` count those of the PQL events only)
PEOPLE_COUNTERS = ("people_rows", "people_placeholder_ids", "people_quarantined")
# a pruned read (rollup_file's window): what the statistics and export intervals let it leave out
PRUNING_COUNTERS = (
    "files_skipped",
    "files_history",
    "row_groups_read",
    "row_groups_history",
    "row_groups_skipped",
)
MARKER = "_complete-"  # + digest + ".json": the completion marker, written last
# bump when a table's columns change meaning; part of a stored partial's prefix (pipeline.partial_prefix),
# so partials of an older format are rolled up again instead of read (2: creators keep both ids)
PARTIAL_FORMAT = 2
QUARANTINE_ROOT = "quarantine"
DAY_US = 86_400_000_000
NO_TIME = (1 << 63) - 1  # `_inserted_at` missing: after any real time
PLACEHOLDER = -1  # cell key of a creation event whose user is a placeholder (not a creator)
NO_ROW, PLACEHOLDER_ROW = -1, -2
CHUNK_ROWS = 1_000_000  # PQL rows per piece of a big file (its per-row arrays, ~40 bytes a row)
PEOPLE_COMPACT = 16
# files read at once by rollup_files; each then reads batches of batch_rows / (4 x this): with
# posthog-js-sized rows (~2 KB) a 131k-row batch holds ~300 MB of Arrow memory while it is parsed,
# and 16k-row batches cost no more CPU (measured), so two files at once stay below one file alone
_SHARE: contextvars.ContextVar[int] = contextvars.ContextVar(
    "plg_rollup_share", default=1
)  # person tables are re-reduced every this many batches (bounds a big file)


class PartialError(RuntimeError):
    """A stored partial cannot be used; `prefix` names it."""

    def __init__(self, message: str, prefix: str) -> None:
        super().__init__(message)
        self.prefix = prefix


class MissingPartialError(PartialError):
    """No completion marker: never written, or the write did not finish."""


class DamagedPartialError(PartialError):
    """The partial's objects do not match its marker or cannot be parsed (it was quarantined)."""


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


_TS = "datetime64[us, UTC]"
COUNTS = {"org_id": "str", "day": _TS, "event": "str", "n": "int64", "cell": "int64"}
# a creator cell keeps both ids of the row (person_id: null when the export has none): the PQL
# model resolves them to PostHog persons through the identity links (models/pql.creator_persons)
CREATORS = {
    "org_id": "str",
    "day": _TS,
    "distinct_id": "str",
    "person_id": "str",
    "n": "int64",
    "cell": "int64",
}
GROUPS = {"org_id": "str", "timestamp": _TS, **dict.fromkeys(GROUP_FIELDS, "str")}
QUARANTINE = {
    "file": "str",
    "row": "int64",
    "uuid": "str",
    "event": "str",
    "reason": "str",
    "properties": "str",
}
# one row per kept PQL-event copy (24 bytes), grouped by file in `sources` order: uuid hash,
# _inserted_at (us, NO_TIME when absent), the row of `counts` it added to (NO_ROW: none) and the
# row of `creators` (NO_ROW: none; PLACEHOLDER_ROW: a creation event by a placeholder user)
SEEN = {"hash": "int64", "inserted": "int64", "cell": "int32", "ucell": "int32"}
# the export files behind a partial: key, interval start, and how many `seen` rows are theirs
SOURCES = {"source": "int32", "key": "str", "start": _TS, "rows": "int64"}
SCHEMAS = {
    "counts": COUNTS,
    "creators": CREATORS,
    "groups": GROUPS,
    "quarantine": QUARANTINE,
    "seen": SEEN,
    "sources": SOURCES,
}


@dataclass
class Partial:
    counts: pd.DataFrame  # org_id, day, event, n, cell
    creators: pd.DataFrame  # org_id, day, distinct_id, person_id, n (creation events), cell
    groups: pd.DataFrame  # org_id, timestamp, name, plan, seat_count, mrr
    quarantine: pd.DataFrame  # file, row, uuid, event, reason, properties (PQL events)
    quality: Counter = field(default_factory=Counter)
    # fingerprints of the counted events and the files they came from (see the module docstring)
    seen: pd.DataFrame = field(default_factory=lambda: _empty(SEEN))
    sources: pd.DataFrame = field(default_factory=lambda: _empty(SOURCES))
    # person-level tables (plg_bridge.ingest.people); empty unless `people` is True
    links: pd.DataFrame = field(default_factory=lambda: people_tables.empty("links"))
    firsts: pd.DataFrame = field(default_factory=lambda: people_tables.empty("firsts"))
    touches: pd.DataFrame = field(default_factory=lambda: people_tables.empty("touches"))
    conversions: pd.DataFrame = field(default_factory=lambda: people_tables.empty("conversions"))
    profiles: pd.DataFrame = field(default_factory=lambda: people_tables.empty("profiles"))
    memberships: pd.DataFrame = field(default_factory=lambda: people_tables.empty("memberships"))
    occurrences: pd.DataFrame = field(default_factory=lambda: people_tables.empty("occurrences"))
    spans: pd.DataFrame = field(default_factory=lambda: _person_default("spans"))
    people: bool = False  # True when every file behind this partial was rolled up with people=True

    TABLES = tuple(SCHEMAS)
    PEOPLE_TABLES = tuple(people_tables.TABLES)


def _person_default(name: str) -> pd.DataFrame | None:
    return people_tables.empty(name) if name in people_tables.TABLES else None


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
    """Group properties per organization merged like PostHog's `$group_set` (ties: the last seen).

    Each field keeps its latest non-empty value: a later `$groupidentify` carrying only `plan`
    does not blank the name. `timestamp` is the latest `$groupidentify`. Partials keep one row
    per organization and day, so a run as of T can still find what was known before T when a
    later file renamed the organization.
    """
    if groups.empty:
        return groups
    ordered = groups.reset_index(drop=True).sort_values("timestamp", kind="stable")
    ordered = ordered.assign(_day=ordered["timestamp"].dt.floor("D"))
    keys = ["org_id", "_day"] if per_day else ["org_id"]
    out = ordered.groupby(keys, sort=False)[["timestamp"]].last()
    for name in GROUP_FIELDS:
        values = ordered[ordered[name].notna() & (ordered[name].astype("str").str.strip() != "")]
        out[name] = values.groupby(keys, sort=False)[name].last()
    out = out.reset_index().sort_values("timestamp", kind="stable")
    return out[list(groups.columns)].astype(groups.dtypes.to_dict()).reset_index(drop=True)


# -- fingerprints -------------------------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 (wrapping arithmetic): spreads every input bit."""
    import numpy as np

    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def hash_text(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash (uint64) of each string's UTF-8 bytes, the same in every batch and file.

    Vectorised over Arrow's buffers: each value is folded 8 bytes at a time (zero-padded), seeded
    with its length; nulls get their own seed (they form one group, as SQL's PARTITION BY does).
    """
    import numpy as np
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    n = len(values)
    if n == 0:
        return np.zeros(0, np.uint64)
    offsets = np.frombuffer(values.buffers()[1], np.int32)[values.offset : values.offset + n + 1]
    starts, lengths = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
    data = values.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    seeds = lengths.astype(np.uint64)
    if values.null_count:
        seeds[~np.asarray(values.is_valid(), bool)] = np.uint64(1 << 40)
    width = int(lengths.max())
    if width and (lengths == width).all() and (np.diff(starts) == width).all():  # uuids: one reshape
        rows = data[starts[0] : starts[0] + n * width].reshape(n, width)
        return _fold(rows, seeds, np.full(n, -(-width // 8)))
    out = np.empty(n, np.uint64)
    step = max(1, (8 << 20) // max(8, width))
    for a in range(0, n, step):
        b = min(n, a + step)
        w = max(1, int(lengths[a:b].max()))
        span = np.arange(w)
        inside = span[None, :] < lengths[a:b, None]
        index = np.where(inside, starts[a:b, None] + span[None, :], 0)
        rows = np.where(inside, data[index] if len(data) else 0, 0).astype(np.uint8)
        out[a:b] = _fold(rows, seeds[a:b], -(-lengths[a:b] // 8))
    return out


def _fold(rows: np.ndarray, seeds: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Hash each row of a zero-padded byte matrix over its first `words` 8-byte lanes."""
    import numpy as np

    n, width = rows.shape
    lanes_n = -(-width // 8)
    if width != lanes_n * 8:
        padded = np.zeros((n, lanes_n * 8), np.uint8)
        padded[:, :width] = rows
        rows = padded
    lanes = np.ascontiguousarray(rows).view(np.uint64)
    h = _mix(seeds ^ np.uint64(0x9E3779B97F4A7C15))
    for i in range(lanes_n):
        h = np.where(i < words, _mix(h ^ lanes[:, i]), h)
    return h


def _combine(*parts: np.ndarray) -> np.ndarray:
    """One int64 key from several uint64 hashes / int64 values, never 0 or PLACEHOLDER."""
    import numpy as np

    h = np.full(len(parts[0]), np.uint64(0x9E3779B97F4A7C15), np.uint64)
    for part in parts:
        h = _mix(h ^ part.astype(np.uint64, copy=False))
    out = h.view(np.int64)
    out[(out == 0) | (out == PLACEHOLDER)] = 2
    return out


def _int64(values: pa.ChunkedArray | pa.Array, null: int) -> np.ndarray:
    """A timestamp / integer column as int64 numpy, nulls replaced by `null`."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.int64()).fill_null(null).to_numpy(zero_copy_only=False)


def first_copies(keys: np.ndarray, *order: np.ndarray) -> np.ndarray:
    """True at the first row of each distinct `keys` value when rows are ordered by `order`
    (then by position). One sort of the keys; only rows whose key repeats are ordered further."""
    import numpy as np

    n = len(keys)
    keep = np.ones(n, bool)
    if n < 2:
        return keep
    by_key = np.argsort(keys, kind="stable")
    sorted_keys = keys[by_key]
    repeat = sorted_keys[1:] == sorted_keys[:-1]
    if not repeat.any():
        return keep
    in_group = np.zeros(n, bool)
    in_group[1:] |= repeat
    in_group[:-1] |= repeat
    rows = by_key[in_group]  # every row sharing its key with another, grouped by key
    ranked = rows[np.lexsort((rows, *(o[rows] for o in reversed(order)), keys[rows]))]
    later = np.zeros(len(ranked), bool)
    later[1:] = keys[ranked[1:]] == keys[ranked[:-1]]
    keep[ranked[later]] = False
    return keep


# -- one file -----------------------------------------------------------------------------------


class _Counter:
    """The PQL rows of one file, batch by batch, as fingerprints plus the cells they add to."""

    def __init__(self, settings: Settings, key: str) -> None:
        import pyarrow as pa

        self.key = key
        self.chunks: list[Partial] = []  # finished CHUNK_ROWS pieces of a big file
        self.quality: Counter = Counter()
        self.rows = 0
        self.breadth = settings.pql.breadth_event
        self.placeholders = pa.array(
            sorted({p.lower() for p in settings.exports.placeholder_ids}), pa.string()
        )
        self._reset()

    def _reset(self) -> None:
        self.columns: dict[str, list[np.ndarray]] = {
            k: [] for k in ("hash", "inserted", "row", "cell", "ucell")
        }
        self.no_org: list[np.ndarray] = []
        self.cells: list[pa.Table] = []
        self.ucells: list[pa.Table] = []
        self.rows = 0

    def add(self, events: pa.Table) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if not events.num_rows:
            return
        org = events.column("org_id")
        has_org = pc.fill_null(pc.not_equal(org, ""), False)
        ts = _int64(events.column("timestamp"), -1)
        day = np.where(ts >= 0, ts // DAY_US * DAY_US, -1)
        counted = np.asarray(has_org, bool) & (ts >= 0)
        h_org = hash_text(org)
        cell = np.where(counted, _combine(h_org, day, hash_text(events.column("event"))), 0)

        person = events.column("person_id")
        person = pc.if_else(
            pc.fill_null(pc.not_equal(person, ""), False), person, pa.scalar(None, pa.string())
        )
        user = pc.coalesce(person, events.column("distinct_id"))
        made = counted & np.asarray(pc.fill_null(pc.equal(events.column("event"), self.breadth), False), bool)
        placeholder = np.asarray(
            pc.fill_null(
                pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(user)), value_set=self.placeholders), True
            ),
            bool,
        )
        ids = _combine(hash_text(events.column("distinct_id")), hash_text(person))
        ucell = np.where(made & ~placeholder, _combine(h_org, day, ids), 0)
        ucell[made & placeholder] = PLACEHOLDER

        self.columns["hash"].append(hash_text(events.column("uuid")).view(np.int64))
        self.columns["inserted"].append(_int64(events.column("inserted_at"), NO_TIME))
        self.columns["row"].append(_int64(events.column("row"), 0).astype(np.int32))  # rows of one file
        self.columns["cell"].append(cell)
        self.columns["ucell"].append(ucell)
        self.no_org.append(~np.asarray(has_org, bool))
        self.rows += events.num_rows

        days = pa.array(day, pa.int64()).cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        for out, keys, names in (
            (self.cells, cell, ("org_id", "day", "event")),
            (self.ucells, ucell, ("org_id", "day", "distinct_id", "person_id")),
        ):
            wanted = np.flatnonzero((keys != 0) & (keys != PLACEHOLDER))
            if not len(wanted):
                continue
            _, first = np.unique(keys[wanted], return_index=True)
            take = pa.array(wanted[first])
            values = {
                "org_id": org,
                "day": days,
                "event": events.column("event"),
                "distinct_id": events.column("distinct_id"),
                "person_id": person,
            }
            out.append(
                pa.table(
                    {name: pc.take(values[name], take) for name in names} | {"cell": pa.array(keys[take])}
                )
            )
        if self.rows >= CHUNK_ROWS:
            self._cut()

    def finish(self, quality: Counter) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """counts, creators, seen and sources of the file; one copy per uuid (earliest
        `_inserted_at`, then row order). A big file was cut into CHUNK_ROWS pieces as it was read
        (bounding the per-row arrays); the pieces merge like files, in row order."""
        if not self.chunks:
            return self._piece(quality)
        self._cut()
        merged = merge(self.chunks)
        self.chunks = []
        merged.quality["duplicates"] += merged.quality.pop("duplicates_across_files", 0)
        quality.update(merged.quality)
        sources = merged.sources.iloc[:1].assign(rows=len(merged.seen))  # one file again
        return merged.counts, merged.creators, merged.seen, sources

    def _cut(self) -> None:
        piece: Counter = Counter()
        counts, creators, seen, sources = self._piece(piece)
        self.chunks.append(
            Partial(counts, creators, _empty(GROUPS), _empty(QUARANTINE), piece, seen=seen, sources=sources)
        )
        self._reset()

    def _piece(self, quality: Counter) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        import numpy as np
        import pandas as pd

        key = self.key

        from plg_bridge.ingest.layout import parse_key

        cols = {}
        for name in list(self.columns):  # one column at a time, each batch list freed once joined
            parts = self.columns.pop(name)
            cols[name] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            del parts
        keep = first_copies(cols["hash"], cols["inserted"], cols["row"])
        no_org = np.concatenate(self.no_org) if self.no_org else np.zeros(0, bool)
        quality["duplicates"] += int((~keep).sum())
        quality["missing_org"] += int((keep & no_org).sum())
        quality["rows_used"] += int((keep & ~no_org).sum())
        quality["placeholder_users"] += int((keep & (cols["ucell"] == PLACEHOLDER)).sum())
        counts = _cell_totals(self.cells, cols["cell"][keep], COUNTS)
        creators = _cell_totals(self.ucells, cols["ucell"][keep], CREATORS)
        ucell = _rows_of(creators["cell"], cols["ucell"][keep])
        ucell[cols["ucell"][keep] == PLACEHOLDER] = PLACEHOLDER_ROW
        seen = pd.DataFrame(
            {
                "hash": cols["hash"][keep],
                "inserted": cols["inserted"][keep],
                "cell": _rows_of(counts["cell"], cols["cell"][keep]),
                "ucell": ucell,
            }
        )
        start = parse_key(key).start
        sources = pd.DataFrame({"source": [0], "key": [key], "start": [start], "rows": [len(seen)]})
        return counts, creators, seen, sources.astype(SOURCES)


def _cell_totals(dictionary: list[pa.Table], cells: np.ndarray, columns: dict[str, str]) -> pd.DataFrame:
    """How many kept copies added to each cell, with the cell's key columns."""
    import numpy as np
    import pyarrow as pa

    cells = cells[(cells != 0) & (cells != PLACEHOLDER)]
    if not len(cells) or not dictionary:
        return _empty(columns)
    keys, n = np.unique(cells, return_counts=True)
    known = pa.concat_tables(dictionary).to_pandas().drop_duplicates("cell").set_index("cell")
    frame = known.reindex(keys).reset_index().assign(n=n)
    return _sorted(frame[list(columns)].astype(columns), columns)


def _rows_of(table_cells: pd.Series, cells: np.ndarray) -> np.ndarray:
    """The row of each cell key in a counts / creators table (NO_ROW when absent: no cell)."""
    import numpy as np
    import pandas as pd

    if not len(table_cells):
        return np.full(len(cells), NO_ROW, np.int32)
    return pd.Index(table_cells).get_indexer(cells).astype(np.int32)


def _sorted(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    keys = [c for c in columns if c not in ("n", "cell")]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """`items` produced by a background thread, at most `depth` ahead of the consumer.

    Arrow releases the GIL while it decodes Parquet and parses JSON, so reading the next batch
    overlaps aggregating this one: one rollup uses two cores. Errors re-raise in the consumer.
    """
    done = object()
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="rollup-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()


def rollup_file(
    location: Location,
    key: str,
    settings: Settings,
    people: bool = True,
    *,
    threads: bool = True,
    window: reader.Window | None = None,
) -> Partial:
    """Read one export object into its Partial. Raises ExportReadError / ExportSchemaError naming it.

    `people=False` reads only the PQL and identity events and keeps, of the person tables, only the
    identity links and `$identify` firsts (identity_tables; `plg-bridge score`).
    Memory follows the record batch (plus the file's compact fingerprints and small tables);
    with `threads` the next batch is read while this one is aggregated (same result).

    `window` (event time [start, end), `people=False` only) prunes the read (reader.iter_batches):
    the PQL tables then hold every event of the window (and whatever else the row groups read
    hold), the group names and identity links all of history before its end; a model must not
    look at counts outside the window. Quality gains files_skipped / row_groups_* counters.
    """
    if window is not None and people:
        raise ValueError("a pruned read has no person tables: window needs people=False")
    import pyarrow as pa
    import pyarrow.compute as pc

    share = _SHARE.get()
    if share > 1:  # one of several files read at once (rollup_files): smaller batches, same result
        rows = max(4_096, settings.exports.batch_rows // (4 * share))
        settings = dataclasses.replace(
            settings, exports=dataclasses.replace(settings.exports, batch_rows=rows)
        )
    events = settings.pql.events
    groups, quarantine = [], []
    person_parts: dict[str, list[pd.DataFrame]] = {name: [] for name in Partial.PEOPLE_TABLES}
    quality: Counter = Counter(dict.fromkeys(QUALITY_COUNTERS, 0))
    if people:
        quality.update(dict.fromkeys(PEOPLE_COUNTERS, 0))
    signal_details = people_tables.signal_events(settings.signals, settings.pql)
    pruning: Counter = Counter()
    batches = reader.iter_batches(
        location,
        key,
        settings.exports,
        None if people else (*events, *people_tables.IDENTITY_EVENTS),
        properties=people_tables.event_properties(settings.models, signal_details.values())
        if people
        else identity_properties(),
        # used when the export's person_properties column is read (exports.schema.OPTIONAL)
        person_properties=people_tables.person_properties(settings.models) if people else None,
        window=window,
        history_events=(reader.GROUP_IDENTIFY, *people_tables.IDENTITY_EVENTS),
        counters=pruning,
    )
    counter = _Counter(settings, key)
    wanted = pa.array(list(events))
    for n, batch in enumerate(prefetched(batches) if threads else batches, 1):
        quality["rows_read"] += batch.rows
        if people:
            tables, placeholder_rows = people_tables.from_slim(
                batch.events, settings.exports, settings.models, signal_details
            )
            for name, table in tables.items():
                person_parts[name].append(table)
                if n % PEOPLE_COMPACT == 0:
                    person_parts[name] = [people_tables.merge(name, person_parts[name])]
            quality["people_rows"] += batch.events.num_rows
            quality["people_placeholder_ids"] += placeholder_rows
            quality["people_quarantined"] += batch.quarantine.num_rows
            # the PQL tables see exactly the rows a PQL-only read would have kept
            is_pql = pc.fill_null(pc.is_in(batch.events.column("event"), value_set=wanted), False)
            counter.add(batch.events.filter(is_pql).select(reader.slim_schema().names))
            is_pql = pc.fill_null(pc.is_in(batch.quarantine.column("event"), value_set=wanted), False)
            quarantine.append(batch.quarantine.filter(is_pql))
        else:
            is_pql = pc.fill_null(pc.is_in(batch.events.column("event"), value_set=wanted), False)
            counter.add(batch.events.filter(is_pql).select(reader.slim_schema().names))
            for name, table in identity_tables(
                batch.events.filter(pc.invert(is_pql)), settings.exports.placeholder_ids
            ).items():
                person_parts[name].append(table)
            is_pql = pc.fill_null(pc.is_in(batch.quarantine.column("event"), value_set=wanted), False)
            quarantine.append(batch.quarantine.filter(is_pql))
        groups.append(batch.groups)

    quarantined = (
        pa.concat_tables(quarantine).to_pandas() if quarantine else _empty(QUARANTINE).drop(columns="file")
    )
    for reason, count in quarantined["reason"].value_counts().items():
        quality[f"quarantined_{reason}"] += int(count)
    quarantined.insert(0, "file", location.uri_of(key))
    counts, creators, seen, sources = counter.finish(quality)
    if window is not None:
        quality.update({k: pruning[k] for k in PRUNING_COUNTERS})

    group_table = (
        pa.concat_tables(groups).to_pandas() if groups else _empty({"timestamp": "str", "properties": "str"})
    )
    return Partial(
        counts=counts,
        creators=creators,
        groups=_group_rows(group_table, settings.exports.group_type),
        quarantine=quarantined.astype(QUARANTINE).reset_index(drop=True),
        quality=quality,
        seen=seen,
        sources=sources,
        **{name: people_tables.merge(name, parts) for name, parts in person_parts.items()},
        people=people,
    )


def identity_properties() -> pa.Schema:
    """The `properties` keys of the identity events (their other id)."""
    import pyarrow as pa

    return pa.schema([pa.field("$anon_distinct_id", pa.string()), pa.field("alias", pa.string())])


def identity_tables(rows: pa.Table, placeholder_ids: Iterable[str]) -> dict[str, pd.DataFrame]:
    """`links` and the `$identify` rows of `firsts` from identity-event rows, as people.from_slim
    makes them (placeholder ids left out): what identity.stitch needs, without the person tables."""
    import pandas as pd

    valid_ids = people_tables.valid_ids
    if not rows.num_rows:
        return {}
    frame = rows.select(["distinct_id", "person_id", "event", "timestamp", "$anon_distinct_id", "alias"])
    frame = frame.to_pandas()
    frame = frame[valid_ids(frame["distinct_id"], placeholder_ids)]
    persons = frame[valid_ids(frame["person_id"], placeholder_ids)]
    persons = persons.assign(a=persons["distinct_id"], b=persons["person_id"], kind="person")
    other = frame["$anon_distinct_id"].where(frame["event"] == "$identify", frame["alias"])
    calls = frame.assign(
        a=frame["distinct_id"], b=other, kind=frame["event"].map(people_tables.IDENTITY_EVENTS)
    )
    calls = calls[valid_ids(calls["b"], placeholder_ids) & (calls["a"] != calls["b"])]
    columns = list(people_tables.TABLES["links"])
    links = pd.concat([persons[columns], calls[columns]], ignore_index=True)
    firsts = frame.loc[frame["event"] == "$identify", ["distinct_id", "event", "timestamp"]]
    return {"links": people_tables.reduce("links", links), "firsts": people_tables.reduce("firsts", firsts)}


R = TypeVar("R")  # what rollup_files' callable makes of one file: a Partial, or its stored quality


def rollup_files(
    location: Location,
    keys: list[str],
    rollup: Callable[[str], R],
    workers: int | None = None,
) -> Iterator[R]:
    """`rollup(key)` for every key on a few threads (the machine's cores), yielded in key order.

    At most `workers` files are read at once (default: the cores, at most 4), each in batches of
    `exports.batch_rows / (4 x workers)` rows, so the bytes in flight stay below those of one file
    read alone. Results are those of the serial loop: each file's partial is its own.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or min(4, os.cpu_count() or 1)
    location.fs  # noqa: B018 - create the (S3) filesystem and its credentials once, before the threads
    if workers <= 1 or len(keys) <= 1:
        yield from (rollup(k) for k in keys)
        return
    token = _SHARE.set(workers)
    try:
        context = contextvars.copy_context()
    finally:
        _SHARE.reset(token)

    def one(key: str) -> R:
        return context.copy().run(rollup, key)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rollup") as pool:
        futures = [pool.submit(one, k) for k in keys[:workers]]
        for i in range(len(keys)):
            result = futures[i].result()
            futures[i] = None  # type: ignore[call-overload]  # let the partial go once yielded
            if i + workers < len(keys):
                futures.append(pool.submit(one, keys[i + workers]))
            yield result


# -- merge --------------------------------------------------------------------------------------


def merge(partials: Iterable[Partial], *, keep_seen: bool = True) -> Partial:
    """Combine partials of different files; the result is again a Partial.

    One count per event: a uuid seen in several partials keeps its earliest copy (`_inserted_at`,
    then export interval, then file); the later copies' counts and creators are taken back out.
    The result does not depend on the order of `partials`. `keep_seen=False` leaves the result's
    fingerprints out (a merge that will not be merged again, e.g. `plg-bridge score`): less memory.
    """
    import numpy as np
    import pandas as pd

    parts = list(partials)
    if not parts:
        return Partial(_empty(COUNTS), _empty(CREATORS), _empty(GROUPS), _empty(QUARANTINE), Counter())

    def cat(name: str, columns: dict[str, str]) -> pd.DataFrame:
        frames = [getattr(p, name) for p in parts if len(getattr(p, name))]
        return pd.concat(frames, ignore_index=True).astype(columns) if frames else _empty(columns)

    sources = cat("sources", SOURCES)
    sources["source"] = np.arange(len(sources), dtype=np.int32)
    seen = _Seen(parts, sources)
    lost = seen.later_copies()
    quality: Counter = Counter()
    for p in parts:
        quality.update(p.quality)
    cell, ucell = seen.gather("cell", lost), seen.gather("ucell", lost)
    if len(lost):
        quality["duplicates_across_files"] += len(lost)
        quality["rows_used"] -= int((cell != NO_ROW).sum())
        quality["placeholder_users"] -= int((ucell == PLACEHOLDER_ROW).sum())
    counts, count_rows = _undo(cat("counts", COUNTS), seen.global_rows("counts", lost, cell), COUNTS)
    creators, creator_rows = _undo(
        cat("creators", CREATORS), seen.global_rows("creators", lost, ucell), CREATORS
    )
    if keep_seen:
        kept, sources = seen.kept(lost, count_rows, creator_rows)
    else:
        kept, sources = _empty(SEEN), sources.assign(rows=0)
    return Partial(
        counts=counts,
        creators=creators,
        groups=latest_groups(cat("groups", GROUPS), per_day=True),
        quarantine=cat("quarantine", QUARANTINE),
        quality=quality,
        seen=kept,
        sources=sources,
        **{
            name: people_tables.merge(name, (getattr(p, name) for p in parts))
            for name in Partial.PEOPLE_TABLES
        },
        people=all(p.people for p in parts),
    )


class _Seen:
    """The `seen` rows of several partials, addressed as one sequence without copying them all."""

    def __init__(self, parts: list[Partial], sources: pd.DataFrame) -> None:
        import numpy as np

        self.parts = parts
        self.sizes = np.array([len(p.seen) for p in parts], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        self.offsets = {
            name: np.concatenate([[0], np.cumsum([len(getattr(p, name)) for p in parts])])
            for name in ("counts", "creators")
        }
        self.sources = sources
        self.bounds = np.cumsum(sources["rows"].to_numpy(np.int64))  # seen rows end of each source
        if self.bounds[-1:].sum() != self.starts[-1]:
            raise ValueError("partial fingerprints do not match their sources (a partial of another format?)")
        order = sources.assign(unknown=sources["start"].isna()).sort_values(
            ["unknown", "start", "key", "source"], kind="stable"
        )
        self.rank = np.empty(len(sources), np.int64)  # export interval start (unknown last), then key
        self.rank[order["source"].to_numpy()] = np.arange(len(sources))

    def column(self, name: str) -> np.ndarray:
        import numpy as np

        arrays = [p.seen[name].to_numpy() for p in self.parts if len(p.seen)]
        return np.concatenate(arrays) if arrays else np.zeros(0, SEEN[name])

    def gather(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Column `name` at global rows `rows` (sorted)."""
        import numpy as np

        out = np.empty(len(rows), SEEN[name])
        part = np.searchsorted(self.starts, rows, side="right") - 1
        for i in np.unique(part):
            at = part == i
            out[at] = self.parts[i].seen[name].to_numpy()[rows[at] - self.starts[i]]
        return out

    def later_copies(self) -> np.ndarray:
        """Global rows of every copy but the first of each uuid (sorted)."""
        import numpy as np

        keys = self.column("hash")
        if len(keys) < 2:
            return np.zeros(0, np.int64)
        by_key = np.argsort(keys, kind="stable")
        sorted_keys = keys[by_key]
        repeat = sorted_keys[1:] == sorted_keys[:-1]
        del sorted_keys
        if not repeat.any():
            return np.zeros(0, np.int64)
        in_group = np.zeros(len(keys), bool)
        in_group[1:] |= repeat
        in_group[:-1] |= repeat
        rows = np.sort(by_key[in_group])
        del by_key, in_group
        rank = self.rank[np.searchsorted(self.bounds, rows, side="right")]
        ranked = rows[np.lexsort((rows, rank, self.gather("inserted", rows), keys[rows]))]
        later = np.zeros(len(ranked), bool)
        later[1:] = keys[ranked[1:]] == keys[ranked[:-1]]
        return np.sort(ranked[later])

    def global_rows(self, table: str, rows: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Rows of the concatenated `table` that the seen `rows` point to (none: left out)."""
        import numpy as np

        part = np.searchsorted(self.starts, rows, side="right") - 1
        has = local >= 0
        return (self.offsets[table][part] + local)[has].astype(np.int64)

    def kept(self, lost: np.ndarray, count_rows: np.ndarray, creator_rows: np.ndarray):
        """The merged `seen` (the first copies, cells renumbered to the merged tables) and sources."""
        import numpy as np
        import pandas as pd

        keep = np.ones(self.starts[-1], bool)
        keep[lost] = False
        columns = {"hash": [], "inserted": [], "cell": [], "ucell": []}
        for i, p in enumerate(self.parts):
            if not len(p.seen):
                continue
            mask = keep[self.starts[i] : self.starts[i + 1]]
            for name in ("hash", "inserted"):
                columns[name].append(p.seen[name].to_numpy()[mask])
            for name, table, new in (("cell", "counts", count_rows), ("ucell", "creators", creator_rows)):
                local = p.seen[name].to_numpy()[mask]
                if len(new):
                    at = np.minimum(
                        self.offsets[table][i] + np.maximum(local, 0), len(new) - 1
                    )  # empty table
                    local = np.where(local >= 0, new[at], local)
                moved = local
                columns[name].append(moved.astype(np.int32))
        frame = pd.DataFrame(
            {k: np.concatenate(v) if v else np.zeros(0, SEEN[k]) for k, v in columns.items()}
        )
        dropped = np.bincount(np.searchsorted(self.bounds, lost, side="right"), minlength=len(self.sources))
        sources = self.sources.assign(rows=self.sources["rows"].to_numpy(np.int64) - dropped)
        return frame, sources


def _undo(
    frame: pd.DataFrame, lost_rows: np.ndarray, columns: dict[str, str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """Sum `n` per cell, less one for every dropped copy that had added to the row `lost_rows`
    names; returns the table and, per input row, its row in the result (NO_ROW when gone)."""
    import numpy as np
    import pandas as pd

    if frame.empty:
        return frame, np.zeros(0, np.int64)
    codes, cells = pd.factorize(frame["cell"])
    n = np.bincount(codes, weights=frame["n"].to_numpy(np.float64), minlength=len(cells))
    if len(lost_rows):
        n -= np.bincount(codes[lost_rows], minlength=len(cells))
    _, first = np.unique(codes, return_index=True)
    out = frame.iloc[first].assign(n=n.astype(np.int64))
    out = out[out["n"] > 0]
    keys = [c for c in columns if c not in ("n", "cell")]
    out = out.sort_values(keys, kind="stable")
    position = np.full(len(cells), NO_ROW, np.int64)
    position[codes[out.index.to_numpy()]] = np.arange(len(out))
    return out[list(columns)].astype(columns).reset_index(drop=True), position[codes]


# -- storage ------------------------------------------------------------------------------------


def _digest(sizes: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(sorted(sizes.items())).encode()).hexdigest()[:16]


def write(partial: Partial, location: Location, prefix: str) -> None:
    """Store a Partial under `prefix`: one Parquet per table, quality.json, then the marker LAST.

    The person tables are written only when computed (`partial.people`), under `{prefix}/people/`.
    A partial rebuilt after its damaged predecessor was quarantined says so (quality
    `partials_rebuilt`, and a quarantine row naming the damaged object and the damage).
    """
    from plg_bridge.storage import parquet_bytes

    note = f"{QUARANTINE_ROOT}/{prefix}/reason.json"
    if location.exists(note):
        reason = json.loads(location.read_bytes(note))
        partial.quality["partials_rebuilt"] += 1
        row = [
            reason.get("object", location.uri_of(prefix)),
            -1,
            None,
            None,
            "damaged_partial",
            reason["reason"],
        ]
        partial.quarantine = _with_row(partial.quarantine, row)
        location.write_bytes(f"{QUARANTINE_ROOT}/{prefix}/rebuilt.json", json.dumps(reason).encode())
        location.delete(note)
    for obj in location.child(prefix).list():  # an older marker must not vouch for the new objects
        if obj.key.rsplit("/", 1)[-1].startswith(MARKER):
            location.delete(f"{prefix}/{obj.key}")
    sizes: dict[str, int] = {}
    names = list(Partial.TABLES) + ([f"people/{n}" for n in Partial.PEOPLE_TABLES] if partial.people else [])
    for name in names:
        data = parquet_bytes(getattr(partial, name.removeprefix("people/")))
        location.write_bytes(f"{prefix}/{name}.parquet", data)
        sizes[f"{name}.parquet"] = len(data)
    quality = json.dumps(dict(partial.quality), sort_keys=True).encode()
    location.write_bytes(f"{prefix}/quality.json", quality)
    sizes["quality.json"] = len(quality)
    body = json.dumps({"objects": sizes, "people": partial.people}, sort_keys=True).encode()
    location.write_bytes(f"{prefix}/{MARKER}{_digest(sizes)}.json", body)


def _with_row(frame: pd.DataFrame, row: list) -> pd.DataFrame:
    import pandas as pd

    added = pd.DataFrame([row], columns=list(QUARANTINE)).astype(QUARANTINE)
    return pd.concat([frame, added], ignore_index=True) if len(frame) else added


def check(location: Location, prefix: str, listed: dict[str, int] | None = None) -> dict[str, int]:
    """The objects of a finished partial (relative name -> size), after checking them against the
    marker: MissingPartialError without a marker, DamagedPartialError naming what differs."""
    if listed is None:
        listed = {o.key: o.size for o in location.child(prefix).list()}
    markers = [k for k in listed if k.rsplit("/", 1)[-1].startswith(MARKER)]
    if not markers:
        raise MissingPartialError(
            f"{location.uri_of(prefix)}: no completion marker (not written, or unfinished)", prefix
        )
    marker = markers[0]
    base = [f"{name}.parquet" for name in Partial.TABLES] + ["quality.json"]
    for names in (base, base + [f"people/{name}.parquet" for name in Partial.PEOPLE_TABLES]):
        objects = {name: listed[name] for name in names if name in listed}  # others (a manifest) aside
        if len(objects) == len(names) and marker == f"{MARKER}{_digest(objects)}.json":
            return objects
    try:
        expected = json.loads(location.read_bytes(f"{prefix}/{marker}"))["objects"]
        why = []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        expected, why = {}, [f"{location.uri_of(f'{prefix}/{marker}')}: unreadable marker ({exc})"]
    for name in sorted(expected):
        if name not in listed:
            why.append(f"{location.uri_of(f'{prefix}/{name}')}: missing")
        elif expected[name] != listed[name]:
            why.append(
                f"{location.uri_of(f'{prefix}/{name}')}: {listed[name]} bytes, expected {expected[name]}"
            )
    raise DamagedPartialError("damaged partial: " + "; ".join(why or [f"{marker} does not match"]), prefix)


def quarantine(location: Location, prefix: str, reason: str) -> str:
    """Move every object of `prefix` under `quarantine/<prefix>/` with a reason.json; returns it."""
    target = f"{QUARANTINE_ROOT}/{prefix}"
    for obj in location.child(prefix).list():
        location.move(f"{prefix}/{obj.key}", f"{target}/{obj.key}")
    note = {"object": location.uri_of(prefix), "reason": reason}
    location.write_bytes(f"{target}/reason.json", json.dumps(note, sort_keys=True).encode())
    log.error(
        "quarantined damaged partial %s to %s: %s", location.uri_of(prefix), location.uri_of(target), reason
    )
    return location.uri_of(target)


def finished(location: Location, root: str = "partials") -> set[str]:
    """Prefixes under `root` holding a sound partial, from one LIST. A damaged one (its objects'
    sizes differ from its marker: an empty quality.json, a truncated Parquet) is quarantined and
    left out, so the caller rebuilds it; one without a marker is left out (missing)."""
    by_dir: dict[str, dict[str, int]] = {}
    listed = location.child(root).list()
    prefixes = {
        o.key.rsplit("/", 1)[0] for o in listed if "/" in o.key and o.key.rsplit("/", 1)[1].startswith(MARKER)
    }
    for obj in listed:
        parent = obj.key.rsplit("/", 1)[0] if "/" in obj.key else ""
        for candidate in (parent, parent.rsplit("/", 1)[0] if "/" in parent else None):
            if candidate in prefixes:
                by_dir.setdefault(candidate, {})[obj.key[len(candidate) + 1 :]] = obj.size
                break
    sound = set()
    for prefix, objects in by_dir.items():
        full = f"{root}/{prefix}"
        try:
            check(location, full, objects)
        except DamagedPartialError as exc:
            quarantine(location, full, str(exc))
            continue
        sound.add(full)
    return sound


def read(location: Location, prefix: str) -> Partial:
    """A stored Partial; one written without person tables reads back with `people=False`.

    Raises MissingPartialError (no marker) or DamagedPartialError (objects differ from the marker
    or cannot be parsed; the partial is quarantined first, so the next rollup rebuilds it).
    """
    import pyarrow as pa

    from plg_bridge.storage import StorageError

    try:
        objects = check(location, prefix)
    except DamagedPartialError as exc:
        quarantine(location, prefix, str(exc))
        raise
    people = f"people/{Partial.PEOPLE_TABLES[-1]}.parquet" in objects
    current = prefix
    try:
        tables = {}
        for name, columns in SCHEMAS.items():
            current = f"{prefix}/{name}.parquet"
            tables[name] = location.read_frame(current).astype(columns)
        if people:
            for name in Partial.PEOPLE_TABLES:
                current = f"{prefix}/people/{name}.parquet"
                tables[name] = people_tables.stored(name, location.read_frame(current))
        current = f"{prefix}/quality.json"
        quality = json.loads(location.read_bytes(current))
        if not isinstance(quality, dict):
            raise ValueError("not a JSON object")
    except (OSError, StorageError, pa.ArrowException, ValueError, KeyError, TypeError) as exc:
        reason = f"{location.uri_of(current)}: {type(exc).__name__}: {exc}"
        quarantine(location, prefix, reason)
        raise DamagedPartialError(f"damaged partial {reason}", prefix) from exc
    return Partial(**tables, quality=Counter(quality), people=people)

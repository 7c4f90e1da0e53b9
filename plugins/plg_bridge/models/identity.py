"""Identity stitching: which distinct ids are one person, as of T, by PostHog's merge rules.

PostHog's ingestion (plugin-server PersonMergeService) decides which events merge persons:

- `$identify` (distinct_id = A, `$anon_distinct_id` = B), `$create_alias` (distinct_id = A,
  `alias` = B) and `$merge_dangerously` (distinct_id = A, `alias` = B) merge B's person into A's.
- The merge is refused when B's person is already identified, except for `$merge_dangerously`:
  user B logging in on user A's machine (`$identify(usr_b, $anon_distinct_id=usr_a)`) leaves two
  persons ("cannot_merge_already_identified").
- Every such call marks A's person identified, merged or not; an `$identify` without
  `$anon_distinct_id` (a server-side identify) identifies A's person too.
- Ids on PostHog's illegal list (`isDistinctIdIllegal`: blank after trimming; "anonymous",
  "guest", "distinctid", "distinct_id", "id", "not_authenticated", "email", "undefined", "true",
  "false" in any case; "[object Object]", "NaN", "None", "none", "null", "0"; each also in
  quotes) never merge anything. We compare them trimmed and in any case, together with the
  configured `exports.placeholder_ids`.
- The export's `person_id` is the person PostHog had for the row's distinct id at ingestion: two
  distinct ids that share one were merged by PostHog under these rules, so they are one person.

Links are applied in event-time order (ties: kind, then ids), whatever file or day they arrive
in: a late `$identify` joins the anonymous events already rolled up as soon as it shows up, and a
rerun as of T reproduces. (PostHog applies them in arrival order; for a late link that races
another link on the same anonymous id the two orders can differ: event time is the one an export
can reproduce.) Only links before T count.

The person key is deterministic: the smallest distinct id of the person that sent an `$identify`
(with or without `$anon_distinct_id`): the id the destinations know; else its smallest distinct
id. Person ids are never keys: they change when PostHog merges persons, distinct ids do not.
The SQL twin is include/sql/duckdb/identity.sql.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from plg_bridge.ingest.rollup import Partial

COLUMNS = ["distinct_id", "person_key"]
IDENTIFY = "$identify"
# PostHog's isDistinctIdIllegal lists (compared here trimmed and case-insensitively, quoted too)
POSTHOG_ILLEGAL_IDS = (
    "anonymous",
    "guest",
    "distinctid",
    "distinct_id",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "true",
    "false",
    "[object object]",
    "nan",
    "none",
    "null",
    "0",
)


def illegal_ids(placeholder_ids: Iterable[str] = ()) -> tuple[str, ...]:
    """Lower-cased ids that never merge: PostHog's list (bare and quoted) plus `placeholder_ids`."""
    bare = [*POSTHOG_ILLEGAL_IDS, *(p.strip().lower() for p in placeholder_ids)]
    return tuple(sorted({*bare, *(f"'{i}'" for i in bare), *(f'"{i}"' for i in bare), ""}))


def components(left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    """Connected-component label (the smallest node index) of each of `n` nodes, given edges.

    Min-label propagation with pointer jumping: every round each edge pulls both ends to the
    smaller label, then labels follow their own labels to a fixed point; it ends when no label
    moves. Vectorized numpy; the rounds grow with the log of the longest chain, not with n.
    """
    import numpy as np

    labels = np.arange(n, dtype=np.int64)
    while True:
        low = np.minimum(labels[left], labels[right])
        before = labels.copy()
        np.minimum.at(labels, left, low)
        np.minimum.at(labels, right, low)
        while True:  # pointer jumping: a label's label is a better label
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            return labels


def _merges(
    base: np.ndarray,
    since: np.ndarray,
    *,
    a: np.ndarray,
    b: np.ndarray,
    dangerous: np.ndarray,
    when: np.ndarray,
) -> np.ndarray:
    """Apply the merge calls (already in event-time order) over `base` labels; new labels.

    `since[label]` is when that base person became identified (int64 ns, max = never). A call
    merges b's person into a's unless b's person was identified by then (and the call is not a
    `$merge_dangerously`); every call identifies a's person from its time on.
    """
    import numpy as np

    parent = np.arange(len(base), dtype=np.int64)
    since = since.copy()

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for i in range(len(a)):
        ra, rb, t = find(base[a[i]]), find(base[b[i]]), when[i]
        if ra != rb and (dangerous[i] or since[rb] > t):
            low, high = min(ra, rb), max(ra, rb)
            parent[high] = low
            since[low] = min(since[low], since[high], t)
            ra = low
        since[ra] = min(since[ra], t)
    while True:  # every node straight to its root (pointer jumping), then each base label's root
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent[base]
        parent = jumped


def stitch(
    links: pd.DataFrame,
    as_of: datetime | None = None,
    placeholder_ids: Iterable[str] = (),
    distinct_ids: Iterable[str] | pd.Series | None = None,
    firsts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Person key of every distinct id in `links` (seen before `as_of`) and in `distinct_ids`.

    `links` is the merged `Partial.links` (a, b, kind, timestamp; kind "person" means b is a
    person_id). `firsts` (the merged `Partial.firsts`) supplies every distinct id's first
    `$identify`, so a server-side identify (no `$anon_distinct_id`, hence no link) identifies;
    without it only the `$identify` links do. Returns `distinct_id, person_key`, one row per
    distinct id, sorted; an id without links is its own person.

    The T-independent work (Stitcher) is kept for the last (links, firsts) frames stitched: the
    PQL daily scores stitch the same links as of each day of their lookback.
    """
    return _stitcher(links, placeholder_ids, firsts).at(as_of, distinct_ids)


_LAST: list = []  # [(weakref to links, weakref to firsts or None, illegal ids, Stitcher)]


def _stitcher(links: pd.DataFrame, placeholder_ids: Iterable[str], firsts: pd.DataFrame | None) -> Stitcher:
    """The Stitcher of these very frames (the models never modify a frame in place), else a new one."""
    import weakref

    illegal = illegal_ids(placeholder_ids)
    if _LAST:
        links_ref, firsts_ref, kept_illegal, stitcher = _LAST[0]
        same_firsts = firsts is None if firsts_ref is None else firsts_ref() is firsts
        if links_ref() is links and same_firsts and kept_illegal == illegal:
            return stitcher
    stitcher = Stitcher(links, illegal, firsts)
    _LAST[:] = [(weakref.ref(links), None if firsts is None else weakref.ref(firsts), illegal, stitcher)]
    return stitcher


class Stitcher:
    """`stitch` for one set of links and firsts at any number of as-of times: validity filters,
    the id codes (sorted, so the smallest code is the smallest id), timestamps and the event-time
    order of the merge calls are computed once; `at(T)` keeps what happened before T.

    Ids absent before T (no link, no `$identify` before T) are isolated nodes at T: they join no
    component and are left out of the answer, so coding every id up front changes nothing."""

    def __init__(self, links: pd.DataFrame, illegal: tuple[str, ...], firsts: pd.DataFrame | None) -> None:
        import numpy as np
        import pandas as pd

        from plg_bridge.ingest.people import valid_ids

        self.illegal = illegal
        links = links[valid_ids(links["a"], illegal) & valid_ids(links["b"], illegal)]
        links = links[links["a"] != links["b"]]
        is_person = (links["kind"] == "person").to_numpy(bool)
        marks = [
            links.loc[links["kind"] == "identify", ["a", "timestamp"]].rename(columns={"a": "distinct_id"})
        ]
        if firsts is not None:
            rows = firsts.loc[firsts["event"] == IDENTIFY, ["distinct_id", "timestamp"]]
            marks.append(rows[valid_ids(rows["distinct_id"], illegal)])
        marks = pd.concat(marks, ignore_index=True)
        n_links, n_calls = len(links), int((~is_person).sum())
        ids = pd.concat([links["a"], links["b"][~is_person], marks["distinct_id"]], ignore_index=True)
        codes, names = pd.factorize(ids.astype("str"), sort=True)
        self.objects = np.asarray(names, dtype=object)
        self.names = pd.Index(pd.array(self.objects, dtype="str"))
        n = self.n = len(names)
        a = codes[:n_links]
        b = np.empty(n_links, dtype=np.int64)
        b[~is_person] = codes[n_links : n_links + n_calls]
        person_codes, _ = pd.factorize(links["b"][is_person], sort=True)
        b[is_person] = n + person_codes
        self.n_nodes = n + int(person_codes.max(initial=-1)) + 1
        link_ns = _ns(links["timestamp"])
        self.person = (a[is_person], b[is_person], link_ns[is_person])
        calls = links[~is_person]
        kind_rank = calls["kind"].map({"identify": 0, "alias": 1, "merge": 2}).to_numpy(np.int64)
        call_ns = link_ns[~is_person]
        order = np.lexsort((b[~is_person], a[~is_person], kind_rank, call_ns))
        dangerous = (calls["kind"] == "merge").to_numpy(bool)
        self.calls = (a[~is_person][order], b[~is_person][order], dangerous[order], call_ns[order])
        self.marks = (codes[n_links + n_calls :], _ns(marks["timestamp"]))

    def at(
        self, as_of: datetime | None = None, distinct_ids: Iterable[str] | pd.Series | None = None
    ) -> pd.DataFrame:
        """`stitch(links, as_of, placeholder_ids, distinct_ids, firsts)` (module rules)."""
        import numpy as np
        import pandas as pd

        from plg_bridge.ingest.people import valid_ids

        never = np.iinfo(np.int64).max
        t = never if as_of is None else _instant_ns(as_of)
        n = self.n
        present = np.zeros(n, dtype=bool)
        pa_, pb, pns = self.person
        live = pns < t
        present[pa_[live]] = True
        base = components(pa_[live], pb[live], self.n_nodes)[:n]
        ca, cb, dangerous, cns = self.calls
        now = cns < t
        present[ca[now]] = True
        present[cb[now]] = True
        mark_codes, mark_ns = self.marks
        marked = mark_ns < t
        mark_codes = mark_codes[marked]
        present[mark_codes] = True
        since = np.full(n, never, dtype=np.int64)
        np.minimum.at(since, base[mark_codes], mark_ns[marked])
        labels = _merges(base, since, a=ca[now], b=cb[now], dangerous=dangerous[now], when=cns[now])

        extra = pd.Series([] if distinct_ids is None else distinct_ids, dtype="str")
        extra_codes = self.names.get_indexer(extra)  # every coded id is valid
        present[extra_codes[extra_codes >= 0]] = True
        extra = extra[extra_codes < 0]
        extra = extra[valid_ids(extra, self.illegal)]
        identified = np.zeros(n, dtype=bool)
        identified[mark_codes] = True
        # codes follow sorted ids, so the smallest code is the smallest id; identified ones first
        rank = np.where(identified, np.arange(n), n + np.arange(n))
        kept = np.flatnonzero(present)
        best = np.full(n, 2 * n, dtype=np.int64)
        np.minimum.at(best, labels[kept], rank[kept])
        key = best[labels[kept]]
        key_codes = np.where(key >= n, key - n, key)
        names = self.objects
        out = pd.DataFrame(
            {
                "distinct_id": pd.array(names[kept], dtype="str"),
                "person_key": pd.array(names[key_codes], dtype="str"),
            }
        )
        unknown = pd.unique(extra.to_numpy(dtype=object))
        if len(unknown):  # ids seen nowhere else: their own persons
            alone = pd.array(np.asarray(unknown, dtype=object), dtype="str")
            out = pd.concat(
                [out, pd.DataFrame({"distinct_id": alone, "person_key": alone})], ignore_index=True
            )
            out = out.sort_values("distinct_id", kind="stable", ignore_index=True)
        return out


def persons(partial: Partial, as_of: datetime | None, placeholder_ids: Iterable[str] = ()) -> pd.DataFrame:
    """`stitch` over everything a merged partial saw: its links, and every distinct id with a
    first time (so ids that never linked are persons of their own)."""
    return stitch(partial.links, as_of, placeholder_ids, partial.firsts["distinct_id"], partial.firsts)


def _instant_ns(when: datetime) -> int:
    """One instant as int64 nanoseconds since the epoch (naive: UTC, as pd.to_datetime(utc=True))."""
    import pandas as pd

    stamp = pd.Timestamp(when)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int(stamp.as_unit("ns").value)


def _ns(values: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC); a missing one is just before never
    (kept without an as-of, like the row filter `timestamp < T` which drops it)."""
    import numpy as np
    import pandas as pd

    stamps = pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")
    ns = stamps.astype("int64").to_numpy(copy=True)
    ns[stamps.isna().to_numpy()] = np.iinfo(np.int64).max - 1
    return ns


def person_of(ids: pd.Series, keys: pd.DataFrame) -> pd.Series:
    """Map distinct ids to person keys (`stitch` output); unknown ids are their own person."""
    mapped = ids.map(keys.set_index("distinct_id")["person_key"])
    return mapped.fillna(ids).astype("str")

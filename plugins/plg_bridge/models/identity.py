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
    return np.fromiter((find(x) for x in base), dtype=np.int64, count=len(base))


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
    """
    import numpy as np
    import pandas as pd

    from plg_bridge.ingest.people import valid_ids

    illegal = illegal_ids(placeholder_ids)
    t = None if as_of is None else pd.Timestamp(as_of)
    if t is not None:
        links = links[links["timestamp"] < t]
    links = links[valid_ids(links["a"], illegal) & valid_ids(links["b"], illegal)]
    links = links[links["a"] != links["b"]]
    marks = _identifies(links, firsts, t, illegal)
    is_person = (links["kind"] == "person").to_numpy(bool)
    extra = pd.Series([] if distinct_ids is None else distinct_ids, dtype="str")
    extra = extra[valid_ids(extra, illegal)]

    ids = pd.concat([links["a"], links["b"][~is_person], marks["distinct_id"], extra], ignore_index=True)
    id_codes, id_names = pd.factorize(ids, sort=True)
    n_ids = len(id_names)
    n_links = len(links)
    a = id_codes[:n_links]
    b = np.empty(n_links, dtype=np.int64)
    b[~is_person] = id_codes[n_links : n_links + int((~is_person).sum())]
    person_codes, _ = pd.factorize(links["b"][is_person], sort=True)
    b[is_person] = n_ids + person_codes
    # the export's person_id: PostHog's own merges, applied whole
    base = components(a[is_person], b[is_person], n_ids + int(person_codes.max(initial=-1)) + 1)[:n_ids]

    never = np.iinfo(np.int64).max
    mark_codes = id_codes[n_links + int((~is_person).sum()) : n_links + int((~is_person).sum()) + len(marks)]
    mark_ns = _ns(marks["timestamp"])
    since = np.full(n_ids, never, dtype=np.int64)
    np.minimum.at(since, base[mark_codes], mark_ns)

    calls = links[~is_person]
    kind_rank = calls["kind"].map({"identify": 0, "alias": 1, "merge": 2}).to_numpy(np.int64)
    order = np.lexsort((b[~is_person], a[~is_person], kind_rank, _ns(calls["timestamp"])))
    labels = _merges(
        base,
        since,
        a=a[~is_person][order],
        b=b[~is_person][order],
        dangerous=(calls["kind"] == "merge").to_numpy(bool)[order],
        when=_ns(calls["timestamp"])[order],
    )

    identified = np.zeros(n_ids, dtype=bool)
    identified[mark_codes] = True
    # codes follow sorted ids, so the smallest code is the smallest id; identified ones first
    rank = np.where(identified, np.arange(n_ids), n_ids + np.arange(n_ids))
    best = pd.Series(rank).groupby(labels).transform("min").to_numpy()
    key_codes = np.where(best >= n_ids, best - n_ids, best)
    return pd.DataFrame(
        {
            "distinct_id": pd.array(np.asarray(id_names), dtype="str"),
            "person_key": pd.array(np.asarray(id_names)[key_codes], dtype="str"),
        }
    )


def persons(partial: Partial, as_of: datetime | None, placeholder_ids: Iterable[str] = ()) -> pd.DataFrame:
    """`stitch` over everything a merged partial saw: its links, and every distinct id with a
    first time (so ids that never linked are persons of their own)."""
    return stitch(partial.links, as_of, placeholder_ids, partial.firsts["distinct_id"], partial.firsts)


def _ns(values: pd.Series) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC)."""
    import pandas as pd

    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]").astype("int64").to_numpy()


def _identifies(
    links: pd.DataFrame, firsts: pd.DataFrame | None, t: pd.Timestamp | None, illegal: Iterable[str]
) -> pd.DataFrame:
    """(distinct_id, timestamp): each id's first `$identify` before T, the moment it is identified."""
    import pandas as pd

    from plg_bridge.ingest.people import valid_ids

    parts = [links.loc[links["kind"] == "identify", ["a", "timestamp"]].rename(columns={"a": "distinct_id"})]
    if firsts is not None:
        rows = firsts.loc[firsts["event"] == IDENTIFY, ["distinct_id", "timestamp"]]
        if t is not None:
            rows = rows[rows["timestamp"] < t]
        parts.append(rows[valid_ids(rows["distinct_id"], illegal)])
    marks = pd.concat(parts, ignore_index=True)
    marks = marks.groupby("distinct_id", as_index=False, sort=True)["timestamp"].min()
    return marks.astype({"distinct_id": "str"})


def person_of(ids: pd.Series, keys: pd.DataFrame) -> pd.Series:
    """Map distinct ids to person keys (`stitch` output); unknown ids are their own person."""
    mapped = ids.map(keys.set_index("distinct_id")["person_key"])
    return mapped.fillna(ids).astype("str")

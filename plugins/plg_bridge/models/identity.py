"""Identity stitching: which distinct ids are one person, as of T.

PostHog merges a visitor's anonymous id into the identified one on `$identify` (`$anon_distinct_id`),
`$create_alias` and `$merge_dangerously` (`alias`), and the export's `person_id` ties together the
distinct ids it saw on one person. We rebuild that from the links of every partial: the persons
are the connected components of the graph whose nodes are distinct ids and person ids and whose
edges are the links seen before T. Links arrive whenever they arrive (the `$identify` of Monday's
anonymous visit may land in Wednesday's export): stitching is recomputed from the merged links
on every run, so the anonymous events already rolled up join their person as soon as the link
shows up. Placeholder ids ("anonymous", "null", ...) never link anything.

The person key is deterministic: the smallest identified distinct id of the component (the
`distinct_id` of an `$identify`), else its smallest distinct id. Person ids are never keys: they
change when PostHog merges persons, distinct ids do not.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

COLUMNS = ["distinct_id", "person_key"]


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


def stitch(
    links: pd.DataFrame,
    as_of: datetime | None = None,
    placeholder_ids: Iterable[str] = (),
    distinct_ids: Iterable[str] | pd.Series | None = None,
) -> pd.DataFrame:
    """Person key of every distinct id in `links` (seen before `as_of`) and in `distinct_ids`.

    `links` is the merged `Partial.links` (a, b, kind, timestamp; kind "person" means b is a
    person_id). Returns `distinct_id, person_key`, one row per distinct id, sorted; an id without
    links is its own person.
    """
    import numpy as np
    import pandas as pd

    from plg_bridge.ingest.people import valid_ids

    if as_of is not None:
        links = links[links["timestamp"] < pd.Timestamp(as_of)]
    links = links[valid_ids(links["a"], placeholder_ids) & valid_ids(links["b"], placeholder_ids)]
    is_person = (links["kind"] == "person").to_numpy(bool)
    extra = pd.Series([] if distinct_ids is None else distinct_ids, dtype="str")
    extra = extra[valid_ids(extra, placeholder_ids)]

    ids = pd.concat([links["a"], links["b"][~is_person], extra], ignore_index=True)
    id_codes, id_names = pd.factorize(ids, sort=True)
    persons = links["b"][is_person]
    person_codes, _ = pd.factorize(persons, sort=True)
    n_ids = len(id_names)

    a = id_codes[: len(links)]
    b = np.empty(len(links), dtype=np.int64)
    b[~is_person] = id_codes[len(links) : len(links) + int((~is_person).sum())]
    b[is_person] = n_ids + person_codes
    labels = components(a, b, n_ids + int(person_codes.max(initial=-1)) + 1)[:n_ids]

    identified = np.zeros(n_ids, dtype=bool)
    identified[a[(links["kind"] == "identify").to_numpy(bool)]] = True
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


def person_of(ids: pd.Series, keys: pd.DataFrame) -> pd.Series:
    """Map distinct ids to person keys (`stitch` output); unknown ids are their own person."""
    mapped = ids.map(keys.set_index("distinct_id")["person_key"])
    return mapped.fillna(ids).astype("str")

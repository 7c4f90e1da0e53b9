"""Which persons a daily run must recompute, given the history snapshot it started from.

A person's contact (email, first touch, signup, Aha, organization, exclusion) depends only on the
rows of its own distinct ids before T, on which distinct ids form it, and on the other persons
sharing its email (the CRMs key contacts by email, so one of them wins). Between the snapshot's
as-of S and the run's T that can change only for:

- distinct ids with rows in the new partials (any time: late events), or with rows at or after
  S already in the history (events stamped ahead of their export), or after the day before T
  (the run's signals look at that day whatever S is);
- distinct ids whose person key moved (identity.stitch before and now differ: a late link, a
  merge applied in event-time order that now goes another way);
- and, transitively, every distinct id of a person holding one of those, before or now, and of a
  person that ever had one of their emails (normalised as the contacts model compares them).

Everyone else keeps the contact row of the snapshot. Organizations are not narrowed: the PQL score
and the organization signals run over every organization (small per-organization tables).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from plg_bridge.ingest.rollup import Partial

# the distinct-id columns of each person table, and the time a row happened
IDS = {
    "links": ("a", "b"),  # b is a person_id for kind "person": harmless extra ids
    "firsts": ("distinct_id",),
    "touches": ("distinct_id",),
    "conversions": ("distinct_id",),
    "profiles": ("distinct_id",),
    "memberships": ("distinct_id",),
    "occurrences": ("distinct_id",),
    "spans": ("distinct_id",),
}
TIME = {"spans": "last"}  # every other table: "timestamp"


def isin(values: pd.Series | pd.Index, among: pd.Series | pd.Index) -> np.ndarray:
    """values.isin(among) for text columns, in Arrow: pandas' Arrow-string isin builds its value set
    one Python scalar at a time, about 25x slower on 100 k ids."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pa.array(values)
    found = pa.array(pd.Index(among).dropna().unique())
    if not len(column) or not len(found):
        return np.zeros(len(column), dtype=bool)
    if found.type != column.type:
        found = found.cast(column.type)
    return pc.fill_null(pc.is_in(column, value_set=found), False).to_numpy(zero_copy_only=False)


def ids_in(partial: Partial, since: datetime | None = None) -> pd.Index:
    """Distinct ids of every person-table row (at or after `since`, when given)."""
    import pandas as pd

    found = []
    for name in partial.PEOPLE_TABLES:
        frame = getattr(partial, name)
        if frame is None or not len(frame):
            continue
        if since is not None:
            frame = frame[frame[TIME.get(name, "timestamp")] >= pd.Timestamp(since)]
        found += [frame[c] for c in IDS.get(name, ("distinct_id",)) if c in frame]
    return pd.Index(pd.concat(found, ignore_index=True).dropna().unique() if found else [], dtype="str")


def _moved(now: pd.DataFrame, before: pd.DataFrame) -> pd.Index:
    """Distinct ids whose person key differs (or that only one side knows)."""
    import pandas as pd

    both = now.merge(before, on="distinct_id", how="outer", suffixes=("", "_before"))
    moved = both["person_key"].fillna("\0") != both["person_key_before"].fillna("\0")
    return pd.Index(both.loc[moved, "distinct_id"], dtype="str")


def distinct_ids(
    merged: Partial,
    added: Partial,
    since: datetime,
    keys: pd.DataFrame,
    keys_before: pd.DataFrame,
    *,
    email_key: str = "email",
) -> pd.Index:
    """Distinct ids whose persons must be recomputed (module docstring): the seeds and every id
    connected to one by a person key (before or now) or a shared email, found as connected
    components over integer codes (one pass, however long the chains)."""
    import numpy as np
    import pandas as pd

    from plg_bridge.models.identity import components

    seeds = ids_in(added).union(ids_in(merged, since)).union(_moved(keys, keys_before))
    profiles = merged.profiles[merged.profiles["key"] == email_key]
    email = profiles["value"].fillna("").str.strip().str.lower()
    has_email = (email != "").to_numpy(bool)
    # nodes: distinct ids (person keys are distinct ids too) and emails (prefixed apart: an
    # email node never equals an id node); edges: id - person key now and before, id - email
    left = [keys["distinct_id"], keys_before["distinct_id"], profiles["distinct_id"][has_email]]
    right = [keys["person_key"], keys_before["person_key"], "\0" + email[has_email]]
    ends = pd.concat([*left, *right, pd.Series(seeds, dtype="str")], ignore_index=True).astype("str")
    codes, names = pd.factorize(ends)
    n_edges = sum(len(part) for part in left)
    labels = components(codes[:n_edges], codes[n_edges : 2 * n_edges], len(names))
    wanted = np.zeros(len(names), dtype=bool)
    wanted[labels[codes[2 * n_edges :]]] = True
    found = pd.Index(names[wanted[labels]], dtype="str")
    return found[~found.str.startswith("\0")].sort_values()


def restrict(partial: Partial, ids: pd.Index) -> Partial:
    """A copy of `partial` whose person tables keep only the rows of `ids` (links: by `a`)."""
    from dataclasses import replace

    tables = {}
    for name in partial.PEOPLE_TABLES:
        frame = getattr(partial, name)
        if frame is None:
            continue
        column = "a" if name == "links" else "distinct_id"
        tables[name] = frame[isin(frame[column], ids)].reset_index(drop=True)
    return replace(partial, **tables)

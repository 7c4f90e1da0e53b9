"""Small model frames for the delivery tests: PQL score tables (models/pql.py's columns) built by
hand, so a mapping or a vendor test does not need an export."""

from __future__ import annotations

import numpy as np
import pandas as pd


def scores(
    n: int, start: int = 0, *, id_digits: int = 4, unnamed_every: int = 10, percent_scores: bool = False
) -> pd.DataFrame:
    """`n` organizations org-<start>... with deterministic counts; every `unnamed_every`-th has no
    name. Scores are fractional (i * 0.37, PQL every 4th) or, with `percent_scores`, whole numbers
    i % 100 with PQL at 75 and above."""
    ids = range(start, start + n)
    return pd.DataFrame(
        {
            "org_id": [f"org-{i:0{id_digits}d}" for i in ids],
            "org_name": [None if i % unnamed_every == 0 else f"Org {i}" for i in ids],
            "events_this_week": [i * 3 for i in ids],
            "events_last_week": [i * 2 for i in ids],
            "active_creators": [i % 7 for i in ids],
            "integrations_connected": [i % 3 for i in ids],
            "pql_score": [i % 100 if percent_scores else round(i * 0.37, 2) for i in ids],
            "is_pql": [i % 100 >= 75 if percent_scores else i % 4 == 0 for i in ids],
        }
    )


def three_scores(**overrides) -> pd.DataFrame:
    """Three organizations with the awkward cases of a real score table: a missing name, a name with
    padding, a missing count (NA upcasts the column to float), numpy scalars among Python values."""
    frame = {
        "org_id": ["org-1", "org-2", "org-3"],
        "org_name": ["Acme", None, "  Globex "],
        "events_this_week": [120, 0, 7],
        "events_last_week": [80.0, np.nan, 3.0],
        "active_creators": [4, 1, 0],
        "integrations_connected": [2, 0, 1],
        "pql_score": [72.5, 10.0, 33.333],
        "is_pql": [True, False, np.bool_(True)],
    }
    frame.update(overrides)
    return pd.DataFrame(frame)

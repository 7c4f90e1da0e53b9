"""What every destination's payload mapping shares: the scores contract and what counts as missing.

Missing values are left out of payloads rather than sent blank, so a gap in this week's data never
wipes what a salesperson sees in the CRM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plg_bridge.models.pql import COLUMNS as SCORE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SCORE_COLUMNS", "missing", "score_rows"]


def missing(value: Any) -> bool:
    """None, NaN, NaT and pandas NA are missing; list-likes are not."""
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def score_rows(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a scores frame (models/pql.py), refusing a frame that breaks the contract."""
    absent = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if absent:
        raise ValueError(f"scores frame lacks columns: {', '.join(absent)}")
    if scores["org_id"].isna().any():
        raise ValueError(f"{int(scores['org_id'].isna().sum())} scores rows have no org_id")
    return scores[list(SCORE_COLUMNS)].to_dict("records")

"""What happened to each record at a destination: the one shape every destination reports in.

Every row sent gets exactly one outcome, so the engine can count, dead-letter and retry the
failures and commit the successes; nothing is left unaccounted for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

OUTCOME_COLUMNS = ("record_key", "status", "destination_id", "error_code", "error_message")


@dataclass(frozen=True)
class RowOutcome:
    """What happened to one record at the destination."""

    record_key: str
    status: Literal["created", "updated", "failed"]
    destination_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None


def failed(keys: Iterable[str], code: str, message: str) -> list[RowOutcome]:
    """The same failure for several records (a whole batch refused, a fatal stop)."""
    return [RowOutcome(k, "failed", None, code, message) for k in keys]


def outcomes_frame(outcomes: Iterable[RowOutcome]) -> pd.DataFrame:
    """Outcomes as a frame of nullable strings: the same schema whether empty or not.

    Error messages quote vendor answers, which may echo request headers: connection secrets are
    stripped here, before the messages reach state, dead letters and the run report.
    """
    import pandas as pd

    from plg_bridge.redact import strip_secrets

    outcomes = list(outcomes)
    clean = {m: strip_secrets(m) for m in {o.error_message for o in outcomes}}  # once per distinct text
    rows = [{**asdict(o), "error_message": clean[o.error_message]} for o in outcomes]
    frame = pd.DataFrame(rows, columns=list(OUTCOME_COLUMNS))
    return frame.astype("string")

"""At-least-once delivery: a share of events is ingested again, with the same uuid and content.

PostHog's batch exports deliver at least once: a client retry or a replay ingests an event again with a
later `_inserted_at`, so the copy lands in a later export interval's file, minutes or days later (the
pipeline must count it once: the earliest `_inserted_at` copy). Duplicates within one file (the same
row written twice) are the other, simpler case, made in synthetic/rows.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plg_bridge.synthetic.timeline import DAY_US

if TYPE_CHECKING:
    import numpy as np

    from plg_bridge.synthetic.timeline import Slots

REDELIVERY_FRACTION = 0.005  # events ingested a second time, in a later file
DAYS_LATER_SHARE = 0.4  # of those: one to five days later; the rest in the next export interval


def redeliver(
    rng: np.random.Generator, ins: np.ndarray, slot_of: Slots, end_us: int, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of a slice are delivered again, and their later `_inserted_at`.

    The copy's ingestion time falls in a later export interval than the original's: the next one
    (across the interval boundary), or one to five days later. Copies that would be ingested at or
    after the export's end are not made (that export has not run yet).
    """
    import numpy as np

    n = len(ins)
    if fraction <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    picked = np.flatnonzero(rng.random(n) < fraction)
    slot = slot_of(ins[picked])
    later = rng.random(len(picked)) < DAYS_LATER_SHARE
    hop = np.maximum(1, np.round(rng.uniform(1.0, 5.0, size=len(picked)) * DAY_US / slot_of.length))
    target = slot + np.where(later, hop, 1).astype(np.int64)
    again = slot_of.start_of(target) + (rng.random(len(picked)) * slot_of.length).astype(np.int64)
    keep = again < end_us
    return picked[keep], again[keep]

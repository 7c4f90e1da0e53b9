"""Time on the generator's clock: integer microseconds since the epoch, export slots, allocation."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

US = 1_000_000
HOUR_US = 3_600 * US
DAY_US = 24 * HOUR_US
INTERVALS = {"day": DAY_US, "hour": HOUR_US}


def epoch_us(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * US + moment.microsecond


def from_us(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder; deterministic)."""
    s = sum(weights)
    if total <= 0 or s <= 0:
        return [0] * len(weights)
    exact = [total * w / s for w in weights]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class Slots:
    """Maps microsecond times to export-interval indexes."""

    def __init__(self, start_us: int, length: int) -> None:
        self.start_us, self.length = start_us, length

    def __call__(self, us: np.ndarray) -> np.ndarray:
        return (us - self.start_us) // self.length

    def start_of(self, slot: np.ndarray | int) -> Any:
        return self.start_us + slot * self.length

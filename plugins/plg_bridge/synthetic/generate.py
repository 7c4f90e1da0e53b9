"""Deterministic PostHog-like batch-export files for demos, tests and load runs: the entry point.

The pipeline reads PostHog's S3 batch exports (events model, Parquet). This writes files with the same
names, columns and quirks -- cut by `_inserted_at` so late events land in later files, at-least-once
duplicates in the same file and re-deliveries in later ones, `$groups` without `$group_0`, anonymous
visitors who later `$identify` -- from a seeded model of B2B organizations, so scoring and syncs can run
end to end without PostHog. Rows are built slice by slice with numpy/pyarrow and streamed as Parquet
row groups, so memory stays flat whatever `rows` is.

The parts: synthetic/world.py (who does what, when), rows.py (a slice as export rows), payloads.py
(`properties` text, compact or posthog-js-sized), redeliveries.py, damage.py (broken values),
writer.py (files, names), timeline.py, ids.py, catalog.py.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from plg_bridge.storage import StorageError, location
from plg_bridge.synthetic.catalog import APP, APP_PAGES, GROUPS_ONLY_FRACTION, MIN_ROWS, SITE
from plg_bridge.synthetic.payloads import PAYLOADS, Realistic
from plg_bridge.synthetic.redeliveries import REDELIVERY_FRACTION
from plg_bridge.synthetic.rows import BATCH_ROWS, DUPLICATE_FRACTION, Options, chunk_tables
from plg_bridge.synthetic.timeline import DAY_US, INTERVALS, allocate, epoch_us
from plg_bridge.synthetic.world import World
from plg_bridge.synthetic.writer import NAMINGS, IntervalWriter, export_file_name, export_schema

__all__ = ["GenerateSummary", "export_file_name", "export_schema", "generate"]


@dataclass(frozen=True)
class GenerateSummary:
    files: list[str]  # object keys written, relative to `out`, in interval order
    rows: int  # all rows written: duplicates and re-deliveries included
    duplicates: int  # rows that repeat an earlier row in the same file (same uuid and content)
    orgs: int
    persons: int  # organization members identified by `end` (anonymous-only visitors not counted)
    redeliveries: int = 0  # copies of earlier events (same uuid and content) ingested again, in a later file
    dirty: int = 0  # rows whose `properties` is JSON null, an array, a scalar or empty text


def generate(
    out: str,
    rows: int,
    end: dt.date,
    *,
    days: int = 28,
    interval: str = "day",
    seed: int = 7,
    endpoint_url: str | None = None,
    malformed_fraction: float = 0.0,
    chunk_rows: int = 250_000,
    groups_only_fraction: float = GROUPS_ONLY_FRACTION,
    payload: str = "compact",
    naming: str = "interval",
    redelivery_fraction: float = REDELIVERY_FRACTION,
    dirty_fraction: float = 0.0,
) -> GenerateSummary:
    """Write `rows` exported events covering the `days` days before `end` (00:00 UTC) under `out`.

    One file per export interval ("day" or "hour"), every interval present even when empty, named
    as PostHog names them (`naming="interval"`) or `part-00000.parquet` (`"opaque"`: no interval in
    the key). The same arguments always give the same rows. `malformed_fraction` breaks that share
    of `properties` values (truncated JSON or null); `dirty_fraction` replaces that share by values
    that parse but are no object (JSON null, arrays, scalars, empty text). `payload="realistic"`
    adds posthog-js-sized context (about 1-2 KB per event) without changing what the models read.
    `redelivery_fraction` of the events are ingested again in a later export interval (the next
    one, or days later), on top of `rows`; `summary.rows` counts everything written. The base
    rows do not depend on payload, naming, re-deliveries or dirt (those draw from their own stream).
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {sorted(INTERVALS)}, not {interval!r}")
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS}, not {rows}")
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if not 0.0 <= malformed_fraction < 1.0:
        raise ValueError(f"malformed_fraction must be in [0, 1), not {malformed_fraction}")
    if not 0.0 <= groups_only_fraction <= 1.0:
        raise ValueError(f"groups_only_fraction must be in [0, 1], not {groups_only_fraction}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, not {chunk_rows}")
    if payload not in PAYLOADS:
        raise ValueError(f"payload must be one of {', '.join(PAYLOADS)}, not {payload!r}")
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {', '.join(NAMINGS)}, not {naming!r}")
    if not 0.0 <= redelivery_fraction < 1.0:
        raise ValueError(f"redelivery_fraction must be in [0, 1), not {redelivery_fraction}")
    if not 0.0 <= dirty_fraction < 1.0 or malformed_fraction + dirty_fraction >= 1.0:
        raise ValueError(f"dirty_fraction must be in [0, 1 - malformed_fraction), not {dirty_fraction}")

    import numpy as np

    end_dt = dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC)
    end_us = epoch_us(end_dt)
    start_us = end_us - days * DAY_US
    rng = np.random.Generator(np.random.PCG64(seed))
    n_dup = int(rows * DUPLICATE_FRACTION)
    n_base = rows - n_dup
    world = World(rng, n_base, start_us, end_us, days, groups_only_fraction=groups_only_fraction)
    n_recurring = n_base - world.n_scheduled
    if n_recurring < 0:
        raise ValueError(f"rows={rows} is too few for {world.n_orgs} organizations; ask for more rows")
    options = Options(seed, end_us, redelivery_fraction=redelivery_fraction, dirty_fraction=dirty_fraction)
    if payload == "realistic":
        options.payload = Realistic(options.rng("payload"), world.browser, SITE, APP, APP_PAGES)

    writer = IntervalWriter(
        location(out, endpoint_url), start_us, INTERVALS[interval], end_us, chunk_rows, naming=naming
    )
    try:
        per_day = allocate(n_recurring, world.day_weights())
        done_base = done_dup = done_bad = 0
        for day, n_day in enumerate(per_day):
            d0 = start_us + day * DAY_US
            pieces = max(1, math.ceil(n_day / chunk_rows))
            bounds = [d0 + DAY_US * i // pieces for i in range(pieces + 1)]
            weights = [
                float(world.recurring_rates(day, bounds[i], bounds[i + 1]).sum()) for i in range(pieces)
            ]
            counts = allocate(n_day, weights)
            for i in range(pieces):
                s0, s1 = bounds[i], bounds[i + 1]
                base = world.base_rows(rng, s0, s1, counts[i], world.recurring_rates(day, s0, s1))
                n = len(base["t"])
                done_base += n
                dups = round(n_dup * done_base / n_base) - done_dup
                bad = round(malformed_fraction * done_base) - done_bad
                done_dup += dups
                done_bad += bad
                for table, slots, done in chunk_tables(
                    world,
                    rng,
                    base,
                    dups=dups,
                    bad=bad,
                    slot_of=writer.slot_of,
                    complete_before=s1,
                    batch_rows=min(chunk_rows, BATCH_ROWS),
                    options=options,
                ):
                    writer.add(table, slots, complete_before=done)
        files = writer.finish()
    except OSError as exc:
        raise StorageError(f"cannot write the export under {out}: {exc}") from exc
    finally:
        writer.abort()
    return GenerateSummary(
        files=files,
        rows=writer.rows,
        duplicates=done_dup,
        orgs=world.n_orgs,
        persons=int((world.member_t_id < end_us).sum()),
        redeliveries=options.counts["redeliveries"],
        dirty=options.counts["dirty"],
    )

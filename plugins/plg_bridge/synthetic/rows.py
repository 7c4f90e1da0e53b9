"""One time slice of the world's events as export rows: ingestion times, ids, `properties` text, copies.

A slice's rows get their `_inserted_at` (seconds after the event, ~2% in a later export interval, some
days later), UUIDv7 ids, and their `properties` assembled from the world's JSON fragments by index
(synthetic/payloads.py); then duplicates in the same file, re-deliveries in later files
(synthetic/redeliveries.py) and broken values (synthetic/damage.py) are added, and the rows leave in
`_inserted_at` order, a batch at a time, for the interval writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plg_bridge.synthetic import damage
from plg_bridge.synthetic.catalog import (
    E_ANON_PV,
    E_CORE,
    E_CREATE,
    E_GROUPIDENTIFY,
    E_IDENTIFY,
    E_LANDING,
    E_PV,
    E_RETURN_PV,
    E_SUBSCRIPTION,
    ELEMENT_CHAINS,
)
from plg_bridge.synthetic.ids import uuid7_bytes, uuid_strings
from plg_bridge.synthetic.redeliveries import redeliver
from plg_bridge.synthetic.timeline import DAY_US, US
from plg_bridge.synthetic.writer import export_schema

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from plg_bridge.synthetic.payloads import Realistic
    from plg_bridge.synthetic.timeline import Slots
    from plg_bridge.synthetic.world import World

BATCH_ROWS = 65_536  # rows turned into Arrow text at a time (bounds memory); row groups hold more
DUPLICATE_FRACTION = 0.005  # rows delivered twice (same uuid, same content, same file)
LATE_FRACTION = 0.02  # events whose _inserted_at falls in a later interval than their timestamp
VERY_LATE_SHARE = 0.15  # of the late ones: one to three days later
HAS_URL = (E_LANDING, E_ANON_PV, E_RETURN_PV, E_PV)  # events whose compact payload has a URL already


@dataclass
class Options:
    """What is added to the historic rows. Each concern draws from its own random stream, so the base
    rows stay the same whatever is chosen here, and re-deliveries do not change with the payload."""

    seed: int
    end_us: int
    payload: Realistic | None = None
    redelivery_fraction: float = 0.0
    dirty_fraction: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: {"redeliveries": 0, "dirty": 0})
    streams: dict[str, np.random.Generator] = field(default_factory=dict)

    def rng(self, concern: str) -> np.random.Generator:
        """The random stream of one concern (redeliveries, dirt, payload), seeded from the seed."""
        import numpy as np

        if concern not in self.streams:
            salt = {"redeliveries": 1, "dirt": 2, "payload": 3}[concern]
            self.streams[concern] = np.random.Generator(np.random.PCG64([self.seed, salt]))
        return self.streams[concern]


def inserted_at(rng: np.random.Generator, t: np.ndarray, slot_of: Slots, end_us: int) -> np.ndarray:
    """Seconds after the event normally; ~2% in a later export interval, some days later."""
    import numpy as np

    n = len(t)
    normal = t + (rng.exponential(4.0, size=n) * US).astype(np.int64) + 100_000
    late = rng.random(n) < LATE_FRACTION
    slot = slot_of(t)
    next_start = slot_of.start_of(slot + 1)
    length = slot_of.length
    delayed = next_start + (rng.random(n) * length).astype(np.int64)
    very = rng.random(n) < VERY_LATE_SHARE
    delayed = delayed + np.where(very, (rng.uniform(1.0, 3.0, size=n) * DAY_US).astype(np.int64), 0)
    ins = np.where(late & (delayed < end_us), delayed, normal)
    return np.minimum(ins, end_us - 1)  # never past the last export; t < end so still >= t


def chunk_tables(
    world: World,
    rng: np.random.Generator,
    base: dict[str, np.ndarray],
    *,
    dups: int,
    bad: int,
    slot_of: Slots,
    complete_before: int,
    batch_rows: int,
    options: Options,
) -> Iterator[tuple[pa.Table, np.ndarray, int]]:
    """Ingestion times, ids and copies for one slice, then its rows as Arrow tables.

    Rows come sorted by `_inserted_at`, `batch_rows` at a time (so only one batch of text is ever
    materialized), each with its export slots and the time before which every slot is complete.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t, ent, code, var = base["t"], base["ent"], base["code"], base["var"]
    n = len(t)
    ins = inserted_at(rng, t, slot_of, options.end_us)
    created = np.maximum(t, ins - rng.integers(0, 5_000, size=n))
    raw_uuid = uuid7_bytes(rng, t)
    anon = world.is_anon_code[code]
    org = world.member_org[np.minimum(ent, world.n_members - 1)]
    groups_only = rng.random(n) < world.groups_only_fraction
    group_idx = np.where(anon | (code == E_IDENTIFY), 0, 1 + org + np.where(groups_only, world.n_orgs, 0))
    b_idx = np.zeros(n, dtype=np.int64)
    channel = world.channel[ent]
    b_idx = np.where(code == E_LANDING, world.b_landing + channel, b_idx)
    b_idx = np.where(code == E_ANON_PV, world.b_referrer + channel, b_idx)
    b_idx = np.where(code == E_IDENTIFY, world.b_identify + ent, b_idx)
    b_idx = np.where(code == E_GROUPIDENTIFY, world.b_groupidentify + org, b_idx)
    b_idx = np.where(code == E_SUBSCRIPTION, world.b_subscription + org, b_idx)
    a_idx = world.a_offset[code] + var
    chain = np.where(
        ((code == E_CORE) | (code == E_PV)) & (rng.random(n) < 0.03),
        1 + rng.integers(0, len(ELEMENT_CHAINS), size=n),
        0,
    )
    who = np.where(anon, ent, world.n_entities + ent)  # distinct id and person id
    props_of = np.where(anon, world.pp_anon[ent], world.pp_member + ent)
    broken = np.zeros(n, dtype=bool)
    if bad > 0:
        broken[rng.choice(n, size=min(bad, n), replace=False)] = True
    cut = rng.uniform(0.1, 0.9, size=n)
    null_props = rng.random(n) < 0.3

    # copies: the same row again in the same file, then re-deliveries in later files
    rows = np.arange(n)
    if dups > 0 and n > 0:
        rows = np.concatenate([rows, rng.choice(n, size=dups, replace=dups > n)])
    entry_ins, entry_created = ins[rows], created[rows]
    again, again_ins = redeliver(
        options.rng("redeliveries"), ins, slot_of, options.end_us, options.redelivery_fraction
    )
    if len(again):
        rows = np.concatenate([rows, again])
        entry_ins = np.concatenate([entry_ins, again_ins])
        entry_created = np.concatenate(
            [
                entry_created,
                np.maximum(
                    t[again], again_ins - options.rng("redeliveries").integers(0, 5_000, size=len(again))
                ),
            ]
        )
        options.counts["redeliveries"] += len(again)
    dirt = options.rng("dirt") if options.dirty_fraction > 0 else None
    dirty = (dirt.random(n) < options.dirty_fraction) & ~broken if dirt is not None else None
    kinds = dirt.integers(len(damage.DIRTY_VALUES), size=n) if dirt is not None else None
    if dirty is not None:
        options.counts["dirty"] += int(dirty[rows].sum())
    rich = options.payload
    drawn = rich.draw(options.rng("payload"), t) if rich is not None else None
    has_url = np.isin(code, HAS_URL)
    has_person = code != E_IDENTIFY  # its `$set` / `$set_once` name the person already
    clicks = ((code == E_CORE) | (code == E_CREATE)) & (drawn["click"] if drawn is not None else False)

    order = np.argsort(entry_ins, kind="stable")  # everything in _inserted_at order
    rows, entry_ins, entry_created = rows[order], entry_ins[order], entry_created[order]
    slots = slot_of(entry_ins)
    ts_type = pa.timestamp("us", tz="UTC")
    for b0 in range(0, len(rows), batch_rows):
        b1 = min(b0 + batch_rows, len(rows))
        part = rows[b0:b1]

        def take(table: pa.Array, idx: np.ndarray, part: np.ndarray = part) -> pa.Array:
            return table.take(pa.array(idx[part]))

        pieces = [
            take(world.device, ent),
            take(world.frag_a, a_idx),
            take(world.frag_b, b_idx),
            take(world.frag_group, group_idx),
        ]
        chains = take(world.chains, chain)
        if rich is not None and drawn is not None:
            pieces.append(rich.fragment(drawn, part, t, ent, has_url, has_person, clicks))
            chains = pc.if_else(
                pa.array(clicks[part]), rich.chains.take(pa.array(drawn["chain"][part])), chains
            )
        properties = pc.binary_join_element_wise("{", *pieces, "}", "")
        properties = damage.truncate(properties, broken[part], part, cut, null_props)
        if dirty is not None and kinds is not None:
            properties = damage.dirty(properties, dirty[part], kinds[part])
        table = pa.Table.from_arrays(
            [
                uuid_strings(raw_uuid[part]),
                pa.array(t[part], type=ts_type),
                pa.array(entry_ins[b0:b1], type=ts_type),
                pa.array(entry_created[b0:b1], type=ts_type),
                take(world.event_names, code.astype(np.int64)),
                properties,
                take(world.distinct_ids, who),
                chains,
                take(world.person_properties, props_of),
                take(world.person_ids, who),
            ],
            schema=export_schema(),
        )
        # later rows of this slice, and all later slices, are inserted at or after this time
        done = complete_before if b1 == len(rows) else min(complete_before, int(entry_ins[b1]))
        yield table, slots[b0:b1], done

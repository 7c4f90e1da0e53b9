"""Generated rows into export files: PostHog's schema and names (or opaque ones), one file per interval.

Files are cut by `_inserted_at`, like PostHog's batch exports: a row lands in the file of the interval
its ingestion time falls in, so late events and re-deliveries land in later files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

from plg_bridge.synthetic.timeline import Slots, from_us

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from plg_bridge.storage import Location

PARQUET_DICTIONARY_COLUMNS = ["event", "distinct_id", "elements_chain", "person_properties", "person_id"]
NAMINGS = ("interval", "opaque")


def export_schema() -> pa.Schema:
    """The column layout of PostHog's default S3 export of the events model."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("uuid", pa.string()),
            ("timestamp", ts),
            ("_inserted_at", ts),
            ("created_at", ts),
            ("event", pa.string()),
            ("properties", pa.string()),
            ("distinct_id", pa.string()),
            ("elements_chain", pa.string()),
            ("person_properties", pa.string()),
            ("person_id", pa.string()),
        ]
    )


def export_file_name(start: dt.datetime, end: dt.datetime) -> str:
    """PostHog's key for one interval: `{data_interval_start}-{data_interval_end}.parquet.zst`."""
    return f"{start.isoformat()}-{end.isoformat()}.parquet.zst"


def opaque_file_name(slot: int) -> str:
    """A key that names no interval (other export tools, renamed copies): `part-00007.parquet`.

    Names still sort in time order, as a tool writing numbered parts would."""
    return f"part-{slot:05d}.parquet"


class IntervalWriter:
    """Streams rows into one Parquet file per export interval, in interval order.

    Rows of an interval are buffered until every event that could belong to it has been drawn (all
    events earlier than its end); only the earliest open interval can grow large, and it is written
    out as a row group whenever it reaches `chunk_rows`, so memory stays bounded.
    """

    def __init__(  # noqa: PLR0917 - the export's shape, all needed
        self,
        loc: Location,
        start_us: int,
        length: int,
        end_us: int,
        chunk_rows: int,
        naming: str = "interval",
    ) -> None:
        self.loc, self.length, self.chunk_rows, self.naming = loc, length, chunk_rows, naming
        self.slot_of = Slots(start_us, length)
        self.n_slots = (end_us - start_us) // length
        self.pending: dict[int, list[pa.Table]] = {}
        self.next_slot = 0
        self.files: list[str] = []
        self.rows = 0
        self._sink: Any = None
        self._writer: Any = None

    def key(self, slot: int) -> str:
        if self.naming == "opaque":
            return opaque_file_name(slot)
        start = self.slot_of.start_of(slot)
        return export_file_name(from_us(start), from_us(start + self.length))

    def add(self, table: pa.Table, slots: np.ndarray, complete_before: int) -> None:
        import numpy as np
        import pyarrow as pa

        if len(slots):
            uniq, first = np.unique(slots, return_index=True)
            bounds = [*first.tolist(), len(slots)]
            current = int(self.slot_of(np.int64(complete_before - 1)))
            for j, slot in enumerate(uniq.tolist()):
                part = table.slice(bounds[j], bounds[j + 1] - bounds[j])
                if slot > current:  # a few late rows: copy them so the chunk itself can be freed
                    part = part.take(pa.array(np.arange(len(part))))
                self.pending.setdefault(slot, []).append(part)
        while self.next_slot < self.n_slots and self.slot_of.start_of(self.next_slot + 1) <= complete_before:
            self._flush(self.next_slot)
            self._close()
            self.next_slot += 1
        if self.next_slot < self.n_slots:
            waiting = sum(len(t) for t in self.pending.get(self.next_slot, []))
            if waiting >= max(1, self.chunk_rows // 2):
                self._flush(self.next_slot)

    def finish(self) -> list[str]:
        while self.next_slot < self.n_slots:
            self._flush(self.next_slot)
            self._close()
            self.next_slot += 1
        return self.files

    def _flush(self, slot: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            key = self.key(slot)
            self._sink = self.loc.open_output(key)
            self._writer = pq.ParquetWriter(
                self._sink,
                export_schema(),
                compression="zstd",
                use_dictionary=PARQUET_DICTIONARY_COLUMNS,
            )
            self.files.append(key)
        tables = self.pending.pop(slot, [])
        if tables:
            table = pa.concat_tables(tables)
            self._writer.write_table(table, row_group_size=max(self.chunk_rows, 1))
            self.rows += len(table)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
        self._writer = self._sink = None

    def abort(self) -> None:
        """Release an open file after an error (a no-op after `finish`)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the original error matters more
                self._close()

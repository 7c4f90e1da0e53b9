"""The create-once journal: what a run has sent to a vendor that cannot dedupe a replayed create
(HubSpot tasks, Slack messages), kept in the target's state as it happens.

- A row is recorded as in flight (unconfirmed, IN_FLIGHT, `sent_at`) by the destination itself,
  through `departing(keys)`, right before its request leaves: after the client's rate-limit
  wait, so a run killed while it waits leaves nothing unconfirmed that never left.
- Its outcome is recorded when the answer is read (`Journal.settle`). When the answer is lost
  after the request may have reached the vendor (read timeout, reset or body cut mid-response,
  5xx, a row a 207 does not account for) the row is looked up at the vendor by the key the
  project controls (`Target.lookup`: HubSpot search on the task's `plg_signal_key`, Slack's
  channel history by message metadata) a few times over `SETTLE_WAITS` (search indexes lag):
  found, it is delivered with the vendor's id; not found, it stays unconfirmed.
- Every later run looks its unconfirmed rows up again before planning (`resolve_unconfirmed`):
  found rows are delivered; a row still not found once `RESEND_AFTER` seconds have passed since
  it was sent (no live run can still be sending it) becomes a dead letter (NOT_CREATED) that run
  resends. Only a row the lookup cannot decide (no lookup for the route, e.g. a Slack webhook; the
  lookup itself failing) waits for on-call: `plg-bridge dead-letters confirm | replay`.
- A commit that loses to a concurrent run re-reads the state and applies its own rows again, so
  the vendor ids of what the losing run created are kept (`_commit`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from plg_bridge.delivery import plan as planning
from plg_bridge.delivery import state
from plg_bridge.storage import ConflictError

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.base import Target
    from plg_bridge.storage import Location

log = logging.getLogger(__name__)

# Waits (seconds) between lookups of a row whose answer was lost: the vendor may still be
# processing the request, and HubSpot's search shows a new object only after a few moments.
SETTLE_WAITS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
# A row a lookup does not find is resent only this long after it was sent: a live run's request
# (client timeout 30 s, plus the vendor's processing) is over by then.
RESEND_AFTER = 600.0
MERGE_ATTEMPTS = 5

_active: list[Journal] = []  # the journals of the sends in progress (usually one per process)
_active_lock = threading.Lock()


def departing(keys: Iterable[str]) -> None:
    """Called by a destination right before a create request carrying `keys` leaves (after its
    rate limiter); records them as in flight in the journaled target's state. A no-op outside a
    journaled send (upserts, tests of the clients alone)."""
    keys = list(keys)
    for journal in list(_active):  # each journal records the keys of its own target's rows
        journal.departing(keys)


def _now_iso(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat(timespec="seconds")


class Journal:
    """One target's journaled send: the state as this run last committed it, and which of the
    rows it sends have departed. Thread-safe: requests of one target may be in flight at once."""

    def __init__(
        self,
        work: Location,
        target: str,
        snapshot: state.Snapshot,
        to_send: pd.DataFrame,
        as_of: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.work, self.target, self.as_of, self.clock = work, target, as_of, clock
        self.frame, self.version = snapshot.frame, snapshot.version
        self.rows = to_send.set_index("record_key", drop=False)
        self.departed: set[str] = set()
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def active(self) -> Iterator[Journal]:
        """Route `departing()` calls to this journal while the target sends."""
        with _active_lock:
            _active.append(self)
        try:
            yield self
        finally:
            with _active_lock:
                _active.remove(self)

    def departing(self, keys: Iterable[str]) -> None:
        """Commit `keys` as in flight. A conflict here means another run committed since this one
        read the state: ConflictError propagates and the request does not leave."""
        with self._lock:
            new = [
                k for k in dict.fromkeys(map(str, keys)) if k in self.rows.index and k not in self.departed
            ]
            if not new:
                return
            rows = self.rows.loc[new]
            frame = planning.in_flight(self.frame, rows, self.as_of, _now_iso(self.clock))
            self.version = state.commit(self.work, self.target, frame, self.version)
            self.frame = frame
            self.departed.update(new)

    def settle(self, sent: pd.DataFrame, outcomes: pd.DataFrame) -> None:
        """Record the outcomes of `sent` (unknown ones as unconfirmed); merged into a concurrent
        run's newer state if this run's commit lost."""
        with self._lock:
            self._commit(
                lambda frame: planning.apply_outcomes(
                    frame, sent, outcomes, self.as_of, unknown_unconfirmed=True
                ),
                set(sent["record_key"]),
            )

    def _commit(self, change: Callable[[pd.DataFrame], pd.DataFrame], keys: set[str]) -> None:
        frame = change(self.frame)
        for attempt in range(1, MERGE_ATTEMPTS + 1):
            try:
                self.version = state.commit(self.work, self.target, frame, self.version)
                self.frame = frame
                return
            except ConflictError:
                if attempt == MERGE_ATTEMPTS:
                    raise
                fresh = state.load(self.work, self.target)
                theirs = fresh.frame[fresh.frame["record_key"].isin(keys)]
                delivered = theirs[theirs["status"] == "delivered"]
                if len(delivered):
                    log.error(
                        "%s: another run delivered %d of the rows this run just sent (%s): the vendor may "
                        "hold them twice; this run's vendor ids are kept in the state",
                        self.target,
                        len(delivered),
                        ", ".join(delivered["record_key"].head(5)),
                    )
                log.warning(
                    "%s: state changed under this run; merging its %d rows into it", self.target, len(keys)
                )
                self.frame, self.version = fresh.frame, fresh.version
                frame = change(fresh.frame)


def lookup(
    target: Target,
    settings: Settings,
    rows: pd.DataFrame,
    *,
    waits: Iterable[float] = (),
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, str | None], set[str], str | None]:
    """Look `rows` (record_key, payload, sent_at) up at the vendor: (found {key: vendor id},
    not found keys, why undecided or None). Missing rows are looked up again after each of
    `waits`. Undecided (no lookup for this target or route, or the lookup failed): nothing is
    reported not found."""
    find = getattr(target, "lookup", None)
    keys = [str(k) for k in rows["record_key"]]
    if find is None:
        return {}, set(), f"{target.name} has no lookup at the vendor"
    records = [
        {"record_key": str(r.record_key), "payload": json.loads(r.payload), "sent_at": r.sent_at}
        for r in rows.itertuples()
        if isinstance(r.payload, str)
    ]
    found: dict[str, str | None] = {}
    for wait in (0.0, *waits):
        missing = [r for r in records if r["record_key"] not in found]
        if not missing:
            break
        if wait:
            sleep(wait)
        try:
            answer = find(settings, missing)
        except Exception as exc:  # the lookup cannot decide: the rows wait for on-call
            log.warning("%s: lookup at the vendor failed: %s", target.name, exc)
            return found, set(), f"lookup failed: {type(exc).__name__}: {exc}"[:500]
        if answer is None:
            return found, set(), f"{target.name}: this route cannot be looked up at the vendor"
        found.update({str(k): v for k, v in answer.items() if str(k) in keys})
    return found, {k for k in keys if k not in found}, None


def resolve_unconfirmed(
    target: Target,
    settings: Settings,
    work: Location,
    snapshot: state.Snapshot,
    as_of: str,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> state.Snapshot:
    """Before planning: look the target's unconfirmed rows up at the vendor. Found rows become
    delivered, rows not found and sent more than RESEND_AFTER seconds ago become NOT_CREATED dead
    letters (resent by this run), the rest stay unconfirmed. Commits when anything changed."""
    frame = snapshot.frame
    waiting = frame[frame["status"] == "unconfirmed"]
    if waiting.empty or getattr(target, "lookup", None) is None:
        return snapshot
    found, absent, undecided = lookup(target, settings, waiting, waits=SETTLE_WAITS[:2], sleep=sleep)
    now = clock()
    stale = {}
    for row in waiting[waiting["record_key"].isin(list(absent))].itertuples():
        age = _age(row.sent_at, now)
        if age is None or age >= RESEND_AFTER:
            when = "" if age is None else f" {age:.0f} s after it was sent"
            stale[row.record_key] = f"not found at the vendor by its key{when}: it was not created; resent"
    if undecided:
        log.warning(
            "%s: %d unconfirmed rows wait for on-call: %s", target.name, len(waiting) - len(found), undecided
        )
    if not found and not stale:
        return snapshot
    log.info(
        "%s: unconfirmed rows settled by lookup: %d found at the vendor, %d not created (resent)",
        target.name,
        len(found),
        len(stale),
    )
    new = planning.settled(frame, found, stale, as_of)
    return state.Snapshot(new, state.commit(work, target.name, new, snapshot.version))


def _age(sent_at: str | None, now: float) -> float | None:
    if not isinstance(sent_at, str):
        return None
    try:
        return now - datetime.fromisoformat(sent_at).timestamp()
    except ValueError:
        return None

"""The destination framework: what every vendor folder (hubspot/, salesforce/, intercom/, slack/)
plugs into, so a vendor only says how to map records and how to send one batch.

- `Target`: one kind of object at one destination, with its own state (see deliver.py). `build`
  maps the run's model outputs to records `{record_key, org_id, payload}`; `send` delivers records
  and returns exactly one outcome per record.
- `routed` / `signals_of` / `keyed`: the record-building helpers every vendor's targets share.
- `send_batches`: batching's second half, for every vendor: several calls in flight (`InFlight`),
  the stop-after-a-fatal-answer rule, outcomes complete and in order whatever the completion order.
- `Target.lookup`: the hook where a vendor looks up deliveries whose answer was lost (journal.py).
- `FieldSpec` / `ensure_fields`: the custom fields a target writes, created when missing (in one
  call where the vendor allows), listed once per run and credential.

Imported by the DAG file at parse time (through delivery/targets.py): keep its imports light.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from plg_bridge.delivery.outcomes import RowOutcome, failed

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.deliver import RunInputs

log = logging.getLogger(__name__)
B = TypeVar("B")


@dataclass(frozen=True)
class Target:
    name: str
    destination: str  # hubspot | salesforce | intercom | slack: its pool, connection and pause switch
    build: Callable[[RunInputs, Settings], list[dict]]
    send: Callable[[Settings, list[dict]], pd.DataFrame]
    create_once: bool = False
    after: str | None = None  # a target whose records must exist first (tags need their companies)
    # Create-once targets the vendor cannot dedupe (a replayed call makes a second object): the
    # batch size the engine sends them in, committing each batch as in flight first (deliver.py).
    journal: Callable[[Settings], int] | None = None
    # Journaled targets: find records at the vendor by the key the project controls, for answers
    # lost after the request left (journal.py). (settings, records {record_key, payload, sent_at})
    # -> {record_key: vendor id} of those found, or None when the route cannot be looked up.
    lookup: Callable[[Settings, list[dict]], dict[str, str | None] | None] | None = None


def routed(inputs: RunInputs, settings: Settings, destination: str) -> pd.DataFrame:
    """The run's signals that settings route to `destination`."""
    signals = inputs.frame("signals")
    if signals.empty:
        return signals
    wanted = [s for s in settings.signals.enabled if destination in settings.signals.routes(s)]
    return signals[signals["signal"].isin(wanted)]


def signals_of(inputs: RunInputs, kind: str) -> pd.DataFrame:
    """The run's signals of one kind (pql_crossed, ...)."""
    signals = inputs.frame("signals")
    return signals[signals["signal"] == kind] if len(signals) else signals


def run_as_of(records: list[dict]) -> str | None:
    """The run's as-of date (ISO day), which the engine passes with each record it sends
    (deliver.py): vendors stamp it at send time (`plg_scored_at`), outside the planned payload,
    so an organization whose values did not change is not resent every day for a new date."""
    return next((str(r["as_of"])[:10] for r in records if r.get("as_of")), None)


def keyed(records: list[dict]) -> list[dict]:
    """Records in the engine's shape `{record_key, org_id, payload}`."""
    return [
        {"record_key": r["record_key"], "org_id": r.get("org_id"), "payload": r["payload"]} for r in records
    ]


# -- sending: batches in flight, the stop rule, one outcome per record ----------------------------

DEFAULT_MAX_IN_FLIGHT = 24  # a ceiling on threads per target, whatever the rate and latency say


class InFlight:
    """How many requests a target keeps in flight: enough to use the rate budget at the latency
    observed, never more than `ceiling`.

    Little's law: calls/s = in flight / latency, so the bound is rate x latency plus one spare
    (rounded up), or while the window still has unused budget (a run's start) that budget, up
    to the ceiling; the limiter still paces every call, so a generous bound costs no 429s, only
    threads. `fixed` (a setting) overrides the derivation. Before the first answer the latency
    is unknown and `initial` requests go out.
    """

    def __init__(
        self,
        calls_per_second: float | None,
        *,
        fixed: int | None = None,
        ceiling: int = DEFAULT_MAX_IN_FLIGHT,
        initial: int = 2,
        spare: Callable[[], int] | None = None,
        backing_off: Callable[[], int] | None = None,
    ) -> None:
        if fixed is not None and fixed < 1:
            raise ValueError("in-flight requests must be >= 1")
        self.rate, self.fixed, self.ceiling, self.initial = calls_per_second, fixed, max(1, ceiling), initial
        self.spare = spare  # calls the rate budget allows right now (a fresh window: all of it)
        self.backing_off = backing_off  # calls now waiting out a retry backoff
        self.latency: float | None = None  # smoothed seconds per call (EWMA)
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.latency = seconds if self.latency is None else 0.8 * self.latency + 0.2 * seconds

    def bound(self) -> int:
        # calls sleeping out a retry backoff are not on the wire: others may go meanwhile
        return self._on_the_wire() + (self.backing_off() if self.backing_off is not None else 0)

    def _on_the_wire(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.latency is None:
            return min(self.initial, self.ceiling)
        if not self.rate:  # no rate limit (Salesforce meters per day): the ceiling
            return self.ceiling
        steady = math.ceil(self.rate * self.latency) + 1
        # while the window has budget to spare (a run's start), spend it as fast as the ceiling allows
        burst = self.spare() if self.spare is not None else 0
        return max(1, min(self.ceiling, max(steady, burst)))


def calls_per_second(limiter: Any) -> float | None:
    """A limiter's sustained rate (its window's calls / its period), None without one."""
    if limiter is None or not getattr(limiter, "max_calls", None):
        return None
    return limiter.max_calls / limiter.period


Stop = tuple[str, str]  # (error code, message): why no further batch of this target goes out


def send_batches(
    batches: Sequence[B],
    send: Callable[[B], tuple[list[RowOutcome], Stop | None]],
    keys: Callable[[B], list[str]],
    *,
    in_flight: InFlight | int = 1,
    what: str = "batch",
    stop_scope: tuple | None = None,
    durable: Callable[[Stop], bool] = lambda _stop: True,
) -> list[RowOutcome]:
    """Send `batches` with up to `in_flight` calls at once; outcomes in batch order.

    `send(batch)` makes one call (the transport paces it under the rate budget and retries it)
    and returns one outcome per key of the batch plus, when the vendor refused in a way every
    later call would hit too (daily quota, revoked token), the reason to stop. The stop rule:
    batches not yet started then fail with that code ("not sent: ..."); batches already in flight
    finish and keep their own outcomes. Completion order does not matter: each batch's outcomes
    land in its slot, and a missing outcome is a bug (`complete`).

    `stop_scope` (vendor, connection, credential fingerprint, the send in progress) makes a
    `durable` stop span calls for `STOP_MEMORY_SECONDS`: the journal sends a target's batches in
    calls of their own, and a revoked token need not be tried once per batch. A new credential or
    a new send (a rerun) is a new scope.
    """
    bound = in_flight if isinstance(in_flight, InFlight) else InFlight(None, fixed=max(1, in_flight))
    results: list[list[RowOutcome] | None] = [None] * len(batches)
    stop: Stop | None = _remembered_stop(stop_scope)
    if not batches:
        return []
    every = [k for b in batches for k in keys(b)]
    if len(set(every)) != len(every):  # plan.py refuses repeated record keys: reaching here is a bug
        raise RuntimeError(f"internal error: {what} got a record key twice")

    def timed(n: int) -> tuple[int, list[RowOutcome], Stop | None]:
        started = time.monotonic()
        outcomes, why = send(batches[n])
        bound.observe(time.monotonic() - started)
        return n, outcomes, why

    workers = max(bound.ceiling, bound.fixed or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"send-{what}") as pool:
        running: set[Future] = set()
        upcoming = iter(range(len(batches)))
        exhausted = False
        while True:
            while not exhausted and stop is None and len(running) < bound.bound():
                n = next(upcoming, None)
                if n is None:
                    exhausted = True
                    break
                running.add(pool.submit(timed, n))
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                n, outcomes, why = future.result()
                if len(outcomes) != len(keys(batches[n])):
                    raise RuntimeError(f"internal error: {what} {n} got {len(outcomes)} outcomes")
                results[n] = outcomes
                if why is not None and stop is None:
                    stop = why
                    log.error("%s: stopping after %s; later batches are not sent", what, why[0])
                    if stop_scope is not None and durable(why):
                        now = time.monotonic()
                        with _STOPS_LOCK:
                            for old in [k for k, (t, _) in _STOPS.items() if now - t > STOP_MEMORY_SECONDS]:
                                del _STOPS[old]
                            _STOPS[stop_scope] = (now, why)
    for n, outcomes in enumerate(results):
        if outcomes is None:  # never started: the stop rule
            code, message = cast("Stop", stop)
            results[n] = failed(keys(batches[n]), code, f"not sent: {message}")
    return complete([o for part in results for o in cast("list[RowOutcome]", part)])


STOP_MEMORY_SECONDS = 120.0  # one run's batches of a target follow each other within this
_STOPS: dict[tuple, tuple[float, Stop]] = {}
_STOPS_LOCK = threading.Lock()


def _remembered_stop(scope: tuple | None) -> Stop | None:
    if scope is None:
        return None
    with _STOPS_LOCK:
        found = _STOPS.get(scope)
        if found is None or time.monotonic() - found[0] > STOP_MEMORY_SECONDS:
            _STOPS.pop(scope, None)
            return None
    log.error("%s: an earlier call of this run stopped with %s; not sending", scope[0], found[1][0])
    return found[1]


def complete(outcomes: Sequence[RowOutcome | None]) -> list[RowOutcome]:
    """Every record has its outcome: a gap would be a silently dropped row, so it is a bug."""
    if any(o is None for o in outcomes):
        raise RuntimeError("internal error: a record has no outcome")
    return cast("list[RowOutcome]", list(outcomes))


# -- fields: what a target's payload needs to exist at the vendor -----------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One custom field a target writes: the vendor creates it when missing (HubSpot properties,
    Intercom data attributes). `type` is the vendor's own type word; `extra` holds the vendor's
    further definition keys (HubSpot's fieldType, options, hasUniqueValue, ...)."""

    name: str
    type: str
    label: str
    object: str
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


class FieldError(RuntimeError):
    """The vendor refused to create a field (scopes, a name it reserves, a type it rejects)."""

    def __init__(self, vendor: str, name: str, reason: str) -> None:
        super().__init__(f"{vendor} refused to create field {name!r}: {reason}")
        self.vendor, self.name, self.reason = vendor, name, reason


class FieldSource(Protocol):
    """What a vendor client supplies so the base can create the fields its targets need.

    `fields_key`: the vendor app and credential (vendor, base URL, token fingerprint): fields
    found once are remembered for that key. `batch_create`: whether `create_fields` takes many
    specs in one call (HubSpot) or one (Intercom). `list_fields(object)`: names that exist.
    `create_fields(specs)`: one call creating `specs` (all of one object) -> (names created,
    {name: refusal message}); a field that exists already (a concurrent run) is neither.
    """

    fields_key: tuple
    batch_create: bool

    def list_fields(self, object_: str) -> Iterable[str]: ...

    def create_fields(self, specs: Sequence[FieldSpec]) -> tuple[list[str], Mapping[str, str]]: ...


FIELD_CACHE_SECONDS = 900.0  # one run's delivery of a target; a later run lists again
_FIELDS: dict[tuple, tuple[float, set[str]]] = {}
_FIELDS_LOCK = threading.Lock()


def ensure_fields(
    source: FieldSource, specs: Iterable[FieldSpec], *, clock: Callable[[], float] = time.monotonic
) -> list[str]:
    """Create the fields of `specs` that the vendor does not have yet; returns the names created.

    One list per object, then the missing ones in one call (or one call each when the vendor has
    no batch create). What exists is remembered per process and credential for the run
    (`FIELD_CACHE_SECONDS`): a journaled target sending batch after batch, or two targets on
    one object, list it once. Raises `FieldError` naming the first field refused; listing
    failures propagate as the vendor client raises them.
    """
    by_object: dict[str, list[FieldSpec]] = {}
    for spec in specs:
        by_object.setdefault(spec.object, []).append(spec)
    created: list[str] = []
    for object_, wanted in by_object.items():
        key = (*source.fields_key, object_)
        with _FIELDS_LOCK:
            stamp, known = _FIELDS.get(key, (-math.inf, set()))
            if clock() - stamp > FIELD_CACHE_SECONDS:
                known = set()
        if all(s.name in known for s in wanted):
            continue
        known = set(source.list_fields(object_))
        missing = [s for s in wanted if s.name not in known]
        calls = [missing] if source.batch_create else [[s] for s in missing]
        made: list[str] = []
        refused: dict[str, str] = {}
        for batch in (c for c in calls if c):
            done, refusals = source.create_fields(batch)
            made += done
            refused.update(refusals)
        known.update(s.name for s in missing if s.name not in refused)
        with _FIELDS_LOCK:
            _FIELDS[key] = (clock(), known)
        created += made
        if made:
            log.info("%s: created %s fields: %s", source.fields_key[0], object_, ", ".join(made))
        if refused:
            name, reason = next(iter(refused.items()))
            raise FieldError(str(source.fields_key[0]), name, reason)
    return created


def forget_fields(fields_key: tuple | None = None) -> None:
    """Drop what `ensure_fields` remembers of one vendor credential (all without `fields_key`).
    A vendor client calls it when an answer says a field does not exist (deleted at the vendor,
    or a listing that was stale): the next ensure lists again and creates it."""
    with _FIELDS_LOCK:
        for key in [k for k in _FIELDS if fields_key is None or k[: len(fields_key)] == fields_key]:
            del _FIELDS[key]

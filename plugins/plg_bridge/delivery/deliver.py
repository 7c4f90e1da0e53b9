"""Plan, deliver and commit one target: the same steps for every destination.

    desired records -> plan against the target's state -> (dry run: stop, the plan is written)
    -> send creates, updates and retries -> every row's outcome -> commit the new state
    (conditional write) -> outcomes and dead letters beside the run's outputs

A run whose rejected-row share exceeds `delivery.max_rejected_share` fails after committing
what it delivered, so good rows are never sent twice and bad rows wait as dead letters.

Create-once targets the vendor cannot dedupe (HubSpot tasks, Slack messages: `Target.journal`)
go out in batches through the journal (journal.py): a row is committed as in flight when its
request is about to leave, and its outcome when the answer is read. An answer lost after the
request may have reached the vendor (timeout, reset, cut body, 5xx, a row a 207 leaves out) is
never resent blindly: the row is looked up at the vendor by its key; found, it is delivered with
the vendor's id; not found, it stays unconfirmed, and a later run looks again (found: delivered;
still missing long after it was sent: resent). Rows no lookup can decide (Slack webhooks, the
lookup failing) wait for on-call (`plg-bridge dead-letters confirm` or `replay --targets`).

`deliver_targets` runs every target even when one fails (a failure is reported with the run and
named by the CLI's exit), so one bad destination never holds back the others.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from plg_bridge.controls import RunOptions
from plg_bridge.delivery import journal, state
from plg_bridge.delivery import plan as planning
from plg_bridge.storage import ConflictError, location
from plg_bridge.window import run_prefix

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.delivery.targets import Target
    from plg_bridge.storage import Location
    from plg_bridge.workspace import Workspace

log = logging.getLogger(__name__)


class RejectedRowsError(RuntimeError):
    """Too many rows were rejected by a destination; the message says how many and where they are."""


@dataclass
class RunInputs:
    """The run's model outputs, read lazily from the work location (XCom only carries URIs)."""

    work_uri: str
    endpoint_url: str | None
    as_of: datetime
    prefix: str | None = None  # where the outputs are; default runs/as_of=<T> (the fast path: its own)
    _cache: dict = field(default_factory=dict)

    @property
    def run_prefix(self) -> str:
        return self.prefix or run_prefix(self.as_of)

    def frame(self, name: str) -> pd.DataFrame:
        """`runs/as_of=.../<name>.parquet`; an absent optional output reads as empty."""
        import pandas as pd

        if name not in self._cache:
            work = location(self.work_uri, self.endpoint_url)
            key = f"{self.run_prefix}/{name}.parquet"
            self._cache[name] = work.read_frame(key) if work.exists(key) else pd.DataFrame()
        return self._cache[name]


def outcome_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    tally = outcomes["status"].value_counts() if len(outcomes) else {}
    return {status: int(tally.get(status, 0)) for status in ("created", "updated", "failed")}


def _only_orgs(records: list[dict], orgs: tuple[str, ...]) -> list[dict]:
    return [r for r in records if not orgs or r.get("org_id") in orgs]


def sync_target(settings: Settings, target: Target, inputs: RunInputs, options: RunOptions) -> dict:
    """Plan and (unless dry run) deliver one target; returns counts and URIs for XCom and the report."""
    from plg_bridge.delivery.transport import cutoff_scope

    started = time.monotonic()
    work = location(settings.work_location, settings.exports.endpoint_url)
    as_of = inputs.as_of.date().isoformat()
    prefix = f"{inputs.run_prefix}/{target.name}"

    desired = planning.records_frame(_only_orgs(target.build(inputs, settings), options.orgs))
    snapshot = state.load(work, target.name)
    if target.create_once and not options.dry_run:
        snapshot = journal.resolve_unconfirmed(target, settings, work, snapshot, as_of)
    planned = planning.plan(
        desired,
        snapshot.frame,
        full_resync=options.full_resync,
        create_once=target.create_once,
        # unconfirmed rows go out again only when on-call replays this very target
        resend_unconfirmed=options.retry_dead_letters_only and target.name in options.destinations,
    )
    if options.orgs:  # a subset run leaves other organizations' dead letters alone
        planned = planned[planned["record_key"].isin(desired["record_key"])]
    if options.retry_dead_letters_only:
        planned = planned[planned["action"] == "retry"]
    result: dict = {"target": target.name, "plan": planning.counts(planned)}
    work.write_frame(f"{prefix}/plan.parquet", planned.drop(columns="payload"))
    sample = planned[planned["action"] != "unchanged"].head(5)[["record_key", "action", "payload"]]
    plan_doc = {**result, "sample": sample.to_dict("records")}
    work.write_bytes(f"{prefix}/plan.json", json.dumps(plan_doc, indent=2, default=str).encode())
    log.info("%s plan: %s", target.name, result["plan"])
    if options.dry_run:
        return {**result, "dry_run": True}

    to_send = planned[planned["action"].isin(planning.SEND)].reset_index(drop=True)
    records = [
        {"record_key": k, "payload": json.loads(p), "as_of": as_of}
        for k, p in zip(to_send["record_key"], to_send["payload"], strict=True)
    ]
    with cutoff_scope():  # the journaled batches (and clients) of this target share the cut-off
        outcomes, new_state = _send(
            settings, target, work=work, to_send=to_send, records=records, snapshot=snapshot, as_of=as_of
        )
    result.update(outcome_counts(outcomes))
    result["outcomes"] = work.write_frame(f"{prefix}/outcomes.parquet", outcomes)
    dead = new_state[new_state["status"].isin(["failed", "unconfirmed"])]
    result["dead_letters_waiting"] = int((dead["status"] == "failed").sum())
    unconfirmed = int((dead["status"] == "unconfirmed").sum())
    if unconfirmed:
        result["unconfirmed"] = unconfirmed
        log.warning(
            "%s: %d deliveries unconfirmed (sent, outcome unknown): not sent again until on-call "
            "checks the vendor (plg-bridge dead-letters list)",
            target.name,
            unconfirmed,
        )
    if len(dead):
        result["dead_letters"] = work.write_frame(f"{prefix}/dead_letters.parquet", dead)
    result["seconds"] = round(time.monotonic() - started, 2)
    log.info("%s delivered: %s", target.name, {k: v for k, v in result.items() if isinstance(v, int)})

    sent = len(records)
    share = result["failed"] / sent if sent else 0.0
    if share > settings.delivery.max_rejected_share:
        failed = outcomes[outcomes["status"] == "failed"]
        examples = "; ".join(
            f"{r.record_key}: {r.error_code} {r.error_message}" for r in failed.head(3).itertuples()
        )
        raise RejectedRowsError(
            f"{target.name}: {result['failed']} of {sent} rows rejected ({share:.0%} > "
            f"{settings.delivery.max_rejected_share:.0%}); delivered rows are committed, rejected rows wait "
            f"as dead letters in {result.get('dead_letters')}. First: {examples}"
        )
    return result


def _send(
    settings: Settings,
    target: Target,
    *,
    work: Location,
    to_send: pd.DataFrame,
    records: list[dict],
    snapshot: state.Snapshot,
    as_of: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deliver the planned rows; returns (outcomes, the new committed state)."""
    from plg_bridge.delivery.outcomes import outcomes_frame

    if records and target.journal is not None:
        return _send_journaled(
            settings, target, work=work, to_send=to_send, records=records, snapshot=snapshot, as_of=as_of
        )
    outcomes = target.send(settings, records) if records else outcomes_frame([])
    new_state = planning.apply_outcomes(snapshot.frame, to_send, outcomes, as_of)
    state.commit(work, target.name, new_state, snapshot.version)
    return outcomes, new_state


def _send_journaled(
    settings: Settings,
    target: Target,
    *,
    work: Location,
    to_send: pd.DataFrame,
    records: list[dict],
    snapshot: state.Snapshot,
    as_of: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Send in batches through the journal; returns (outcomes, final state). The destination marks
    rows in flight as their request leaves (`journal.departing`); unknown outcomes are looked up.
    A batch that raises after some of its rows left: those rows are unknown (looked up), the
    rest of the target is not sent this run (failed NOT_SENT, retried next run)."""
    import pandas as pd

    from plg_bridge.delivery.outcomes import failed, outcomes_frame

    book = journal.Journal(work, target.name, snapshot, to_send, as_of)
    size = max(1, int(target.journal(settings)))
    parts = []
    stop: str | None = None
    with book.active():
        for start in range(0, len(records), size):
            sent = to_send.iloc[start : start + size]
            keys = [str(k) for k in sent["record_key"]]
            if stop is not None:
                got = outcomes_frame(failed(keys, "NOT_SENT", f"not sent: {stop}"))
            else:
                try:
                    got = target.send(settings, records[start : start + size])
                except ConflictError:
                    raise
                except Exception as exc:
                    left = [k for k in keys if k in book.departed]
                    if not left and not parts:
                        raise  # before anything left (connection lookup, client setup): a plain failure
                    stop = f"{type(exc).__name__}: {exc}"[:500]
                    log.error(
                        "%s: sending a batch raised %s; the rest waits for the next run", target.name, stop
                    )
                    got = outcomes_frame(
                        failed(left, "DELIVERY_UNKNOWN", f"no answer read: {stop}")
                        + failed([k for k in keys if k not in book.departed], "NOT_SENT", f"not sent: {stop}")
                    )
            got = _look_up_unknown(settings, target, book, got)
            book.settle(sent, got)
            parts.append(got)
    return pd.concat(parts, ignore_index=True), book.frame


def _look_up_unknown(
    settings: Settings, target: Target, book: journal.Journal, got: pd.DataFrame
) -> pd.DataFrame:
    """Rows of a batch whose request left but whose answer was lost: looked up at the vendor.
    Found: created with the vendor's id. Not found / undecided: still unknown, the message says
    what the lookup saw (the journal keeps them unconfirmed)."""
    got = got.copy()
    left = got["record_key"].isin(list(book.departed))
    unknown = left & (got["status"] == "failed") & planning.unknown_outcome(got["error_code"])
    if not unknown.any():
        return got
    keys = set(got.loc[unknown, "record_key"])
    rows = book.frame[book.frame["record_key"].isin(keys)]
    found, absent, undecided = journal.lookup(target, settings, rows, waits=journal.SETTLE_WAITS)
    log.warning(
        "%s: %d rows sent without a usable answer; looked up at the vendor: %d found, %d not found%s",
        target.name,
        len(keys),
        len(found),
        len(absent),
        f", undecided ({undecided})" if undecided else "",
    )
    for n in got.index[unknown]:
        key = got.at[n, "record_key"]
        if key in found:
            got.loc[n, ["status", "destination_id", "error_code", "error_message"]] = [
                "created",
                found[key],
                None,
                None,
            ]
        elif key in absent:
            got.at[n, "error_message"] = (
                f"{got.at[n, 'error_message']} | not found at the vendor by its key yet: held; a later run "
                "looks again and resends it if it is still missing"
            )[:1000]
        else:
            got.at[n, "error_message"] = f"{got.at[n, 'error_message']} | {undecided}: check the vendor"[
                :1000
            ]
    return got.astype("string")


def deliver_targets(
    as_of: datetime, options: RunOptions, ws: Workspace | None = None, prefix: str | None = None
) -> list[dict]:
    """Every target of the run, one after another, each on its own: a target that raises (too
    many rows rejected, a missing connection, a lost state commit) is reported with `error` and
    `error_kind` ("configuration" or "delivery") and the next target still runs."""
    from plg_bridge.delivery.targets import TARGETS
    from plg_bridge.delivery.transport import cutoff_scope
    from plg_bridge.workspace import Workspace

    ws = ws or Workspace.load()
    results = []
    with cutoff_scope():  # a destination found unreachable is cut off for all its targets
        for name in TARGETS:
            results.append(_isolated(name, as_of, options, ws, prefix))
    return results


def _isolated(name: str, as_of: datetime, options: RunOptions, ws: Workspace, prefix: str | None) -> dict:
    """One target of deliver_targets: its failure becomes its result."""
    from plg_bridge.redact import strip_secrets

    try:
        return deliver_run(name, as_of, options, ws, prefix)
    except Exception as exc:
        kind = "configuration" if is_configuration_error(exc) else "delivery"
        # the caller reports it (the CLI: one line per problem, then the exit code)
        level = logging.INFO if kind == "configuration" else logging.ERROR
        log.log(level, "%s failed (%s): %s", name, kind, exc)
        error = strip_secrets(f"{type(exc).__name__}: {exc}")[:1000]  # a vendor body may echo headers
        return {"target": name, "error": error, "error_kind": kind}


def is_configuration_error(exc: BaseException) -> bool:
    """A missing Airflow connection (or one without its secret): the operator's to fix."""
    from plg_bridge.config import ConfigError

    return type(exc).__name__ == "AirflowNotFoundException" or isinstance(exc, ConfigError)


def deliver_run(
    target_name: str,
    as_of: datetime,
    options: RunOptions,
    ws: Workspace | None = None,
    prefix: str | None = None,
) -> dict:
    """The DAG's delivery step for one target: skipped when paused or not selected, else synced."""
    from plg_bridge.delivery.targets import TARGETS, skip_reason
    from plg_bridge.workspace import Workspace

    ws = ws or Workspace.load()
    target = TARGETS[target_name]
    why = skip_reason(target, ws.settings, options.destinations)
    if why:
        log.info("%s skipped: %s", target_name, why)
        return {"target": target_name, "skipped": why}
    inputs = RunInputs(ws.settings.work_location, ws.settings.exports.endpoint_url, as_of, prefix)
    return sync_target(ws.settings, target, inputs, options)

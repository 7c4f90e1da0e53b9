"""Plan, deliver and commit one target: the same steps for every destination.

    desired records -> plan against the target's state -> (dry run: stop, the plan is written)
    -> send creates, updates and retries -> every row's outcome -> commit the new state
    (conditional write) -> outcomes and dead letters beside the run's outputs

A run whose rejected-row share exceeds `delivery.max_rejected_share` fails after committing
what it delivered, so good rows are never sent twice and bad rows wait as dead letters.

Create-once targets the vendor cannot dedupe (HubSpot tasks, Slack messages: `Target.journal`)
go out in batches, and the state is committed around each one: first its keys as unconfirmed
(in flight), then its outcomes. A run killed mid-batch thus leaves that batch unconfirmed rather
than unrecorded, and so does an answer that never came (timeout, reset after sending). Both may
exist at the vendor: no normal run sends them again (that is how a task or alert would be
created twice); they are listed for on-call, who checks the vendor and then confirms them
(`plg-bridge dead-letters confirm`) or resends them (`dead-letters replay --targets <target>`).
Earlier batches stay delivered, later ones are sent by the next run.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from plg_bridge.controls import RunOptions
from plg_bridge.delivery import plan as planning
from plg_bridge.delivery import state
from plg_bridge.storage import location
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
    from plg_bridge.delivery.outcomes import outcomes_frame

    started = time.monotonic()
    work = location(settings.work_location, settings.exports.endpoint_url)
    as_of = inputs.as_of.date().isoformat()
    prefix = f"{inputs.run_prefix}/{target.name}"

    desired = planning.records_frame(_only_orgs(target.build(inputs, settings), options.orgs))
    snapshot = state.load(work, target.name)
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
    if records and target.journal is not None:
        outcomes, new_state = _send_journaled(
            settings, target, work=work, to_send=to_send, records=records, snapshot=snapshot, as_of=as_of
        )
    else:
        outcomes = target.send(settings, records) if records else outcomes_frame([])
        new_state = planning.apply_outcomes(snapshot.frame, to_send, outcomes, as_of)
        state.commit(work, target.name, new_state, snapshot.version)

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
    """Send in batches, committing each batch's keys as in flight before it goes out and its
    outcomes after; returns (outcomes, final state). Every commit is conditional on the previous
    one, so a concurrent run of the window still loses with ConflictError (before sending)."""
    import pandas as pd

    frame, version = snapshot.frame, snapshot.version
    size = max(1, int(target.journal(settings)))
    parts = []
    for start in range(0, len(records), size):
        sent = to_send.iloc[start : start + size]
        before = frame
        frame = planning.in_flight(frame, sent, as_of)
        version = state.commit(work, target.name, frame, version)
        try:
            got = target.send(settings, records[start : start + size])
        except Exception:
            # Destinations report every transport failure as an outcome, so an exception here
            # comes before anything was sent (connection lookup, client setup): put the batch back.
            state.commit(work, target.name, before, version)
            raise
        frame = planning.apply_outcomes(frame, sent, got, as_of, unknown_unconfirmed=True)
        version = state.commit(work, target.name, frame, version)
        parts.append(got)
    return pd.concat(parts, ignore_index=True), frame


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

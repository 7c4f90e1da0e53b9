"""Plan, deliver and commit one target: the same steps for every destination.

    desired records -> plan against the target's state -> (dry run: stop, the plan is written)
    -> send creates, updates and retries -> every row's outcome -> commit the new state
    (conditional write) -> outcomes and dead letters beside the run's outputs

A run whose rejected-row share exceeds `delivery.max_rejected_share` fails after committing
what it delivered, so good rows are never sent twice and bad rows wait as dead letters.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from plg_bridge.controls import RunOptions
from plg_bridge.storage import location
from plg_bridge.sync import plan as planning
from plg_bridge.sync import state
from plg_bridge.window import run_prefix

if TYPE_CHECKING:
    import pandas as pd

    from plg_bridge.config import Settings
    from plg_bridge.sync.targets import Target
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
    _cache: dict = field(default_factory=dict)

    def frame(self, name: str) -> pd.DataFrame:
        """`runs/as_of=.../<name>.parquet`; an absent optional output reads as empty."""
        import pandas as pd

        if name not in self._cache:
            work = location(self.work_uri, self.endpoint_url)
            key = f"{run_prefix(self.as_of)}/{name}.parquet"
            self._cache[name] = work.read_frame(key) if work.exists(key) else pd.DataFrame()
        return self._cache[name]


def outcome_counts(outcomes: pd.DataFrame) -> dict[str, int]:
    tally = outcomes["status"].value_counts() if len(outcomes) else {}
    return {status: int(tally.get(status, 0)) for status in ("created", "updated", "failed")}


def _only_orgs(records: list[dict], orgs: tuple[str, ...]) -> list[dict]:
    return [r for r in records if not orgs or r.get("org_id") in orgs]


def sync_target(settings: Settings, target: Target, inputs: RunInputs, options: RunOptions) -> dict:
    """Plan and (unless dry run) deliver one target; returns counts and URIs for XCom and the report."""
    from plg_bridge.sync.outcomes import outcomes_frame

    started = time.monotonic()
    work = location(settings.work_location, settings.exports.endpoint_url)
    as_of = inputs.as_of.date().isoformat()
    prefix = f"{run_prefix(inputs.as_of)}/{target.name}"

    desired = planning.records_frame(_only_orgs(target.build(inputs, settings), options.orgs))
    snapshot = state.load(work, target.name)
    planned = planning.plan(
        desired, snapshot.frame, full_resync=options.full_resync, create_once=target.create_once
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
        {"record_key": k, "payload": json.loads(p)}
        for k, p in zip(to_send["record_key"], to_send["payload"], strict=True)
    ]
    outcomes = target.send(settings, records) if records else outcomes_frame([])
    new_state = planning.apply_outcomes(snapshot.frame, to_send, outcomes, as_of)
    state.commit(work, target.name, new_state, snapshot.version)

    result.update(outcome_counts(outcomes))
    result["outcomes"] = work.write_frame(f"{prefix}/outcomes.parquet", outcomes)
    dead = new_state[new_state["status"] == "failed"]
    result["dead_letters_waiting"] = len(dead)
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


def deliver_run(target_name: str, as_of: datetime, options: RunOptions, ws: Workspace | None = None) -> dict:
    """The DAG's delivery step for one target: skipped when paused or not selected, else synced."""
    from plg_bridge.sync.targets import TARGETS, skip_reason
    from plg_bridge.workspace import Workspace

    ws = ws or Workspace.load()
    target = TARGETS[target_name]
    why = skip_reason(target, ws.settings, options.destinations)
    if why:
        log.info("%s skipped: %s", target_name, why)
        return {"target": target_name, "skipped": why}
    inputs = RunInputs(ws.settings.work_location, ws.settings.exports.endpoint_url, as_of)
    return sync_target(ws.settings, target, inputs, options)

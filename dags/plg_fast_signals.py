"""plg_fast_signals: PQL, usage-ceiling, enterprise-interest and Aha alerts minutes after an export lands.

    ExportLandedTrigger (triggerer) -> asset event -> resolve_instant -> discover -> not_rolled_up
    -> rollup (one mapped task per new export file; the partials are the daily run's too)
    -> score (the next daily window, on what has landed) -> deliver_<alert target> -> report (latency)

No worker slot polls: the export location is watched by an event trigger in the triggerer (an
`AssetWatcher`), and every landing schedules a run. Only create-once alerts are delivered (Slack
digest, HubSpot AE tasks, Intercom events, Salesforce lead status), through the daily run's targets
and delivery state: a signal alerted here is never alerted again by `plg_reverse_etl`, and the other
way round. See plg_bridge/fast.py for the window and docs/runbook.md for operating it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, AssetWatcher, Param, dag, get_current_context, task

from plg_bridge.airflow.tasks import DEFAULT_ARGS, not_rolled_up, rollup
from plg_bridge.airflow.triggers import ExportLandedTrigger
from plg_bridge.config import load_settings
from plg_bridge.delivery.targets import TARGETS
from plg_bridge.fast import FAST_TARGETS, asset_uri

_settings = load_settings()
EXPORT_LANDED = Asset(
    name="posthog_export_landed",
    uri=asset_uri(_settings.exports.location),
    watchers=[
        AssetWatcher(
            name="posthog_export_watcher",
            trigger=ExportLandedTrigger(
                location=_settings.exports.location,
                endpoint_url=_settings.exports.endpoint_url,
                poll_seconds=_settings.fast.poll_seconds,
            ),
        )
    ],
)
NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}


@dag(
    dag_id="plg_fast_signals",
    schedule=[EXPORT_LANDED],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # runs queue up: one writer of the alert targets' state at a time
    default_args={**DEFAULT_ARGS, "retries": 1},
    params={
        "at": Param(
            None,
            type=["null", "string"],
            description="Instant to evaluate (an export interval end, ISO 8601 UTC); default: the landing",
        ),
        "orgs": Param([], **NAMES, description="Only these organization ids (empty: all)"),
        "destinations": Param([], **NAMES, description="Only these destinations or targets (empty: all)"),
        "dry_run": Param(False, type="boolean", description="Plan only: write what would be sent"),
    },
    tags=["plg", "fast-path"],
    doc_md=__doc__,
)
def plg_fast_signals():
    @task
    def resolve_instant() -> dict:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from plg_bridge.fast import FastPathError, FastPathPaused, resolve_run

        ctx = get_current_context()
        events = ctx["triggering_asset_events"].values()
        payloads = [(e.extra or {}).get("payload") or {} for batch in events for e in batch]
        try:
            return resolve_run(payloads, ctx["params"])
        except FastPathPaused as exc:
            raise AirflowSkipException(str(exc)) from exc
        except FastPathError as exc:  # retrying cannot help: fail now, with the reason
            raise AirflowFailException(str(exc)) from exc

    @task
    def discover(moment: dict) -> list[dict]:
        from plg_bridge.fast import files_at
        from plg_bridge.workspace import Workspace

        files = files_at(Workspace.load().exports, datetime.fromisoformat(moment["instant"]))
        return [f.to_xcom() for f in files]

    @task(trigger_rule="none_failed")
    def score(moment: dict, files: list[dict]) -> dict:
        from plg_bridge.fast import score_at
        from plg_bridge.ingest.layout import ExportFile
        from plg_bridge.workspace import Workspace

        found = [ExportFile.from_xcom(f) for f in files]
        return score_at(Workspace.load(), found, datetime.fromisoformat(moment["instant"]))

    @task
    def deliver(target: str, moment: dict, scored: dict) -> dict:
        from plg_bridge.controls import RunOptions
        from plg_bridge.fast import deliver_at

        options = RunOptions.from_params(get_current_context()["params"])
        return deliver_at(target, datetime.fromisoformat(moment["instant"]), options)

    @task(trigger_rule="none_failed")  # skipped targets (not enabled) still get the run reported
    def report(moment: dict | None, scored: dict | None, deliveries: list[dict]) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from plg_bridge.fast import write_report
        from plg_bridge.workspace import Workspace

        if not moment or not scored:
            raise AirflowSkipException("nothing was evaluated: the fast path is paused")
        landed = datetime.fromisoformat(moment["landed_at"]) if moment.get("landed_at") else None
        at = datetime.fromisoformat(moment["instant"])
        return write_report(Workspace.load(), at, landed, scored, deliveries, finished_at=datetime.now(UTC))

    moment = resolve_instant()
    files = discover(moment)
    rollups = rollup.expand(file=not_rolled_up(files))
    scored = score(moment, files)
    rollups >> scored
    deliveries = [
        deliver.override(task_id=f"deliver_{name}", pool=f"plg_{TARGETS[name].destination}")(
            name, moment, scored
        )
        for name in FAST_TARGETS
    ]
    report(moment, scored, deliveries)


plg_fast_signals()

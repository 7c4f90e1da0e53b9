"""plg_reverse_etl: PostHog export -> PQL scores -> HubSpot (and the other targets), daily.

    resolve_window -> wait_for_export -> discover -> not_rolled_up -> rollup (one mapped task per
    new export file) -> score -> deliver_<target> (one task per target, in its destination's pool)
    -> summary

Every task body calls plain functions of `plg_bridge` (see docs/architecture.md); heavy imports
stay inside the tasks so this file parses in milliseconds. XCom carries URIs and counts only.
On-call controls are the params below (see docs/runbook.md).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, get_current_context, task

from plg_bridge.airflow.tasks import DEFAULT_ARGS, as_of_param, ingest
from plg_bridge.delivery.targets import TARGETS

NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}


@dag(
    dag_id="plg_reverse_etl",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one writer of each target's delivery state at a time
    default_args=DEFAULT_ARGS,
    params={
        "as_of": as_of_param(),
        "orgs": Param([], **NAMES, description="Only these organization ids (empty: all)"),
        "destinations": Param(
            [], **NAMES, description="Only these destinations or targets, e.g. hubspot (empty: all enabled)"
        ),
        "dry_run": Param(
            False, type="boolean", description="Plan only: write what would be sent, send nothing"
        ),
        "full_resync": Param(False, type="boolean", description="Send every record, changed or not"),
        "retry_dead_letters_only": Param(
            False, type="boolean", description="Send only rows that failed before"
        ),
    },
    tags=["plg", "reverse-etl"],
    doc_md=__doc__,
)
def plg_reverse_etl():
    @task(trigger_rule="none_failed")
    def score(as_of: str, files: list[dict]) -> dict:
        from plg_bridge.ingest.layout import ExportFile
        from plg_bridge.pipeline import score_run
        from plg_bridge.workspace import Workspace

        return score_run(
            Workspace.load(), [ExportFile.from_xcom(f) for f in files], datetime.fromisoformat(as_of)
        )

    @task
    def deliver(target: str, as_of: str, scored: dict) -> dict:
        from plg_bridge.controls import RunOptions
        from plg_bridge.delivery.deliver import deliver_run

        params = get_current_context()["params"]
        return deliver_run(target, datetime.fromisoformat(as_of), RunOptions.from_params(params))

    @task
    def summary(as_of: str, scored: dict, deliveries: list[dict]) -> dict:
        from plg_bridge.report.summary import write_run_summary
        from plg_bridge.workspace import Workspace

        return write_run_summary(Workspace.load(), datetime.fromisoformat(as_of), scored, deliveries)

    as_of, files, rollups = ingest()
    scored = score(as_of, files)
    rollups >> scored
    deliveries = {
        name: deliver.override(task_id=f"deliver_{name}", pool=f"plg_{t.destination}")(name, as_of, scored)
        for name, t in TARGETS.items()
    }
    for name, t in TARGETS.items():
        if t.after:
            deliveries[t.after] >> deliveries[name]
    summary(as_of, scored, list(deliveries.values()))


plg_reverse_etl()

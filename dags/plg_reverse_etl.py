"""plg_reverse_etl: PostHog export -> PQL scores -> HubSpot (and the other targets), daily.

    resolve_window -> wait_for_export -> discover -> not_rolled_up -> rollup (one mapped task per
    new export file) -> score -> deliver_<target> (one task per target, in its destination's pool)
    -> summary

Every task body calls plain functions of `plg_bridge` (see docs/architecture.md); heavy imports
stay inside the tasks so this file parses in milliseconds. XCom carries URIs and counts only.
On-call controls are the params below (see docs/runbook.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from plg_bridge.alerts import on_failure
from plg_bridge.sync.targets import TARGETS

DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": on_failure,  # Slack alert with DAG, task, window, error and log link
}
NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}


@dag(
    dag_id="plg_reverse_etl",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one writer of each target's delivery state at a time
    default_args=DEFAULT_ARGS,
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Window end T (YYYY-MM-DD, exclusive); required for a manual run without a logical date",
        ),
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
    @task
    def resolve_window() -> str:
        from plg_bridge.controls import ControlError, RunOptions
        from plg_bridge.window import WindowError, resolve_as_of, run_date

        ctx = get_current_context()
        try:
            RunOptions.from_params(ctx["params"])
            return resolve_as_of(run_date(ctx), ctx["params"]).isoformat()
        except (WindowError, ControlError) as exc:  # retrying cannot help: fail now, with the reason
            raise AirflowFailException(str(exc)) from exc

    @task.sensor(poke_interval=300, timeout=24 * 3600, mode="reschedule")
    def wait_for_export(as_of: str) -> bool:
        from plg_bridge.exports.completeness import IncompleteExportError, ready
        from plg_bridge.workspace import Workspace

        ws = Workspace.load()
        try:
            return ready(
                ws.exports, datetime.fromisoformat(as_of), ws.settings.exports, now=datetime.now(UTC)
            )
        except IncompleteExportError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task
    def discover(as_of: str) -> list[dict]:
        from plg_bridge.pipeline import discover
        from plg_bridge.workspace import Workspace

        return [f.to_xcom() for f in discover(Workspace.load().exports, datetime.fromisoformat(as_of))]

    @task
    def not_rolled_up(files: list[dict]) -> list[dict]:
        """Files whose current version has no partial yet: only new data is processed."""
        from plg_bridge.exports.layout import ExportFile
        from plg_bridge.pipeline import pending
        from plg_bridge.workspace import Workspace

        return [f.to_xcom() for f in pending(Workspace.load().work, [ExportFile.from_xcom(f) for f in files])]

    @task(map_index_template="{{ task.op_kwargs['file']['label'] }}")
    def rollup(file: dict) -> dict:
        from plg_bridge.exports.layout import ExportFile
        from plg_bridge.pipeline import rollup_to
        from plg_bridge.workspace import Workspace

        ws = Workspace.load()
        return rollup_to(ws.exports, ws.work, ExportFile.from_xcom(file), ws.settings)

    @task(trigger_rule="none_failed")
    def score(as_of: str, files: list[dict]) -> dict:
        from plg_bridge.exports.layout import ExportFile
        from plg_bridge.pipeline import score_run
        from plg_bridge.workspace import Workspace

        return score_run(
            Workspace.load(), [ExportFile.from_xcom(f) for f in files], datetime.fromisoformat(as_of)
        )

    @task
    def deliver(target: str, as_of: str, scored: dict) -> dict:
        from plg_bridge.controls import RunOptions
        from plg_bridge.sync.deliver import deliver_run

        params = get_current_context()["params"]
        return deliver_run(target, datetime.fromisoformat(as_of), RunOptions.from_params(params))

    @task
    def summary(as_of: str, scored: dict, deliveries: list[dict]) -> dict:
        from plg_bridge.report import write_run_summary
        from plg_bridge.workspace import Workspace

        return write_run_summary(Workspace.load(), datetime.fromisoformat(as_of), scored, deliveries)

    as_of = resolve_window()
    files = discover(as_of)
    wait_for_export(as_of) >> files
    scored = score(as_of, files)
    rollup.expand(file=not_rolled_up(files)) >> scored
    deliveries = {
        name: deliver.override(task_id=f"deliver_{name}", pool=f"plg_{t.destination}")(name, as_of, scored)
        for name, t in TARGETS.items()
    }
    for name, t in TARGETS.items():
        if t.after:
            deliveries[t.after] >> deliveries[name]
    summary(as_of, scored, list(deliveries.values()))


plg_reverse_etl()

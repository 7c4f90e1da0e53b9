"""plg_insights_report: the weekly PLG insights report for the growth team.

    resolve_window -> wait_for_export -> discover -> not_rolled_up -> rollup (one mapped task per
    new export file, the same partials plg_reverse_etl uses) -> report -> notify

`report` runs the models as of T (activation / time-to-value, odds ratios, revenue by original
source, PQL funnel, PQL threshold calibration) and writes report.html, summary.md, charts/*.png and
data/*.csv under `<work_location>/insights/as_of=YYYY-MM-DD/`; `notify` posts a short Slack summary
with the report's location (settings.slack). Task bodies call plg_bridge functions (see
plg_bridge/insights.py); heavy imports stay inside the tasks. XCom carries URIs and counts only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from plg_bridge.alerts import on_failure

DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": on_failure,  # Slack alert with DAG, task, window, error and log link
}


@dag(
    dag_id="plg_insights_report",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Report as of T (YYYY-MM-DD, exclusive); required for a manual run without a logical date",
        ),
    },
    tags=["plg", "insights"],
    doc_md=__doc__,
)
def plg_insights_report():
    @task
    def resolve_window() -> str:
        from plg_bridge.window import WindowError, resolve_as_of, run_date

        ctx = get_current_context()
        try:
            return resolve_as_of(run_date(ctx), ctx["params"]).isoformat()
        except WindowError as exc:  # retrying cannot help: fail now, with the reason
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
        """Files whose current version has no partial yet (plg_reverse_etl usually made them)."""
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
    def report(as_of: str, files: list[dict]) -> dict:
        from plg_bridge.exports.layout import ExportFile
        from plg_bridge.insights import write_report
        from plg_bridge.workspace import Workspace

        return write_report(
            Workspace.load(), [ExportFile.from_xcom(f) for f in files], datetime.fromisoformat(as_of)
        )

    @task
    def notify(written: dict) -> str:
        from plg_bridge.insights import post_summary
        from plg_bridge.workspace import Workspace

        return post_summary(Workspace.load().settings, written)

    as_of = resolve_window()
    files = discover(as_of)
    wait_for_export(as_of) >> files
    written = report(as_of, files)
    rollup.expand(file=not_rolled_up(files)) >> written
    notify(written)


plg_insights_report()

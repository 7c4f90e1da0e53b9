"""plg_insights_report: the weekly PLG insights report for the growth team.

    resolve_window -> wait_for_export -> discover -> not_rolled_up -> rollup (one mapped task per
    new export file, the same partials plg_reverse_etl uses) -> report -> notify

`report` runs the models as of T (activation / time-to-value, odds ratios, revenue by original
source, PQL funnel, PQL trend, PQL threshold calibration) and writes report.html, summary.md,
charts/*.png and data/*.csv under `<work_location>/insights/as_of=YYYY-MM-DD/`; `notify` posts a short
Slack summary with the report's location (settings.slack). Task bodies call plg_bridge functions
(plg_bridge/report/publish.py: build.py gathers the models, charts.py draws, render.py fills the
Jinja2 templates); heavy imports stay inside the tasks. XCom carries URIs and counts only.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from plg_bridge.airflow.tasks import DEFAULT_ARGS, as_of_param, ingest


@dag(
    dag_id="plg_insights_report",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "as_of": as_of_param(),
    },
    tags=["plg", "insights"],
    doc_md=__doc__,
)
def plg_insights_report():
    @task(trigger_rule="none_failed")
    def report(as_of: str, files: list[dict]) -> dict:
        from plg_bridge.report.publish import report_step

        return report_step(as_of, files)

    @task
    def notify(written: dict) -> str:
        from plg_bridge.report.publish import notify_step

        return notify_step(written)

    as_of, files, rollups = ingest()
    written = report(as_of, files)
    rollups >> written
    notify(written)


plg_insights_report()

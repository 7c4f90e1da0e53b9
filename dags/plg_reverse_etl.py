"""plg_reverse_etl: PostHog export -> PQL scores -> HubSpot, once per day.

    resolve_window -> wait_for_export -> discover -> not_rolled_up -> rollup (one mapped task per new
        export file) -> score -> deliver_hubspot -> summary

Every task body calls plain functions of `plg_bridge` (see docs/architecture.md); heavy imports
stay inside the tasks so this file parses in milliseconds. XCom carries URIs and counts only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=1),
}


@dag(
    dag_id="plg_reverse_etl",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one writer of the delivery state at a time
    default_args=DEFAULT_ARGS,
    params={
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Window end T (YYYY-MM-DD, exclusive). Required for a manual run without a logical date.",
        ),
    },
    tags=["plg", "reverse-etl"],
    doc_md=__doc__,
)
def plg_reverse_etl():
    @task
    def resolve_window() -> str:
        from plg_bridge.window import WindowError, resolve_as_of

        ctx = get_current_context()
        try:
            return resolve_as_of(ctx.get("data_interval_end"), ctx["params"]).isoformat()
        except WindowError as exc:  # retrying cannot help: fail now, with the reason
            raise AirflowFailException(str(exc)) from exc

    @task.sensor(poke_interval=300, timeout=24 * 3600, mode="reschedule")
    def wait_for_export(as_of: str) -> bool:
        from plg_bridge.config import load_settings
        from plg_bridge.exports.completeness import IncompleteExportError, ready
        from plg_bridge.storage import location

        settings = load_settings().exports
        try:
            return ready(
                location(settings.location, settings.endpoint_url),
                datetime.fromisoformat(as_of),
                settings,
                now=datetime.now(UTC),
            )
        except IncompleteExportError as exc:
            raise AirflowFailException(str(exc)) from exc

    @task
    def discover(as_of: str) -> list[dict]:
        from plg_bridge.config import load_settings
        from plg_bridge.pipeline import discover
        from plg_bridge.storage import location

        settings = load_settings().exports
        files = discover(location(settings.location, settings.endpoint_url), datetime.fromisoformat(as_of))
        return [f.to_xcom() for f in files]

    @task
    def not_rolled_up(files: list[dict]) -> list[dict]:
        """Files whose current version has no partial yet: only new data is processed."""
        from plg_bridge.config import load_settings
        from plg_bridge.exports.layout import ExportFile
        from plg_bridge.pipeline import pending
        from plg_bridge.storage import location

        settings = load_settings()
        work = location(settings.work_location, settings.exports.endpoint_url)
        return [f.to_xcom() for f in pending(work, [ExportFile.from_xcom(f) for f in files])]

    @task(map_index_template="{{ task.op_kwargs['file']['label'] }}")
    def rollup(file: dict) -> dict:
        from plg_bridge.config import load_settings
        from plg_bridge.exports.layout import ExportFile
        from plg_bridge.pipeline import rollup_to
        from plg_bridge.storage import location

        settings = load_settings()
        exports = location(settings.exports.location, settings.exports.endpoint_url)
        work = location(settings.work_location, settings.exports.endpoint_url)
        return rollup_to(exports, work, ExportFile.from_xcom(file), settings)

    @task(trigger_rule="none_failed")
    def score(as_of: str, files: list[dict]) -> dict:
        from plg_bridge.config import load_settings
        from plg_bridge.exports.layout import ExportFile
        from plg_bridge.pipeline import score_from_work, write_outputs
        from plg_bridge.storage import location
        from plg_bridge.window import run_prefix

        settings = load_settings()
        work = location(settings.work_location, settings.exports.endpoint_url)
        t = datetime.fromisoformat(as_of)
        result = score_from_work(work, [ExportFile.from_xcom(f) for f in files], t, settings)
        return {"outputs": write_outputs(result, work, run_prefix(t)), "quality": result.quality}

    @task
    def deliver_hubspot(as_of: str, scored: dict) -> dict:
        from plg_bridge.config import load_settings
        from plg_bridge.sync.deliver import deliver_scores_to_hubspot

        return deliver_scores_to_hubspot(
            load_settings(), scored["outputs"]["scores"], datetime.fromisoformat(as_of)
        )

    @task
    def summary(as_of: str, scored: dict, hubspot: dict) -> dict:
        from plg_bridge.config import load_settings
        from plg_bridge.report import write_run_summary

        return write_run_summary(load_settings(), datetime.fromisoformat(as_of), scored, {"hubspot": hubspot})

    as_of = resolve_window()
    files = discover(as_of)
    wait_for_export(as_of) >> files
    scored = score(as_of, files)
    rollup.expand(file=not_rolled_up(files)) >> scored
    summary(as_of, scored, deliver_hubspot(as_of, scored))


plg_reverse_etl()

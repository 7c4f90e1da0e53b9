"""The Airflow tasks both DAGs share: name the window, wait for the export, roll up new files.

    resolve_window -> wait_for_export -> discover -> not_rolled_up -> rollup (one mapped task per
    new export file)

Only the DAG files import this module (it imports the Airflow SDK); every task body calls plain
functions of the package, with heavy imports inside, so DAG files still parse in milliseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from plg_bridge.report.alerts import on_failure

DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
    "execution_timeout": timedelta(hours=1),
    "on_failure_callback": on_failure,  # Slack alert with DAG, task, window, error and log link
}


def as_of_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        format="date",
        description="Window end T (YYYY-MM-DD, exclusive); required for a manual run without a logical date",
    )


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
    from plg_bridge.ingest.completeness import IncompleteExportError, ready
    from plg_bridge.workspace import Workspace

    ws = Workspace.load()
    try:
        return ready(ws.exports, datetime.fromisoformat(as_of), ws.settings.exports, now=datetime.now(UTC))
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
    from plg_bridge.ingest.layout import ExportFile
    from plg_bridge.pipeline import pending
    from plg_bridge.workspace import Workspace

    return [f.to_xcom() for f in pending(Workspace.load().work, [ExportFile.from_xcom(f) for f in files])]


@task(map_index_template="{{ task.op_kwargs['file']['label'] }}")
def rollup(file: dict) -> dict:
    from plg_bridge.ingest.layout import ExportFile
    from plg_bridge.pipeline import rollup_to
    from plg_bridge.workspace import Workspace

    ws = Workspace.load()
    return rollup_to(ws.exports, ws.work, ExportFile.from_xcom(file), ws.settings)


def ingest():
    """Add the shared steps to the DAG being defined; returns (as_of, files, rollups) to build on."""
    as_of = resolve_window()
    files = discover(as_of)
    wait_for_export(as_of) >> files
    rollups = rollup.expand(file=not_rolled_up(files))
    return as_of, files, rollups

"""Every DAG file imports cleanly, quickly, and without pulling heavy libraries at parse time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import REPO


def test_dagbag_has_no_import_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["plg_reverse_etl"]
    assert dag.max_active_runs == 1
    assert {
        "resolve_window",
        "wait_for_export",
        "discover",
        "not_rolled_up",
        "rollup",
        "score",
        "deliver_hubspot_companies",
        "summary",
    } <= set(dag.task_ids)
    assert dag.get_task("deliver_hubspot_companies").pool == "plg_hubspot"
    assert set(dag.params) >= {
        "as_of",
        "orgs",
        "destinations",
        "dry_run",
        "full_resync",
        "retry_dead_letters_only",
    }
    for t in dag.tasks:
        assert t.execution_timeout is not None, f"{t.task_id} has no execution timeout"
        assert t.retries >= 1, f"{t.task_id} is never retried"


def test_the_fast_dag_is_scheduled_by_the_export_watcher():
    from airflow.dag_processing.dagbag import DagBag

    from plg_bridge.airflow.triggers import ExportLandedTrigger
    from plg_bridge.fast import FAST_TARGETS

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["plg_fast_signals"]
    assert dag.max_active_runs == 1
    (asset,) = dag.timetable.asset_condition.objects
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, ExportLandedTrigger)
    assert {f"deliver_{t}" for t in FAST_TARGETS} <= set(dag.task_ids)
    # the fast path only sends create-once alerts; CRM fields stay the daily run's
    assert not any(t in dag.task_ids for t in ("deliver_hubspot_companies", "deliver_salesforce_accounts"))
    assert dag.get_task("deliver_slack_digest").pool == "plg_slack"
    assert set(dag.params) >= {"at", "orgs", "destinations", "dry_run"}


@pytest.mark.parametrize("dag_file", ["plg_reverse_etl.py", "plg_fast_signals.py", "plg_insights_report.py"])
def test_dag_file_does_not_import_heavy_libraries(dag_file):
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "heavy = sorted(m for m in ('pandas', 'pyarrow', 'boto3', 'numpy') if m in sys.modules); print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "dags" / dag_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"

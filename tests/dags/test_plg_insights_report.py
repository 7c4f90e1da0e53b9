"""The weekly report DAG end to end with dag.test(): generated export -> partials -> report + Slack."""

from __future__ import annotations

import json
import re

import pytest

from plg_bridge.synthetic.generate import generate
from tests.fakes.slack import FakeSlack
from tests.support import REPO
from tests.support.clocks import AS_OF

REPORT = "insights/as_of=2026-11-20"


@pytest.fixture(scope="module")
def report_env(tmp_path_factory, airflow_db):
    """A generated export whose files, but the last two, plg_reverse_etl already rolled up (the
    partials are shared); a fake Slack workspace. One per module: dag.test() runs are the cost."""
    from plg_bridge.config import load_settings
    from plg_bridge.pipeline import discover, rollup_to
    from plg_bridge.storage import location

    root = tmp_path_factory.mktemp("insights") / "bucket"
    exports, work = root / "posthog", root / "plg-bridge"
    generate(str(exports), 30_000, AS_OF.date(), days=28)
    files = sorted(discover(location(str(exports))), key=lambda f: f.key)
    for file in files[:-2]:
        rollup_to(location(str(exports)), location(str(work)), file, load_settings(env={}))
    with FakeSlack(bot_token="xoxb-1", channels=("plg-alerts",)) as slack, pytest.MonkeyPatch.context() as mp:
        mp.setenv("PLG_BRIDGE__EXPORTS__LOCATION", str(exports))
        mp.setenv("PLG_BRIDGE__WORK_LOCATION", str(work))
        mp.setenv("PLG_BRIDGE__CALIBRATION__HORIZON_DAYS", "7")  # 28 days: 2 PQL weeks + 7 + a few dates
        conn = {"conn_type": "slack", "password": "xoxb-1", "extra": {"base_url": f"{slack.url}/api/"}}
        mp.setenv("AIRFLOW_CONN_SLACK_DEFAULT", json.dumps(conn))
        yield work, slack


def reports(slack) -> list[dict]:
    return [m for m in slack.messages("plg-alerts") if "PLG insights" in m["text"]]


def run_dag(logical_date=AS_OF, conf=None):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["plg_insights_report"].test(logical_date=logical_date, run_conf=conf)


def test_weekly_report_is_written_and_announced(report_env):
    work, slack = report_env
    assert run_dag().state == "success"

    folder = work / REPORT
    page = (folder / "report.html").read_text()
    for section in (
        "Headline",
        "Time to value",
        "Aha candidates",
        "Odds ratios",
        "Revenue by original source",
    ):
        assert f">{section}</h2>" in page
    assert ">PQL funnel</h2>" in page and ">PQL threshold calibration</h2>" in page
    assert ">PQL trend</h2>" in page
    charts = ("time_to_value", "odds_ratios", "revenue_by_source", "pql_funnel", "pql_trend", "calibration")
    assert len(re.findall(r'<img alt="[a-z_]+" src="data:image/png;base64,', page)) == len(charts)
    for name in charts:
        assert (folder / "charts" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 28 days of data: weekly points from two PQL weeks in (11-06 + 14d) to T
    trend = (folder / "data" / "pql_trend.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in trend] == ["as_of", "2026-11-06", "2026-11-13", "2026-11-20"]
    summary = (folder / "summary.md").read_text()
    assert summary.startswith("# PLG insights as of 2026-11-20")
    assert "## PQL threshold calibration" in summary and "| threshold |" in summary
    assert "(no rows)" not in summary.split("## PQL threshold calibration")[1]
    assert (folder / "data" / "calibration.csv").exists() and (folder / "data" / "milestones.csv").exists()
    # partials are the shared ones (plg_reverse_etl's layout), one per export file
    assert len(list((work / "partials").rglob("quality.json"))) == 28

    [message] = reports(slack)
    assert "PLG insights as of 2026-11-20" in message["text"]
    assert str(folder / "report.html") in message["text"]
    assert slack.broadcasts() == []


def test_manual_run_takes_its_window_from_the_as_of_param(report_env):
    work, slack = report_env
    assert run_dag(logical_date=None, conf={"as_of": "2026-11-13"}).state == "success"
    assert (work / "insights" / "as_of=2026-11-13" / "report.html").exists()
    assert "as of 2026-11-13" in reports(slack)[-1]["text"]


def test_manual_run_without_window_is_refused(report_env):
    work, slack = report_env
    before = sorted(p.name for p in (work / "insights").iterdir()), len(reports(slack))
    assert run_dag(logical_date=None).state == "failed"
    assert (sorted(p.name for p in (work / "insights").iterdir()), len(reports(slack))) == before


def test_dag_shape():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["plg_insights_report"]
    assert (dag.max_active_runs, dag.catchup) == (1, False)
    assert {
        "resolve_window",
        "wait_for_export",
        "discover",
        "not_rolled_up",
        "rollup",
        "report",
        "notify",
    } == set(dag.task_ids)
    assert set(dag.params) == {"as_of"}
    for t in dag.tasks:
        assert t.execution_timeout is not None and t.retries >= 1, t.task_id


def test_dag_file_does_not_import_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'boto3', 'numpy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "dags" / "plg_insights_report.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"

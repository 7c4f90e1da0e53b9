"""Writing the weekly insights report and announcing it (the `plg_insights_report` DAG's steps).

Written under the work location at `insights/as_of=YYYY-MM-DD/`: report.html (charts embedded, so
the page stands alone), charts/*.png, summary.md and data/*.csv. The output depends only on the
inputs and T: no clock, stable sort orders, PNGs without timestamps. Product data is inert in every
file: templates escape it (report/render.py), chart labels are never math text (report/charts.py),
CSV cells that a spreadsheet would run as formulas are neutralised (report/escape.to_csv), and the
Slack summary escapes mrkdwn.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plg_bridge.report.build import Insights, build, headline, report_prefix
from plg_bridge.report.tables import fmt, headline_lines

if TYPE_CHECKING:
    from plg_bridge.config import Settings
    from plg_bridge.ingest.layout import ExportFile
    from plg_bridge.storage import Location
    from plg_bridge.workspace import Workspace

log = logging.getLogger(__name__)


def data_tables(ins: Insights) -> dict[str, Any]:
    """name -> frame of every data/*.csv."""
    return {
        "milestones": ins.activation.milestones,
        "cohorts": ins.activation.cohorts,
        "aha": ins.activation.aha,
        "correlation": ins.activation.correlation,
        "revenue": ins.attribution.revenue,
        "funnel": ins.funnel,
        "pql_trend": ins.trend,
        "calibration": ins.calibration.curve,
        "calibration_dates": ins.calibration.dates,
    }


def write(ins: Insights, out: Location, prefix: str) -> dict[str, Any]:
    """report.html, summary.md, charts/*.png and data/*.csv under `prefix`; returns URIs + headline."""
    from plg_bridge.report.charts import charts
    from plg_bridge.report.escape import to_csv
    from plg_bridge.report.render import render_html, render_markdown

    pngs = charts(ins)
    written = {}
    for name, png in pngs.items():
        out.write_bytes(f"{prefix}/charts/{name}.png", png)
        written[name] = out.uri_of(f"{prefix}/charts/{name}.png")
    for name, frame in data_tables(ins).items():
        out.write_bytes(f"{prefix}/data/{name}.csv", to_csv(frame).encode())
    out.write_bytes(f"{prefix}/report.html", render_html(ins, pngs).encode())
    out.write_bytes(f"{prefix}/summary.md", render_markdown(ins).encode())
    return {
        "report": out.uri_of(f"{prefix}/report.html"),
        "summary": out.uri_of(f"{prefix}/summary.md"),
        "charts": written,
        "headline": headline(ins),
    }


def write_report(ws: Workspace, files: list[ExportFile], as_of: datetime) -> dict[str, Any]:
    """The DAG's report step: merge the stored partials of `files`, build, write; returns URIs."""
    from plg_bridge.ingest import rollup
    from plg_bridge.pipeline import partial_prefix

    partial = rollup.merge(rollup.read(ws.work, partial_prefix(f)) for f in files)
    if not files:  # nothing exported yet: an empty report rather than a failure
        partial = dataclasses.replace(partial, people=True)
    if not partial.people:
        raise ValueError(
            "the report needs the person tables: some partials were rolled up without them "
            "(plg_reverse_etl rolls up with people=True; re-roll those files)"
        )
    ins = build(partial, as_of, ws.settings)
    result = write(ins, ws.work, report_prefix(as_of))
    log.info("insights report as of %s: %s\n%s", ins.as_of, result["report"], "\n".join(headline_lines(ins)))
    return result


def report_step(as_of: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    """The `report` task: the deployment's workspace, the window's export files (as XCom carries
    them) and T as ISO text -> `write_report`'s URIs and headline."""
    from plg_bridge.ingest.layout import ExportFile
    from plg_bridge.workspace import Workspace

    files_ = [ExportFile.from_xcom(f) for f in files]
    return write_report(Workspace.load(), files_, datetime.fromisoformat(as_of))


def notify_step(written: dict[str, Any]) -> str:
    """The `notify` task: post the Slack summary of a written report with the deployment's settings."""
    from plg_bridge.workspace import Workspace

    return post_summary(Workspace.load().settings, written)


def slack_text(result: dict[str, Any]) -> str:
    """The short Slack summary (mrkdwn) of a written report; data-derived text escaped."""
    from plg_bridge.delivery.slack.mapping import escape_mrkdwn as esc

    h = result["headline"]
    rate = fmt(h["conversion_rate"], "pct")
    best = h["recommended_threshold"]
    new = f", {h['new_pqls']:,} new this week" if h.get("new_pqls") is not None else ""
    lines = [
        f":bar_chart: *PLG insights as of {esc(h['as_of'])}*",
        f"• Signups: {h['signed_up']:,} ({h['converted']:,} converted, {h['not_converted']:,} not, "
        f"{h['pending']:,} pending; rate {rate}) · Aha candidate: {esc(h['aha_candidate'] or 'none')}",
        f"• Revenue: {h['revenue']:,.0f} from {h['paid_conversions']:,} paid conversions · top source: "
        f"{esc(h['top_source'] or 'none')}",
        f"• PQLs: {h['pqls']:,} of {h['organizations_scored']:,} scored organizations{new} (threshold "
        f"{h['threshold']}) · calibration: "
        + (f"recommended threshold {best}" if best is not None else "no recommendation"),
        f"Report: {esc(result['report'])}",
    ]
    return "\n".join(lines)


def post_summary(settings: Settings, result: dict[str, Any]) -> str:
    """Post the Slack summary with settings.slack (never fails the task: see alerts.post)."""
    from plg_bridge.report.alerts import post

    text = slack_text(result)
    post(text, settings.slack.conn_id, settings.slack.channel)
    return text

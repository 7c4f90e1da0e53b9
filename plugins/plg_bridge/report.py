"""The run summary: what came in, what was scored, what each destination did.

Written as JSON (for machines and `plg-bridge status`) and Markdown (for people) beside the
run's outputs, and logged, so the on-call engineer sees the outcome in the task log.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from plg_bridge.storage import location
from plg_bridge.window import run_prefix

if TYPE_CHECKING:
    from plg_bridge.config import Settings

log = logging.getLogger(__name__)


def render_markdown(summary: dict) -> str:
    lines = [f"# plg-bridge run as of {summary['as_of']}", "", "## Data quality", ""]
    lines += [f"- {k}: {v:,}" for k, v in summary["quality"].items()]
    lines += ["", "## Top organizations", "", "| org | name | score | PQL |", "|---|---|---:|---|"]
    lines += [
        f"| {r['org_id']} | {r['org_name'] or ''} | {r['pql_score']} | {'yes' if r['is_pql'] else ''} |"
        for r in summary["top"]
    ]
    lines += [
        "",
        "## Destinations",
        "",
        "| destination | created | updated | failed |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {d.get('created', 0)} | {d.get('updated', 0)} | {d.get('failed', 0)} |"
        for name, d in summary["destinations"].items()
    ]
    return "\n".join(lines) + "\n"


def write_run_summary(
    settings: Settings, as_of: datetime, scored: dict, destinations: dict[str, dict]
) -> dict:
    """Write summary.json and summary.md for the run; returns their URIs and the headline counts."""
    work = location(settings.work_location, settings.exports.endpoint_url)
    scores = work.read_frame(work.key_of(scored["outputs"]["scores"]))
    summary = {
        "as_of": as_of.date().isoformat(),
        "quality": scored["quality"],
        "outputs": scored["outputs"],
        "top": scores.head(10).astype(object).where(scores.head(10).notna(), None).to_dict("records"),
        "destinations": destinations,
    }
    prefix = run_prefix(as_of)
    work.write_bytes(f"{prefix}/summary.json", json.dumps(summary, indent=2, default=str).encode())
    markdown = render_markdown(summary)
    work.write_bytes(f"{prefix}/summary.md", markdown.encode())
    log.info("run summary\n%s", markdown)
    return {"summary": work.uri_of(f"{prefix}/summary.json"), "report": work.uri_of(f"{prefix}/summary.md")}

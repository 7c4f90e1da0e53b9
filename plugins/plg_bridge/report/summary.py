"""The run summary: what came in, what was scored, what each target did.

Written as JSON (for machines and `plg-bridge status`) and Markdown (for people) beside the
run's outputs, and logged, so the on-call engineer sees the outcome in the task log.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from plg_bridge.window import run_prefix

if TYPE_CHECKING:
    from plg_bridge.workspace import Workspace

log = logging.getLogger(__name__)


def _cell(value: object) -> str:
    """Markdown text from product data (org ids and names come from events anyone can send):
    one line, `< > &` as entities, Markdown specials escaped (report/escape.py)."""
    from plg_bridge.report.escape import markdown_text

    return markdown_text(value)


def render_markdown(summary: dict) -> str:
    lines = [f"# plg-bridge run as of {summary['as_of']}", "", "## Data quality", ""]
    lines += [f"- {k}: {v:,}" for k, v in summary["quality"].items()]
    lines += ["", "## Top organizations", "", "| org | name | score | PQL |", "|---|---|---:|---|"]
    lines += [
        f"| {_cell(r['org_id'])} | {_cell(r['org_name'])} | {r['pql_score']} | {'yes' if r['is_pql'] else ''} |"
        for r in summary["top"]
    ]
    lines += [
        "",
        "## Delivery",
        "",
        "| target | planned (create/update/retry/unchanged) | created | updated | failed | dead letters waiting |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for d in summary["deliveries"]:
        if "skipped" in d:
            lines.append(f"| {d['target']} | skipped: {_cell(d['skipped'])} | | | | |")
            continue
        if "error" in d:  # the target failed; the run went on with the others (deliver_targets)
            lines.append(
                f"| {d['target']} | FAILED ({d.get('error_kind', 'delivery')}): {_cell(d['error'])} | | | | |"
            )
            continue
        p = d.get("plan", {})
        planned = f"{p.get('create', 0)}/{p.get('update', 0)}/{p.get('retry', 0)}/{p.get('unchanged', 0)}"
        if d.get("dry_run"):
            planned += " (dry run)"
        waiting = str(d.get("dead_letters_waiting", 0))
        if d.get("unconfirmed"):
            waiting += f" (+{d['unconfirmed']} unconfirmed)"
        lines.append(
            f"| {d['target']} | {planned} | {d.get('created', 0)} | {d.get('updated', 0)} | "
            f"{d.get('failed', 0)} | {waiting} |"
        )
    if summary.get("alerts"):
        lines += ["", "## Alerts", ""] + [f"- {_cell(a)}" for a in summary["alerts"]]
    return "\n".join(lines) + "\n"


def _alerts(ws: Workspace, summary: dict) -> list[str]:
    """Volume anomaly vs the trailing runs before this window (never later ones: reruns agree),
    and export objects quarantined as unreadable."""
    from plg_bridge.report import alerts

    cfg = ws.settings.alerts
    earlier = [r for r in recent_runs(ws, limit=cfg.trailing_runs + 60) if r["as_of"] < summary["as_of"]]
    trailing = [r["rows_read"] for r in earlier[: cfg.trailing_runs]]
    found = [alerts.volume_anomaly(summary["quality"].get("rows_read", 0), trailing, cfg.volume_factor)]
    skipped = summary["quality"].get("quarantined_files", 0)
    if skipped:
        found.append(
            f"{skipped} unreadable export object(s) were quarantined and left out: see quarantine.parquet"
        )
    found = [f for f in found if f]
    for text in found if cfg.enabled else []:
        alerts.post(
            f":warning: plg-bridge run as of {summary['as_of']}: {text}", cfg.slack_conn_id, cfg.channel
        )
    return found


def write_run_summary(ws: Workspace, as_of: datetime, scored: dict, deliveries: list[dict]) -> dict:
    """Write summary.json and summary.md for the run; returns their URIs. A failed target's error
    (an exception's text, which may quote a vendor's answer) is stripped of connection secrets."""
    from plg_bridge.redact import strip_secrets

    deliveries = [{**d, "error": strip_secrets(d["error"])} if d.get("error") else d for d in deliveries]
    work = ws.work
    scores = work.read_frame(work.key_of(scored["outputs"]["scores"])).head(10)
    summary = {
        "as_of": as_of.date().isoformat(),
        "quality": scored["quality"],
        "outputs": scored["outputs"],
        "top": scores.astype(object).where(scores.notna(), None).to_dict("records"),
        "deliveries": deliveries,
    }
    summary["alerts"] = _alerts(ws, summary)
    prefix = run_prefix(as_of)
    work.write_bytes(f"{prefix}/summary.json", json.dumps(summary, indent=2, default=str).encode())
    markdown = render_markdown(summary)
    work.write_bytes(f"{prefix}/summary.md", markdown.encode())
    log.info("run summary\n%s", markdown)
    return {"summary": work.uri_of(f"{prefix}/summary.json"), "report": work.uri_of(f"{prefix}/summary.md")}


def recent_runs(ws: Workspace, limit: int = 7) -> list[dict]:
    """The latest run summaries (newest first): window, quality headline, per-target counts."""
    keys = sorted(
        (o.key for o in ws.work.child("runs").list() if o.key.endswith("/summary.json")), reverse=True
    )
    runs = []
    for key in keys[:limit]:
        summary = json.loads(ws.work.child("runs").read_bytes(key))
        runs.append(
            {
                "as_of": summary["as_of"],
                "rows_read": summary["quality"].get("rows_read", 0),
                "organizations": summary["quality"].get("organizations_scored", 0),
                "pqls": summary["quality"].get("pqls", 0),
                "deliveries": {
                    d["target"]: d.get("skipped")
                    or (f"failed: {d['error']}" if d.get("error") else None)
                    or (
                        "dry run"
                        if d.get("dry_run")
                        else {k: d.get(k, 0) for k in ("created", "updated", "failed")}
                    )
                    for d in summary["deliveries"]
                },
            }
        )
    return runs

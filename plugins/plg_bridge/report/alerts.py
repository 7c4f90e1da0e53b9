"""Alerts for people: task failures and unusual input volume, posted to Slack.

Failures go through the Slack provider's `SlackNotifier` (the `on_failure_callback` of every
task). The message names the DAG, task, window, the error's first line and the log link;
everything taken from the error is stripped of connection secrets (a vendor answer quoted in an
exception may echo request headers) and escaped, so a message can never leak a token or ping a
channel.
"""

from __future__ import annotations

import logging
from statistics import median
from typing import Any

log = logging.getLogger(__name__)


def _window(context: dict[str, Any]) -> str:
    params = context.get("params") or {}
    end = params.get("as_of") or context.get("data_interval_end")
    return f"as of {end:%Y-%m-%d}" if hasattr(end, "strftime") else f"as of {end}" if end else "no window"


def failure_text(context: dict[str, Any]) -> str:
    """The failure alert, in Slack mrkdwn (pure: built from the callback context only)."""
    from plg_bridge.delivery.slack.mapping import escape_mrkdwn
    from plg_bridge.redact import strip_secrets

    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    error = strip_secrets(str(context.get("exception") or "unknown error")).strip().splitlines()
    first = error[0] if error else "unknown error"
    lines = [
        f":red_circle: *{escape_mrkdwn(dag_id)}.{escape_mrkdwn(task_id)}* failed ({escape_mrkdwn(_window(context))})",
        f"> {escape_mrkdwn(first[:500])}",
    ]
    log_url = getattr(ti, "log_url", None)
    if log_url:
        lines.append(f"<{log_url}|Task log> · runbook: docs/runbook.md")
    return "\n".join(lines)


def volume_anomaly(rows: int, trailing: list[int], factor: float) -> str | None:
    """A warning when this run's input differs from the median of the trailing runs by more than
    `factor` (either way), or None. Fewer than 3 trailing runs: no judgement."""
    usable = [r for r in trailing if r > 0]
    if len(usable) < 3 or factor <= 1:
        return None
    typical = median(usable)
    if rows > typical * factor or rows < typical / factor:
        return (
            f"input volume {rows:,} rows is outside {factor:g}x of the trailing median {typical:,.0f} "
            f"(last {len(usable)} runs): check the PostHog export before trusting today's signals"
        )
    return None


def post(text: str, conn_id: str, channel: str) -> None:
    """Send one alert through the Slack provider; alerting must never fail the task it reports on."""
    from plg_bridge.redact import quiet_client_logs, strip_secrets

    quiet_client_logs()  # slack_sdk's retry log prints request URLs
    try:
        from airflow.providers.slack.notifications.slack import SlackNotifier

        SlackNotifier(slack_conn_id=conn_id, channel=channel, text=text).notify({})
    except Exception as exc:
        log.warning("could not post the Slack alert (%s): %s", type(exc).__name__, strip_secrets(str(exc)))


def on_failure(context: dict[str, Any]) -> None:
    """`on_failure_callback` for every plg-bridge task."""
    from plg_bridge.config import load_settings

    alerts = load_settings().alerts
    if alerts.enabled:
        post(failure_text(context), alerts.slack_conn_id, alerts.channel)

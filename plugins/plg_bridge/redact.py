"""Connection secrets kept out of every log line and every stored text.

Tokens, client secrets and Slack webhook URLs live in Airflow connections. Three ways they could
still leak, and the guard for each:

- Logs. Airflow's secrets masker (the `airflow.sdk` one that `mask_secret` feeds, and that masks
  a connection's password and extra when it is loaded) filters task logs; `install_log_masking`
  gives the `plg-bridge` command the same masking. `register_connection` adds what Airflow does
  not know is secret (a webhook URL split over host and password, tokens obtained at run time).
  A CLI command that may load no connection at all (`plan`: a dry run, which loads one only to post
  a volume alert) defers it (`defer_log_masking`): importing Airflow costs ~2 s of start-up, so the
  command starts with this module's own filter (credential-shaped text) and Airflow's masker is installed, with the settings' connections registered, the first time
  anything is about to load a connection or build a vendor client (`ensure_log_masking`).
  slack_sdk's retry log prints the full request URL (for an incoming webhook: the secret) at
  INFO: the Slack hooks log through `sdk_logger()` (WARNING and up) instead.
- Stored vendor answers. A vendor (or a proxy before it) may echo request headers in an error
  body; that body becomes the error message kept in state, dead letters, the run report and the
  failure alert. `strip_secrets` is applied where those messages are stored (delivery/outcomes.py,
  report/alerts.py): every registered secret becomes `***`, and so does anything shaped like a
  credential even if it was never registered (Authorization headers, bearer tokens, Slack tokens
  and webhook paths, `"password": ...`-like pairs).
- Exceptions. Messages built from answers pass through the same function before they are alerted.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from typing import Any

MASK = "***"
# Credential-shaped text, masked whether or not it was registered.
_PATTERNS = (
    # Authorization / Proxy-Authorization: <scheme> <credentials>, with or without the scheme
    (
        re.compile(
            r"(?i)((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?[^\s\"',;}\]]+"
        ),
        lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), lambda m: f"{m.group(1)} {MASK}"),
    # secret-named fields: "access_token": "...", client_secret=..., X-Api-Key: ...
    (
        re.compile(
            r"(?i)([\"']?\b(?:access_token|refresh_token|client_secret|password|passwd|api[-_]?key|"
            r"x-api-key|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}&\]]+"
        ),
        lambda m: f"{m.group(1)}{MASK}",
    ),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}"), lambda m: MASK),  # Slack tokens
    (
        re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+"),
        lambda m: m.group(1) + MASK,
    ),
)

_QUIET_LOGGERS = ("slack_sdk", "airflow.providers.slack.hooks")
SDK_LOGGER = "plg_bridge.vendor_sdk"  # what the Slack hooks log through (see `sdk_logger`)


def _masker():
    from airflow.sdk._shared.secrets_masker import _secrets_masker

    return _secrets_masker()


def mask(secret: Any) -> None:
    """Register a secret (text, or a dict/list walked for sensitive keys) for masking everywhere."""
    if not secret:
        return
    ensure_log_masking()
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


def register_connection(connection: Any) -> None:
    """Mask a loaded Airflow connection's password, sensitive extras and, for a webhook, its URL.

    Airflow masks the password and extra on load; a Slack webhook URL is split over host and
    password, so the URL as slack_sdk builds it is registered too.
    """
    ensure_log_masking()
    password = getattr(connection, "password", None)
    mask(password)
    extra = getattr(connection, "extra_dejson", None)
    if extra:
        mask(extra)
    if password and getattr(connection, "conn_type", "") == "slackwebhook":
        host = (getattr(connection, "host", None) or "").rstrip("/")
        mask(f"{host}/{str(password).lstrip('/')}" if host else password)


def register_connections(conn_ids: list[str] | tuple[str, ...]) -> list[str]:
    """Load and register each connection that exists (the CLI does this before any work);
    returns the ids found. A missing one is left to the code that needs it to report."""
    from airflow.sdk import BaseHook

    found = []
    for conn_id in dict.fromkeys(c for c in conn_ids if c):
        try:
            connection = BaseHook.get_connection(conn_id)
        except Exception:  # not defined here: the destination that needs it fails naming it
            continue
        register_connection(connection)
        found.append(conn_id)
    return found


def strip_secrets(text: Any) -> Any:
    """`text` with every registered secret and every credential-shaped string replaced by `***`
    (None and non-text values pass through). Applied to vendor answers before they are stored."""
    if not isinstance(text, str) or not text:
        return text
    with contextlib.suppress(ImportError):  # without Airflow the patterns still apply
        text = str(_masker().redact(text))
    return strip_patterns(text)


def sdk_logger() -> logging.Logger:
    """The logger to give slack_sdk clients (`SlackHook(..., logger=sdk_logger())`): WARNING and up.

    slack_sdk logs `Going to retry the same request: POST <url>` at INFO, and `A retry handler
    found ... <url>` whenever its logger's own level is DEBUG or lower; for an incoming webhook the
    URL is the secret. Airflow's default hook logger passes INFO, so the hooks get this one.
    """
    logger = logging.getLogger(SDK_LOGGER)
    logger.setLevel(logging.WARNING)
    return logger


def quiet_client_logs() -> None:
    """The same for slack_sdk's own loggers and the Slack hooks' stdlib loggers (called before a
    vendor client is built: a deferred masking is installed first)."""
    ensure_log_masking()
    _quiet()


def _quiet() -> None:
    for name in (*_QUIET_LOGGERS, SDK_LOGGER):
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def install_log_masking(level: int = logging.WARNING) -> None:
    """Airflow's secrets masker on this process's logs, as in task logs: for the CLI.

    Importing Airflow replaces the logging setup, and its default one (outside a task) masks
    nothing; `airflow.sdk.log.configure_logging` is the task SDK's setup with the masking
    processor, for structlog and stdlib loggers alike. The masker's filter also goes on every
    root handler, and slack_sdk's loggers are quieted.
    """
    import airflow  # noqa: F401  (configures logging on import: ours must come after)
    from airflow.sdk._shared.secrets_masker import SecretsMasker
    from airflow.sdk.log import configure_logging

    configure_logging(log_level=logging.getLevelName(level), output=sys.stderr)
    SecretsMasker.enable_log_masking()
    masker = _masker()
    for handler in logging.getLogger().handlers:
        if masker not in handler.filters:
            handler.addFilter(masker)
    _quiet()


class PatternFilter(logging.Filter):
    """Credential-shaped text masked in every record (message, arguments, traceback) without
    Airflow: the `defer_log_masking` stand-in until Airflow's masker is installed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = strip_patterns(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = strip_patterns(record.exc_text)
        return True


def strip_patterns(text: str) -> str:
    """`text` with credential-shaped strings replaced by `***` (no registered secrets, no Airflow)."""
    for pattern, replace in _PATTERNS:
        text = pattern.sub(replace, text)
    return text


_deferred: dict[str, Any] = {}  # level and conn_ids awaiting ensure_log_masking


def defer_log_masking(level: int, conn_ids: list[str] | tuple[str, ...]) -> None:
    """For a CLI command that may never load a connection: this module's pattern filter on the
    root handlers now, Airflow's masker and `conn_ids` registered on first need (module docstring).
    Connections are only ever loaded through Airflow, so none can be in the logs before."""
    _deferred.update(level=level, conn_ids=tuple(conn_ids))
    patterns = PatternFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(patterns)
    _quiet()


def ensure_log_masking() -> None:
    """Install the masking `defer_log_masking` put off (once); nothing when none was deferred."""
    if not _deferred:
        return
    level, conn_ids = _deferred.pop("level"), _deferred.pop("conn_ids")
    install_log_masking(level)
    register_connections(conn_ids)

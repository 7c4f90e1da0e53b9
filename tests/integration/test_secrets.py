"""No connection secret in any log line or artifact of a full run (issue 11, finding 5).

Every connection holds a recognisable token; each vendor fake answers its first write with an
error body that echoes the request's headers (and path), the way a misbehaving vendor or proxy
does; the Slack incoming webhook answers 429 once so slack_sdk retries (its retry log printed
the webhook URL). A full `plg-bridge -v sync` and a full `airflow dags test` (`dag.test()`) then
run; every line they log and every file under the work location (Parquet read back as text) is
searched for the secrets.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from plg_bridge.redact import strip_secrets
from plg_bridge.synthetic.generate import generate
from tests.dags.conftest import airflow_db  # noqa: F401  (fixture)
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.intercom import FakeIntercom
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.server import Fault, Request, Response
from tests.fakes.slack import FakeSlack
from tests.support import REPO

BIN = Path(sys.executable).parent
AS_OF = "2026-11-20"
HUBSPOT_TOKEN = "hs-SECRET-a1b2c3d4e5f6"
INTERCOM_TOKEN = "ic-SECRET-0f9e8d7c6b5a"
SF_CLIENT_SECRET = "sf-SECRET-5a4b3c2d1e0f"
SLACK_BOT_TOKEN = "xoxb-SECRET-1122334455-aabbccddee"
WEBHOOK_PATH = "/services/T0SECRET77/B0SECRET88/whSECRET99zz"
SECRETS = {
    "hubspot token": HUBSPOT_TOKEN,
    "intercom token": INTERCOM_TOKEN,
    "salesforce client secret": SF_CLIENT_SECRET,
    "slack bot token": SLACK_BOT_TOKEN,
    "slack webhook secret": "whSECRET99zz",
}


class Echoing:
    """Mixin: the first request matching `echo_path` gets an error whose body echoes its headers."""

    echo_path = ""
    echo_status = 400
    echoed: list[Request]

    def dispatch(self, request: Request) -> Response | None:
        first = not getattr(self, "echoed", None)
        if first and not request.path.startswith("/_fake/") and re.search(self.echo_path, request.path):
            self.echoed = [request]
            with self._lock:
                self.requests.append(request)
            body = {  # what was sent first (vendors cut long bodies), then the complaint
                "request": {
                    "headers": request.headers,
                    "body": request.body.decode("utf-8", "replace")[:300],
                    "method": request.method,
                    "path": request.path,
                },
                "message": "request rejected by the upstream gateway",
            }
            return Response(self.echo_status, body)
        return super().dispatch(request)


class EchoHubSpot(Echoing, FakeHubSpot):
    # the first call of the companies target: its failure is an exception (the target's error
    # line in the report and the CLI output), not a row outcome like Intercom's and Salesforce's
    echo_path = r"/crm/v3/properties/companies"


class EchoIntercom(Echoing, FakeIntercom):
    echo_path = r"^/companies$"


class EchoSalesforce(Echoing, FakeSalesforce):
    echo_path = r"/services/oauth2/token"  # the client secret travels in this request's body


def _http(fake, **fields) -> str:
    return json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": fake.port, "schema": "http", **fields}
    )


@pytest.fixture
def leaky_vendors(tmp_path):
    """The four fakes, the export and the environment of a deployment whose vendors echo secrets."""
    exports = tmp_path / "posthog"
    generate(str(exports), 6_000, pd.Timestamp(AS_OF).date(), days=21)
    hubspot = EchoHubSpot(token=HUBSPOT_TOKEN)
    intercom = EchoIntercom(token=INTERCOM_TOKEN)
    salesforce = EchoSalesforce(client_secret=SF_CLIENT_SECRET, with_pql_status=True)
    slack = FakeSlack(
        bot_token=SLACK_BOT_TOKEN, channels=("plg-alerts",), webhook_path=WEBHOOK_PATH, per_channel_limit=100
    )
    fakes = (hubspot, intercom, salesforce, slack)
    for fake in fakes:
        fake.start()
    slack.inject(Fault(path=r"^/services/", response=Response(429, "rate_limited", {"Retry-After": "0"})))
    env = {
        **os.environ,
        "PLG_BRIDGE__EXPORTS__LOCATION": str(exports),
        "PLG_BRIDGE__DELIVERY__DESTINATIONS": "hubspot,salesforce,intercom,slack",
        "PLG_BRIDGE__DELIVERY__MAX_REJECTED_SHARE": "1",
        "PLG_BRIDGE__ALERTS__SLACK_CONN_ID": "slack_alerts",
        "AIRFLOW_CONN_HUBSPOT_DEFAULT": _http(hubspot, password=HUBSPOT_TOKEN),
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": _http(
            salesforce, login="plg-client-id", password=SF_CLIENT_SECRET
        ),
        "AIRFLOW_CONN_INTERCOM_DEFAULT": _http(intercom, password=INTERCOM_TOKEN),
        "AIRFLOW_CONN_SLACK_DEFAULT": json.dumps(
            {"conn_type": "slackwebhook", "host": slack.url, "password": WEBHOOK_PATH}
        ),
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps(
            {"conn_type": "slack", "password": SLACK_BOT_TOKEN, "extra": {"base_url": f"{slack.url}/api/"}}
        ),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
    env.pop("PLG_BRIDGE__DEMO", None)
    yield env, fakes
    for fake in fakes:
        fake.stop()


def _artifacts(work: Path) -> dict[str, str]:
    """Every file under the work location as text (Parquet read back, every column as text)."""
    texts = {}
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            for column in frame.select_dtypes(include="object").columns:  # binary columns as text too
                frame[column] = frame[column].map(
                    lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                )
            texts[str(path)] = frame.astype("string").to_csv(index=False) + json.dumps(list(frame.columns))
        else:
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return texts


def _leaks(texts: dict[str, str]) -> list[str]:
    return [
        f"{what} in {where}: ...{text[max(0, text.find(secret) - 80) : text.find(secret) + 40]!r}..."
        for where, text in texts.items()
        for what, secret in SECRETS.items()
        if secret in text
    ]


def _assert_the_vendors_echoed(fakes, before: int = 0) -> None:
    hubspot, intercom, salesforce, slack = fakes
    for fake in (hubspot, intercom, salesforce):
        assert getattr(fake, "echoed", None), f"{type(fake).__name__} never answered with the echo"
    webhook_posts = slack.calls("POST", r"^/services/")
    assert len(webhook_posts) >= 2 + before, "the webhook's 429 was not retried"


def _assert_stored_errors_were_scrubbed(texts: dict[str, str]) -> None:
    joined = "\n".join(texts.values())
    assert "request rejected by the upstream gateway" in joined, "the echoed body was not kept at all"
    # the echoed Authorization header was kept, its credential masked
    assert re.search(r"authorization[\"']*: [\"']*(Bearer )?\*\*\*", joined, re.IGNORECASE)


def test_cli_sync_leaks_no_secret(leaky_vendors, tmp_path):
    env, fakes = leaky_vendors
    work = tmp_path / "cli-work"
    env = {**env, "PLG_BRIDGE__WORK_LOCATION": str(work)}
    done = subprocess.run(
        [str(BIN / "plg-bridge"), "-v", "sync", "--as-of", AS_OF],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: the echoed rows were rejected
    _assert_the_vendors_echoed(fakes)
    texts = _artifacts(work)
    texts["plg-bridge stdout"], texts["plg-bridge stderr"] = done.stdout, done.stderr
    assert "retry" in done.stderr.lower() or len(fakes[3].calls("POST", r"^/services/")) >= 2
    assert _leaks(texts) == []
    _assert_stored_errors_were_scrubbed(texts)


def test_dag_run_leaks_no_secret(leaky_vendors, tmp_path, airflow_db):  # noqa: F811
    env, fakes = leaky_vendors
    work = tmp_path / "dag-work"
    env = {**env, "PLG_BRIDGE__WORK_LOCATION": str(work)}
    done = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "plg_reverse_etl", AS_OF],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        cwd=REPO,
    )
    _assert_the_vendors_echoed(fakes)
    texts = _artifacts(work)
    texts["airflow stdout"], texts["airflow stderr"] = done.stdout, done.stderr
    logs = Path(env["AIRFLOW_HOME"]) / "logs"
    if logs.exists():
        texts.update({str(p): p.read_text("utf-8", "replace") for p in logs.rglob("*") if p.is_file()})
    slack = fakes[3]
    texts["slack messages"] = json.dumps(slack.state(), default=str)
    assert "plg_reverse_etl" in done.stdout + done.stderr, done.stderr[-3000:]
    assert _leaks(texts) == []
    _assert_stored_errors_were_scrubbed(texts)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('{"headers": {"authorization": "Bearer abc.DEF-123_456"}}', '"authorization": "Bearer ***"'),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ("POST https://hooks.slack.com/services/T0/B0/abcdef123", "hooks.slack.com/services/***"),
        ("token=xoxb-12345-67890-abcdef", "token=***"),
        ('{"access_token": "00D5g000004!AQ4AQ", "client_secret": "s3cr3t"}', '"access_token": "***"'),
        ("x-api-key: 0123456789abcdef", "x-api-key: ***"),
    ],
)
def test_credential_shaped_text_is_stripped_even_unregistered(text, kept):
    out = strip_secrets(text)
    assert kept in out
    for word in (
        "abc.DEF-123_456",
        "dXNlcjpwYXNzd29yZA",
        "abcdef123",
        "67890-abcdef",
        "AQ4AQ",
        "s3cr3t",
        "0123456789abcdef",
    ):
        assert word not in out


def test_registered_secrets_are_stripped_and_ordinary_text_kept():
    from plg_bridge.redact import mask

    mask("opaque-registered-value-42")
    assert strip_secrets("vendor said: opaque-registered-value-42 is wrong") == "vendor said: *** is wrong"
    plain = "Token Ring Inc hit 80% of its plan; passwordless login enabled"
    assert strip_secrets(plain) == plain
    assert strip_secrets(None) is None


def test_failure_alert_carries_no_secret():
    """An exception quoting a vendor's echo becomes the Slack failure alert: stripped first."""
    from types import SimpleNamespace

    from plg_bridge.redact import mask
    from plg_bridge.report.alerts import failure_text

    mask(INTERCOM_TOKEN)
    error = RuntimeError(
        f'intercom refused: HTTP 401 {{"headers": {{"authorization": "Bearer {INTERCOM_TOKEN}"}}}} '
        f"via https://hooks.slack.com/services/T0/B0/{SECRETS['slack webhook secret']}"
    )
    ti = SimpleNamespace(dag_id="plg_reverse_etl", task_id="deliver_intercom", log_url=None)
    text = failure_text({"task_instance": ti, "exception": error, "params": {"as_of": "2026-11-20"}})
    assert "intercom refused: HTTP 401" in text
    assert INTERCOM_TOKEN not in text and SECRETS["slack webhook secret"] not in text


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_to_a_refusing_webhook(monkeypatch) -> str:
    """A webhook whose host refuses the connection: slack_sdk retries (nothing was sent). Returns
    what reached the hooks' logger (a handler on it, whatever Airflow did to the root logger)."""
    import logging

    import plg_bridge.delivery.slack.client as slack_client

    host = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    monkeypatch.setenv(
        "AIRFLOW_CONN_REFUSING_HOOK",
        json.dumps({"conn_type": "slackwebhook", "host": host, "password": WEBHOOK_PATH}),
    )
    seen: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = slack_client.sdk_logger()
    logger.addHandler(handler)
    try:
        outcomes = slack_client.post_digest(
            [{"text": "hello"}], conn_id="refusing_hook", sleep=lambda s: None
        )
    finally:
        logger.removeHandler(handler)
    assert outcomes["status"].tolist() == ["failed"]
    return "\n".join(seen)


def test_slack_sdk_retry_log_never_prints_the_webhook_url(monkeypatch):
    """slack_sdk logs `Going to retry the same request: POST <webhook URL>` at INFO (and `A retry
    handler found ... <url>` when its logger's level is DEBUG): the hooks get a WARNING logger."""
    import logging

    import plg_bridge.delivery.slack.client as slack_client

    assert "whSECRET99zz" not in _post_to_a_refusing_webhook(monkeypatch)

    # the same post through a chatty logger (what the hook had before) prints the secret URL:
    chatty = logging.getLogger("plg_bridge.tests.chatty_slack_sdk")
    chatty.setLevel(logging.DEBUG)
    monkeypatch.setattr(slack_client, "sdk_logger", lambda: chatty)
    assert "whSECRET99zz" in _post_to_a_refusing_webhook(monkeypatch)


MASKING_PROBE = """
import logging, sys
logging.basicConfig(level=logging.INFO)
if sys.argv[1] == "masked":
    from plg_bridge.redact import install_log_masking, register_connections
    install_log_masking(logging.INFO)
    register_connections(["probe"])
else:
    import airflow  # what the CLI had: Airflow's own logging setup outside a task
    from airflow.sdk import BaseHook
    BaseHook.get_connection("probe")
logging.getLogger("plg_bridge.probe").info("stdlib line: %s", sys.argv[2])
import structlog
structlog.get_logger("airflow.task.hooks.probe").info("structlog line: " + sys.argv[2])
"""


def _probe_output(probe: str, mode: str) -> str:
    """stdout + stderr of `probe` run in a fresh interpreter with a connection holding the token."""
    env = {
        **os.environ,
        "AIRFLOW_CONN_PROBE": json.dumps({"conn_type": "http", "host": "h", "password": HUBSPOT_TOKEN}),
    }
    done = subprocess.run(
        [sys.executable, "-c", probe, mode, HUBSPOT_TOKEN],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize(("mode", "leaks"), [("masked", False), ("airflow-default", True)])
def test_cli_logging_masks_connection_secrets(mode, leaks):
    """The CLI's logs (stdlib and structlog, e.g. hooks) go through Airflow's secrets masker."""
    out = _probe_output(MASKING_PROBE, mode)
    assert "stdlib line" in out and "structlog line" in out
    assert (HUBSPOT_TOKEN in out) is leaks


DEFERRED_PROBE = """
import logging, sys
logging.basicConfig(level=logging.INFO)
from plg_bridge.redact import defer_log_masking, quiet_client_logs
defer_log_masking(logging.INFO, ["probe"])
assert "airflow" not in sys.modules, "deferred masking imported Airflow"
logging.getLogger("plg_bridge.probe").info("before: Authorization: Bearer %s", sys.argv[2])
quiet_client_logs()  # what alerts.post and the Slack client do before loading a connection
from airflow.sdk import BaseHook
BaseHook.get_connection("probe")
logging.getLogger("plg_bridge.probe").info("stdlib line: %s", sys.argv[2])
import structlog
structlog.get_logger("airflow.task.hooks.probe").info("structlog line: " + sys.argv[2])
"""


def test_plan_defers_airflow_masker_until_a_connection_is_needed():
    """`plg-bridge plan` starts without importing Airflow (~2 s); a credential-shaped line is masked
    by redact's own filter, and once a vendor client is about to be built, Airflow's masker and the
    connections are installed: the token never reaches the logs."""
    out = _probe_output(DEFERRED_PROBE, "deferred")
    assert "before: Authorization: Bearer ***" in out
    assert "stdlib line" in out and "structlog line" in out
    assert HUBSPOT_TOKEN not in out


def test_plan_command_does_not_import_airflow_before_work(tmp_path):
    """The `plan` command's start-up (parse, settings, masking) leaves Airflow unimported."""
    probe = (
        "import sys, logging; from plg_bridge import cli; "
        "args = cli.build_parser().parse_args(['plan', '--as-of', '2026-11-20']); "
        "logging.basicConfig(level=logging.WARNING); cli._guard_secrets(args); "
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"

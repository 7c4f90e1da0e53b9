"""The distributed stack for tests/e2e.

moto S3 (in the test process, reached over HTTP) with a generated PostHog export; the fake
HubSpot, Salesforce, Intercom and Slack as processes; a fresh Postgres metadata DB with the
project's pools (scripts/create_pools.py); then api-server, scheduler, dag-processor and a Celery
worker. Torn down (processes stopped, DB dropped, Redis DB flushed) whatever happens.

Without PostgreSQL or Redis on loopback the tests skip (set PLG_E2E_REQUIRE=1 to fail instead).
Set PLG_E2E_LOGS=<folder> to keep the processes' logs and Airflow's task logs there, and
PLG_E2E_PYTHONPATH=<dir> to put packages ahead of the venv's in the stack's processes only (to try
another version of a dependency without touching the venv).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.stack import AIRFLOW, Stack, StackError, services_available
from tests.support import REPO
from tests.support.ports import free_port

AS_OF = dt.date(2026, 11, 20)
DAG_ID = "plg_reverse_etl"
BUCKET = "plg-e2e-celery"


def _http(port: int, **fields) -> dict:
    return {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", **fields}


# name -> (arguments of `python -m tests.fakes.<name>`, its Airflow connection given the port)
FAKES = {
    "hubspot": (["--token", "e2e-hubspot"], lambda p: _http(p, password="e2e-hubspot")),
    "salesforce": (
        ["--with-pql-status", "--client-id", "e2e-client", "--client-secret", "e2e-secret"],
        lambda p: _http(p, login="e2e-client", password="e2e-secret"),
    ),
    "intercom": (["--token", "e2e-intercom"], lambda p: _http(p, password="e2e-intercom")),
    "slack": (
        ["--bot-token", "xoxb-e2e", "--channel", "plg-alerts"],
        lambda p: {
            "conn_type": "slack",
            "password": "xoxb-e2e",
            "extra": {"base_url": f"http://127.0.0.1:{p}/api/"},
        },
    ),
}


@dataclass
class E2E:
    stack: Stack
    bucket: str
    s3_endpoint: str
    fakes: dict[str, str]  # name -> base URL

    def fake(self, name: str, what: str):
        """GET /_fake/<what> (state or requests) of one fake vendor process."""
        with urllib.request.urlopen(f"{self.fakes[name]}/_fake/{what}", timeout=10) as r:
            return json.loads(r.read())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a test using the stack fails, attach the processes' and the tasks' log tails."""
    outcome = yield
    report = outcome.get_result()
    e2e = getattr(item, "funcargs", {}).get("celery_stack")
    if report.failed and call.when == "call" and isinstance(e2e, E2E):
        report.sections.append(("airflow processes (log tails)", e2e.stack.tails(60)))
        report.sections.append(("task logs with errors", e2e.stack.task_log_tails(40)))


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Settings for the stack's processes beyond the shared ones (a test module may override this)."""
    return {}


@pytest.fixture(scope="module")
def seed_export():
    """Fills the export location before the stack starts (a test module may override this)."""

    def seed(uri: str) -> None:
        from plg_bridge.synthetic.generate import generate

        generate(uri, 20_000, AS_OF, days=21)

    return seed


@pytest.fixture(scope="module")
def celery_stack(moto_server, tmp_path_factory, stack_env, seed_export):
    problem = services_available()
    if problem:
        if os.environ.get("PLG_E2E_REQUIRE"):
            pytest.fail(f"PLG_E2E_REQUIRE is set but {problem}")
        pytest.skip(f"{problem}: .ci/run starts PostgreSQL and Redis")

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    keep = os.environ.get("PLG_E2E_LOGS")  # a folder to keep the stack's logs in (CI artifacts)
    root = Path(keep) / time.strftime("%Y%m%dT%H%M%S") if keep else tmp_path_factory.mktemp("celery-stack")
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
    }
    ports = {name: free_port() for name in FAKES}
    extra = {
        **aws,
        "PLG_BRIDGE__EXPORTS__LOCATION": f"s3://{BUCKET}/posthog",
        "PLG_BRIDGE__WORK_LOCATION": f"s3://{BUCKET}/plg-bridge",
        "PLG_BRIDGE__DELIVERY__DESTINATIONS": ",".join(FAKES),
        **{
            f"AIRFLOW_CONN_{name.upper()}_DEFAULT": json.dumps(conn(ports[name]))
            for name, (_, conn) in FAKES.items()
        },
        **stack_env,
    }
    stack = Stack.create(root, extra)
    e2e = E2E(stack, BUCKET, moto_server, {name: f"http://127.0.0.1:{port}" for name, port in ports.items()})
    started = time.monotonic()
    preflight = None
    try:
        preflight = subprocess.Popen(  # meanwhile: does the CeleryExecutor import at all?
            [sys.executable, "-c", "import airflow.providers.celery.executors.celery_executor"],
            env=stack.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, (args, _) in FAKES.items():
            stack.start(
                f"fake-{name}",
                [sys.executable, "-m", f"tests.fakes.{name}", "--port", str(ports[name]), *args],
            )
        with pytest.MonkeyPatch.context() as mp:
            for name, value in aws.items():
                mp.setenv(name, value)
            boto3.client("s3").create_bucket(Bucket=BUCKET)
            seed_export(f"s3://{BUCKET}/posthog")
        _check_celery_executor_imports(preflight.communicate(timeout=120)[0])
        stack.run("db-migrate", [AIRFLOW, "db", "migrate"])
        stack.start_airflow(
            setup=lambda: stack.run(
                "create-pools", [sys.executable, str(REPO / "scripts" / "create_pools.py")]
            )
        )
        for name in FAKES:
            stack.wait_for(
                f"the fake {name}", lambda name=name: e2e.fake(name, "state"), timeout=30, every=0.2
            )
        stack.wait_for("the DAG to be parsed", lambda: _parsed(stack), timeout=120)
        print(f"\ncelery stack up in {time.monotonic() - started:.0f}s under {root}", flush=True)
        yield e2e
    finally:
        if preflight is not None and preflight.poll() is None:
            preflight.kill()
            preflight.wait()
        stack.close()


def _check_celery_executor_imports(output: str) -> None:
    """Fail naming the cause when the CeleryExecutor cannot even be imported."""
    if "Traceback" not in output:
        return
    hint = ""
    if "cannot import name 'retry' from 'celery.backends.database'" in output:
        hint = (
            "celery 5.7 removed celery.backends.database.retry, which apache-airflow-providers-celery "
            "3.26.0 imports: pin celery<5.7 (celery==5.6.3) in requirements-dev.txt and constraints.txt.\n"
        )
    raise StackError(f"the CeleryExecutor does not import.\n{hint}{output[-3000:]}")


def _parsed(stack: Stack) -> bool:
    errors = stack.api("GET", "/importErrors")
    if errors.get("total_entries"):
        raise AssertionError(f"DAG import errors: {json.dumps(errors, indent=1)[:4000]}")
    try:
        return stack.api("GET", f"/dags/{DAG_ID}")["dag_id"] == DAG_ID
    except StackError as exc:
        if "HTTP 404" in str(exc):
            return False
        raise

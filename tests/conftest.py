"""Shared fixtures: settings without any deployment overrides, moto's S3, and the score of hand-built
rows. Constants and builders live in tests/support (import them from there, not from here)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest

from plg_bridge.config import Settings, load_settings
from plg_bridge.pipeline import score_export
from plg_bridge.storage import location
from tests.support import REPO
from tests.support.clocks import AS_OF
from tests.support.events import write_export
from tests.support.ports import free_port

# Airflow reads its configuration at import time: point it at a throwaway home before any test
# module imports it. The metadata DB is created only by the tests that need one (tests/dags).
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="plg-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "plg-bridge-tests-" + "x" * 64)
os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", "4")


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 over real HTTP on loopback, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch, request):
    """A fresh bucket on the moto server, with the AWS environment pointing at it; yields its name."""
    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
    }.items():
        monkeypatch.setenv(name, value)
    bucket = "plg-" + request.node.name.lower().replace("_", "-").replace("[", "-").replace("]", "")[:40]
    boto3.client("s3", endpoint_url=moto_server).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def settings() -> Settings:
    return load_settings(env={})


@pytest.fixture
def score_rows(tmp_path: Path, settings: Settings):
    """Write rows as one export file and score them as of AS_OF (or `as_of`)."""

    def run(rows: list[dict], as_of: dt.datetime = AS_OF, cfg: Settings | None = None):
        folder = tmp_path / "exports"
        write_export(folder, rows)
        return score_export(location(str(folder)), as_of, cfg or settings)

    return run

"""Run one delivery target the way the DAG's `deliver` task does (dags/plg_reverse_etl.py:
`deliver_run(target, as_of, options)`), so destination tests go through the production path:
the model outputs are written where the score task leaves them (`runs/as_of=<T>/<name>.parquet`
in the work location), the target plans against its state, sends through its vendor client built
from the Airflow connection, and commits its state, outcomes and dead letters."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tests.support.clocks import AS_OF


def http_connection(fake: Any, token: str, *, login: str | None = None, **extra: Any) -> str:
    """An `http` Airflow connection (AIRFLOW_CONN_* JSON) pointing at a fake on loopback; `login`
    and `token` are a client id and secret for OAuth client credentials (Salesforce)."""
    conn: dict[str, Any] = {
        "conn_type": "http",
        "host": "127.0.0.1",
        "port": fake.port,
        "schema": "http",
        "password": token,
    }
    if login is not None:
        conn["login"] = login
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def slack_connection(fake: Any, token: str) -> str:
    """A `slack` (bot token) Airflow connection whose base_url is the fake."""
    return json.dumps({"conn_type": "slack", "password": token, "extra": {"base_url": f"{fake.url}/api/"}})


@dataclass
class Deployment:
    """A work location and the settings of one deployment; `run` is one DAG deliver task."""

    work: Path
    destination: str
    settings: dict[str, Any] = field(default_factory=dict)  # Settings fields (hubspot=..., ...)
    max_rejected_share: float = 1.0  # tests look at failed rows instead of the run failing

    def config(self):
        from plg_bridge.config import DeliverySettings, Settings

        delivery = DeliverySettings(
            destinations=(self.destination,), max_rejected_share=self.max_rejected_share
        )
        return Settings(work_location=str(self.work), delivery=delivery, **self.settings).validate()

    def run(
        self, target: str, as_of: dt.datetime = AS_OF, options: Any = None, **frames: pd.DataFrame
    ) -> dict:
        """Write the run's model outputs (scores, signals, contacts; absent ones are not written),
        then `deliver_run(target, as_of, options)` as the DAG task calls it."""
        from plg_bridge.controls import RunOptions
        from plg_bridge.delivery.deliver import deliver_run
        from plg_bridge.storage import location
        from plg_bridge.window import run_prefix
        from plg_bridge.workspace import Workspace

        settings = self.config()
        work = location(str(self.work))
        for name, frame in frames.items():
            work.write_frame(f"{run_prefix(as_of)}/{name}.parquet", frame)
        return deliver_run(target, as_of, options or RunOptions(), Workspace(settings))

    def outcomes(self, target: str, as_of: dt.datetime = AS_OF) -> pd.DataFrame:
        """The run's per-row outcomes as the target wrote them (for the summary and on-call)."""
        from plg_bridge.storage import location
        from plg_bridge.window import run_prefix

        return location(str(self.work)).read_frame(f"{run_prefix(as_of)}/{target}/outcomes.parquet")

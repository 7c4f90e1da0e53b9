"""`plg-bridge attribution | activation | signals | calibrate`, run as real processes: CSV out, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest

from plg_bridge.models import activation, attribution, calibration, signals
from tests.support.events import conversion, event, identify, pageview, write_export

CLI = str(Path(sys.executable).parent / "plg-bridge")
AS_OF = "2026-11-30"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, check=False)


def rows() -> list[dict]:
    """A paid visitor who signs up and converts (org_c); PQL activity and a later conversion for
    calibration (org_a, org_b); an integration connected on the day before T (a signal)."""
    out = [
        pageview("anon-1", "2026-11-02T00:00", utm=("google", "cpc", "brand_search")),
        identify("alice", "anon-1", "2026-11-02T01:00"),
        event("first_api_call_completed", "2026-11-02T05:00", org="org_c", distinct_id="alice"),
        conversion("alice", "2026-11-10", 1200, org="org_c"),
        conversion("org_a-0", "2026-11-25", 500, org="org_a"),
        event("core_feature_used", "2026-11-05", org="org_z"),
        event("integration_connected", "2026-11-29T10:00", org="org_b", props={"provider": "stripe"}),
    ]
    for org, creators in (("org_a", 3), ("org_b", 1)):
        out += [event("core_feature_used", "2026-11-20", org=org) for _ in range(3)]
        out += [
            event("creation_event", "2026-11-18", org=org, distinct_id=f"{org}-{i}") for i in range(creators)
        ]
    return out


@pytest.fixture
def exports(tmp_path) -> Path:
    write_export(tmp_path / "exports", rows())
    return tmp_path / "exports"


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "plg.yaml"
    path.write_text(
        "calibration:\n  horizon_days: 7\n  lookback_days: 0\n  min_flagged: 1\n  min_lift: 1.2\n"
    )
    return path


def csv_of(exports: Path, tmp_path: Path, *args: str) -> tuple[pd.DataFrame, str]:
    out = tmp_path / "out.csv"
    result = run(*args, "--events", str(exports), "--as-of", AS_OF, "--output", str(out))
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out, keep_default_na=False, na_values=[""])
    return frame.astype(object).where(frame.notna(), None), result.stderr


def test_attribution_revenue_by_source_and_first_touch(exports, tmp_path):
    revenue, stderr = csv_of(exports, tmp_path, "attribution")
    assert list(revenue.columns) == attribution.REVENUE
    assert revenue[["source", "campaign", "paid_conversions", "total_revenue"]].to_dict("records") == [
        {"source": "google", "campaign": "brand_search", "paid_conversions": 1, "total_revenue": 1200.0},
        {"source": None, "campaign": None, "paid_conversions": 1, "total_revenue": 500.0},
    ]
    assert "attribution revenue: 2 rows as of 2026-11-30" in stderr

    touches, _ = csv_of(exports, tmp_path, "attribution", "--table", "first_touch")
    assert list(touches.columns) == attribution.FIRST_TOUCH
    alice = touches.set_index("person_key").loc["alice"]
    assert (alice["source"], alice["channel"]) == ("google", "paid")


def test_activation_milestones_and_correlation(exports, tmp_path):
    milestones, stderr = csv_of(exports, tmp_path, "activation")
    assert list(milestones.columns) == activation.MILESTONES
    reached = milestones[
        (milestones["breakdown"] == "all")
        & (milestones["cohort"] == "converted")
        & (milestones["milestone"] == "first_api_call_completed")
    ]
    assert reached[["persons", "reached", "median_hours"]].to_dict("records") == [
        {"persons": 1, "reached": 1, "median_hours": 4.0}
    ]
    assert '"persons_converted": 1' in stderr
    cohorts, _ = csv_of(exports, tmp_path, "activation", "--table", "cohorts")
    assert list(cohorts.columns) == activation.COHORT_COLUMNS


def test_signals_of_the_day_before_t(exports, tmp_path):
    raised, stderr = csv_of(exports, tmp_path, "signals")
    assert list(raised.columns) == list(signals.COLUMNS)
    assert raised[["signal", "org_id", "detail"]].to_dict("records") == [
        {"signal": "integration_connected", "org_id": "org_b", "detail": "stripe"}
    ]
    assert '"integration_connected": 1' in stderr


def test_calibrate_writes_the_threshold_table_and_names_the_recommendation(exports, tmp_path, config):
    table, stderr = csv_of(exports, tmp_path, "calibrate", "--config", str(config))
    assert list(table.columns) == list(calibration.CURVE)
    assert table["threshold"].tolist() == list(range(0, 101, 5))
    # as of 11-23: org_a 75 (converted 11-25), org_b 50; flag >= 55..75 catches exactly org_a
    best = table[table["recommended"]]
    assert best["threshold"].tolist() == [75]
    assert "recommended threshold: 75 (current 75)" in stderr

    observations, _ = csv_of(
        exports, tmp_path, "calibrate", "--config", str(config), "--table", "observations"
    )
    assert observations.to_dict("records") == [
        {"as_of": "2026-11-23", "org_id": "org_a", "pql_score": 75, "converted": True},
        {"as_of": "2026-11-23", "org_id": "org_b", "pql_score": 50, "converted": False},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["activation", "--table", "nope"], "invalid choice: 'nope'"),
        (["calibrate", "--as-of", "30-11-2026"], "is not a date"),
        (["signals", "--config", "/nonexistent/plg.yaml"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2(exports, tmp_path, args, message):
    base = {"--events": str(exports), "--as-of": AS_OF, "--output": str(tmp_path / "o.csv")}
    for flag, value in zip(args[1::2], args[2::2], strict=True):
        base[flag] = value
    result = run(args[0], *[x for pair in base.items() for x in pair])
    assert result.returncode == 2
    assert message in result.stderr


def test_empty_location_exits_2_and_a_corrupt_file_exits_1(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("calibrate", "--events", str(tmp_path / "empty"), "--as-of", AS_OF, "--output", "o.csv")
    assert result.returncode == 2 and "no objects under" in result.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.parquet").write_bytes(b"PAR1 garbage")
    result = run("attribution", "--events", str(tmp_path / "bad"), "--as-of", AS_OF, "--output", "o.csv")
    assert result.returncode == 1
    assert "x.parquet" in result.stderr and "bad input" in result.stderr


def test_calibrate_from_and_to_s3(exports, tmp_path, config, s3, moto_server):
    client = boto3.client("s3", endpoint_url=moto_server)
    for path in exports.iterdir():
        client.upload_file(str(path), s3, f"posthog/events/{path.name}")
    result = run(
        "calibrate",
        "--events",
        f"s3://{s3}/posthog",
        "--as-of",
        AS_OF,
        "--output",
        f"s3://{s3}/out/calibration.csv",
        "--config",
        str(config),
    )
    assert result.returncode == 0, result.stderr
    body = client.get_object(Bucket=s3, Key="out/calibration.csv")["Body"].read().decode()
    assert body.splitlines()[0] == ",".join(calibration.CURVE)

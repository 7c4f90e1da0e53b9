"""The `plg-bridge` command's contract, run as a real process on a local folder and on S3 (moto)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest

from tests.support.events import event, group_identify, write_export

COLUMNS = [
    "org_id",
    "org_name",
    "events_this_week",
    "events_last_week",
    "active_creators",
    "integrations_connected",
    "pql_score",
    "is_pql",
]
CLI = str(Path(sys.executable).parent / "plg-bridge")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, check=False)


def sample_rows() -> list[dict]:
    rows = [event("core_feature_used", "2026-11-19") for _ in range(3)]
    rows += [event("creation_event", "2026-11-15", distinct_id=f"u{i}") for i in range(3)]
    rows += [event("integration_connected", "2026-11-15", org="org_b")]
    rows += [group_identify("org_a", "2026-11-01", name="Acme, Inc.")]
    return rows


def test_score_on_a_local_folder(tmp_path):
    write_export(tmp_path / "exports", sample_rows())
    out = tmp_path / "scores.csv"
    result = run(
        "score", "--events", str(tmp_path / "exports"), "--as-of", "2026-11-20", "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(out)
    assert list(scores.columns) == COLUMNS
    assert scores.to_dict("records")[0] == {
        "org_id": "org_a",
        "org_name": "Acme, Inc.",
        "events_this_week": 3,
        "events_last_week": 0,
        "active_creators": 3,
        "integrations_connected": 0,
        "pql_score": 75,
        "is_pql": True,
    }
    assert scores["org_id"].tolist() == ["org_a", "org_b"]
    assert "scored 2 organizations" in result.stderr


def test_score_on_s3_over_moto(tmp_path, s3, moto_server):
    local = write_export(tmp_path / "exports", sample_rows())
    boto3.client("s3", endpoint_url=moto_server).upload_file(str(local), s3, f"posthog/events/{local.name}")
    out = tmp_path / "scores.csv"
    result = run("score", "--events", f"s3://{s3}/posthog", "--as-of", "2026-11-20", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(out)["pql_score"].tolist() == [75, 25]

    result = run(
        "score", "--events", f"s3://{s3}/posthog", "--as-of", "2026-11-20", "--output", f"s3://{s3}/out/s.csv"
    )
    assert result.returncode == 0, result.stderr
    body = boto3.client("s3", endpoint_url=moto_server).get_object(Bucket=s3, Key="out/s.csv")["Body"].read()
    assert body.decode().splitlines()[0] == ",".join(COLUMNS)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["score", "--events", "X", "--as-of", "20-11-2026", "--output", "o.csv"], 2, "is not a date"),
        (
            ["score", "--events", "ftp://x/y", "--as-of", "2026-11-20", "--output", "o.csv"],
            2,
            "unsupported location",
        ),
        (["score", "--as-of", "2026-11-20", "--output", "o.csv"], 2, "--events"),
        (["generate", "--out", "x", "--rows", "-5", "--end", "2026-11-20"], 2, "must be positive"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args, code, message):
    result = run(*args)
    assert result.returncode == code
    assert message in result.stderr


def test_empty_location_and_corrupt_file_exit_nonzero(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(
        "score",
        "--events",
        str(tmp_path / "empty"),
        "--as-of",
        "2026-11-20",
        "--output",
        str(tmp_path / "o.csv"),
    )
    assert result.returncode == 2
    assert "no objects under" in result.stderr

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.parquet").write_bytes(b"PAR1 garbage")
    result = run(
        "score",
        "--events",
        str(tmp_path / "bad"),
        "--as-of",
        "2026-11-20",
        "--output",
        str(tmp_path / "o.csv"),
    )
    assert result.returncode == 1
    assert "x.parquet" in result.stderr and "bad input" in result.stderr


def test_output_folder_must_exist(tmp_path):
    write_export(tmp_path / "exports", sample_rows())
    result = run(
        "score",
        "--events",
        str(tmp_path / "exports"),
        "--as-of",
        "2026-11-20",
        "--output",
        str(tmp_path / "no" / "o.csv"),
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_score_of_a_generated_export_on_s3_equals_the_local_one(tmp_path, s3, moto_server):
    """The generator and the reader over real HTTP to moto: same scores as from a local folder."""
    local, s3_out, local_out = tmp_path / "exports", tmp_path / "s3.csv", tmp_path / "local.csv"
    for out in (str(local), f"s3://{s3}/posthog/events"):
        result = run("generate", "--out", out, "--rows", "20000", "--end", "2026-11-20", "--days", "15")
        assert result.returncode == 0, result.stderr
    assert (
        run(
            "score", "--events", f"s3://{s3}/posthog", "--as-of", "2026-11-20", "--output", str(s3_out)
        ).returncode
        == 0
    )
    assert (
        run("score", "--events", str(local), "--as-of", "2026-11-20", "--output", str(local_out)).returncode
        == 0
    )
    scores = pd.read_csv(s3_out)
    assert len(scores) > 5 and scores["is_pql"].any()
    assert s3_out.read_text() == local_out.read_text()

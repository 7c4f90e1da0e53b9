"""The generator writes PostHog-named Parquet objects to S3 (moto server over real HTTP)."""

from __future__ import annotations

import datetime as dt
import io
import json

import boto3
import pyarrow.parquet as pq
import pytest

from plg_bridge.storage import StorageError
from plg_bridge.synthetic.generate import export_schema, generate

END = dt.date(2026, 11, 21)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; no endpoint in the environment, so `endpoint_url` must do the work."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.mark.usefixtures("aws_env")
def test_generate_writes_parquet_objects_to_s3(moto_server: str) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="plg-generate")

    summary = generate("s3://plg-generate/exports", rows=3_000, end=END, days=3, endpoint_url=moto_server)

    listed = s3.list_objects_v2(Bucket="plg-generate", Prefix="exports/")["Contents"]
    keys = sorted(obj["Key"] for obj in listed)
    assert keys == [f"exports/{name}" for name in summary.files]
    assert keys == [
        "exports/2026-11-18T00:00:00+00:00-2026-11-19T00:00:00+00:00.parquet.zst",
        "exports/2026-11-19T00:00:00+00:00-2026-11-20T00:00:00+00:00.parquet.zst",
        "exports/2026-11-20T00:00:00+00:00-2026-11-21T00:00:00+00:00.parquet.zst",
    ]

    body = s3.get_object(Bucket="plg-generate", Key=keys[-1])["Body"].read()
    assert body[:4] == b"PAR1"  # plain Parquet: .zst names the pages' codec, not a stream wrapper
    table = pq.read_table(io.BytesIO(body))
    assert table.schema.equals(export_schema())
    assert table.num_rows > 0
    assert all(isinstance(json.loads(p), dict) for p in table.column("properties").to_pylist())

    total = 0
    for key in keys:
        data = s3.get_object(Bucket="plg-generate", Key=key)["Body"].read()
        total += pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
    assert total == summary.rows == 3_000 + summary.redeliveries  # re-deliveries come on top


@pytest.mark.usefixtures("aws_env")
def test_generate_to_a_missing_bucket_fails(moto_server: str) -> None:
    with pytest.raises(StorageError, match=r"plg-missing-bucket"):
        generate("s3://plg-missing-bucket/exports", rows=1_000, end=END, days=1, endpoint_url=moto_server)
